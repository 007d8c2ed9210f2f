"""The board side of `xmpp-lite simboard`: runs inside the MicroPython unix VM, on a pseudo-terminal.

    micropython -X heapsize=256k simboard_vm.py MODE FLASH FAKES STATE_FD

MicroPython code, not CPython. It makes the VM behave like an ESP32 on its USB serial port:

- the filesystem root "/" is the folder FLASH (so "/lib", "config.json", ... are the board's
  files), and the fake ESP32 modules of FAKES are importable from a hidden, read-only "/.simboard";
- it boots like a board: boot.py, then main.py (unless MODE is "raw": a soft reset from the raw
  REPL runs boot.py only), then the REPL;
- the REPL speaks what mpremote expects of a board: the friendly REPL (with paste mode), the raw
  REPL (Ctrl-A), raw paste mode (Ctrl-E A Ctrl-A, with its flow control), Ctrl-B, Ctrl-C, and
  Ctrl-D for a soft reset.

The unix port's own REPL has no raw mode, hence this one. Resets end the VM, and the host
(host_tools/simboard_host.py) starts a fresh one, as the board's reset would clear its RAM; the exit
status says which kind. Ctrl-C arrives as a character while this REPL waits for input, and as
SIGINT from the host while code runs: STATE_FD tells the host which ("R" running, "I" idle).
"""

import os
import sys

EXIT_HARD_RESET = 10  # machine.reset(), deep sleep: boot.py and main.py run again
EXIT_SOFT_RESET_RAW = 11  # Ctrl-D (or sys.exit()) in the raw REPL: boot.py runs, back to the raw REPL
EXIT_SOFT_RESET = 12  # Ctrl-D (or sys.exit()) in the friendly REPL or in main.py: boot.py and main.py
EXIT_EOF = 0  # the host closed the terminal

HIDDEN = "/.simboard"  # where the fakes are importable from; not listed in "/"
PASTE_WINDOW = 128  # raw paste flow-control window: half of a board's 256-byte stdin buffer
BANNER = "MicroPython v%d.%d.%d on simboard; the unix VM with fake ESP32 modules\nType \"help()\" for more information.\n"
_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")
_HERE = "simboard_vm"  # traceback lines of this file are left out of what the board shows


class _HardReset(BaseException):
    """machine.reset() or deep sleep: ends the VM, which the host boots again."""


class _SoftReset(BaseException):
    pass


class _Eof(BaseException):
    pass


class _Flash:
    """The board's filesystem: the flash folder at "/", plus the fakes, read only, under HIDDEN."""

    def __init__(self, flash, fakes):
        self._flash = os.VfsPosix(flash)
        self._fakes = os.VfsPosix(fakes)

    def __repr__(self):
        return "<simboard flash>"

    def _route(self, path):
        if path == HIDDEN or path.startswith(HIDDEN + "/"):
            return self._fakes, path[len(HIDDEN):] or "/"
        return self._flash, path

    def mount(self, readonly, mkfs):
        self._flash.mount(readonly, mkfs)
        self._fakes.mount(True, False)

    def umount(self):
        self._flash.umount()
        self._fakes.umount()

    def ilistdir(self, path):
        vfs, path = self._route(path)
        base = "" if path in ("", ".") else path.rstrip("/") + "/"
        for entry in vfs.ilistdir(path):
            if len(entry) == 3:  # VfsPosix leaves out the size that a board's filesystem gives
                size = vfs.stat(base + entry[0])[6] if entry[1] == 0x8000 else 0
                entry = (entry[0], entry[1], entry[2], size)
            yield entry

    def chdir(self, path):
        return self._flash.chdir(path)

    def getcwd(self):
        return self._flash.getcwd()

    def mkdir(self, path):
        vfs, path = self._route(path)
        return vfs.mkdir(path)

    def remove(self, path):
        vfs, path = self._route(path)
        return vfs.remove(path)

    def rename(self, old, new):
        vfs, old = self._route(old)
        return vfs.rename(old, new)

    def rmdir(self, path):
        vfs, path = self._route(path)
        return vfs.rmdir(path)

    def stat(self, path):
        vfs, path = self._route(path)
        return vfs.stat(path)

    def statvfs(self, path):
        return self._flash.statvfs(path)

    def open(self, path, mode):
        vfs, path = self._route(path)
        return vfs.open(path, mode)


class Board:
    def __init__(self, state_fd):
        # Opened before "/" is the flash folder, which has no /proc.
        self._state = open("/proc/self/fd/%d" % state_fd, "wb")
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer
        self.globals = {"__name__": "__main__"}
        self.raw = False  # which REPL: a soft reset from the raw one comes back to it

    # -- terminal --------------------------------------------------------------------------

    def write(self, text):
        sys.stdout.write(text)

    def busy(self, running):
        self._state.write(b"R" if running else b"I")

    def getch(self):
        """The next input byte; a Ctrl-C that came as SIGINT counts as one too."""
        try:
            data = self._stdin.read(1)
        except KeyboardInterrupt:
            return 3
        if not data:
            raise _Eof()
        return data[0]

    # -- running code ----------------------------------------------------------------------

    def print_exception(self, error):
        import io

        text = io.StringIO()
        sys.print_exception(error, text)
        lines = [line for line in text.getvalue().split("\n") if _HERE not in line]
        self.write("\n".join(lines))

    def run(self, code, kind):
        """Compile and run ``code`` (str) as "exec" or "single"; the error, or None. Resets propagate."""
        self.busy(True)
        try:
            exec(compile(code, "<stdin>", kind), self.globals)
            self.busy(False)
        except (_HardReset, _SoftReset, _Eof):
            raise
        except SystemExit:
            self.busy(False)
            raise _SoftReset()
        except BaseException as error:  # noqa: BLE001 - a board shows every error and carries on
            self.busy(False)
            return error
        return None

    def run_file(self, name):
        """Run boot.py or main.py as a board does; False if it raised, True otherwise (or when missing)."""
        try:
            os.stat(name)
        except OSError:
            return True
        self.busy(True)
        try:
            execfile(name, self.globals)  # noqa: F821 - a MicroPython builtin; streams the source
            self.busy(False)
        except (_HardReset, _SoftReset, _Eof):
            raise
        except SystemExit:
            self.busy(False)
            raise _SoftReset()
        except BaseException as error:  # noqa: BLE001
            self.busy(False)
            self.print_exception(error)
            return False
        return True

    # -- raw REPL --------------------------------------------------------------------------

    def raw_exec(self, code, paste):
        if not paste:
            self.write("OK")
        try:
            source = bytes(code).decode()
        except UnicodeError as error:
            self.write("\x04")
            self.print_exception(error)
            self.write("\x04")
            return
        error = self.run(source, "exec")
        self.write("\x04")
        if error is not None:
            self.print_exception(error)
        self.write("\x04")

    def raw_paste(self):
        self.write("R\x01")
        self._stdout.write(bytes((PASTE_WINDOW & 0xFF, PASTE_WINDOW >> 8, 1)))
        remain = PASTE_WINDOW
        code = bytearray()
        while True:
            c = self.getch()
            if c == 3 or c == 4:
                self.write("\x04")  # the end of the data, acknowledged
                break
            code.append(c)
            remain -= 1
            if remain == 0:
                self.write("\x01")  # room for another window
                remain = PASTE_WINDOW
        if c == 3:
            self.write("\x04")
            self.print_exception(KeyboardInterrupt())
            self.write("\x04")
            return
        self.raw_exec(code, paste=True)

    def raw_repl(self):
        """Until Ctrl-B; a soft reset raises."""
        self.raw = True
        self.busy(False)
        self.write("raw REPL; CTRL-B to exit\n>")
        line = bytearray()
        while True:
            try:
                c = self.getch()
                if c == 1:  # Ctrl-A: raw paste request, or start over
                    if len(line) == 2 and line[0] == 5:
                        if line[1] == 0x41:  # "A"
                            self.raw_paste()
                        else:
                            self.write("R\x00")
                        line = bytearray()
                        self.write(">")
                    else:
                        line = bytearray()
                        self.write("raw REPL; CTRL-B to exit\n>")
                elif c == 2:  # Ctrl-B: to the friendly REPL
                    self.write("\n")
                    return
                elif c == 3:
                    line = bytearray()
                elif c == 4:  # Ctrl-D: run, or with nothing to run, a soft reset
                    if not line:
                        self.write("OK\n")
                        raise _SoftReset()
                    self.raw_exec(line, paste=False)
                    line = bytearray()
                    self.write(">")
                else:
                    line.append(c)
            except KeyboardInterrupt:
                line = bytearray()

    # -- friendly REPL ---------------------------------------------------------------------

    def readline(self, prompt):
        """A line (str), or a control code (int) typed on an empty line (Ctrl-C on any)."""
        self.write(prompt)
        line = bytearray()
        while True:
            c = self.getch()
            if c == 13:
                self.write("\n")
                return bytes(line).decode()
            if c == 3:
                self.write("\n")
                return 3
            if c in (1, 2, 4, 5):
                if not line:
                    return c
            elif c in (8, 127):
                if line:
                    end = len(line) - 1
                    while end > 0 and line[end] & 0xC0 == 0x80:  # a UTF-8 character goes whole
                        end -= 1
                    line = line[:end]
                    self.write("\b \b")
            elif c == 27:  # an escape sequence (cursor keys): ignored
                c = self.getch()
                if c == 0x5B:
                    while not 0x40 <= self.getch() <= 0x7E:
                        pass
            elif c == 9:
                line.extend(b"    ")
                self.write("    ")
            elif c >= 32:
                line.append(c)
                self._stdout.write(bytes((c,)))

    def paste_mode(self):
        self.write("\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\n=== ")
        code = bytearray()
        while True:
            c = self.getch()
            if c == 3:
                self.write("\n")
                return
            if c == 4:
                self.write("\n")
                break
            if c == 13:
                code.append(10)
                self.write("\n=== ")
            elif c != 10:
                code.append(c)
                self._stdout.write(bytes((c,)))
        error = self.run(bytes(code).decode(), "exec")
        if error is not None:
            self.print_exception(error)

    def friendly_repl(self):
        """Until Ctrl-A (to the raw REPL); a soft reset raises."""
        self.raw = False
        self.busy(False)
        self.write(BANNER % sys.implementation.version[:3])
        while True:
            try:
                text = self.readline(">>> ")
                if text == 1:
                    self.write("\n")
                    return
                if text == 2:
                    self.write("\n" + BANNER % sys.implementation.version[:3])
                    continue
                if text == 4:
                    self.write("\n")
                    raise _SoftReset()
                if text == 5:
                    self.paste_mode()
                    continue
                if text == 3 or not text.strip():
                    continue
                while continues(text):
                    more = self.readline("... ")
                    if more == 3:
                        text = None
                        break
                    if isinstance(more, int):
                        continue
                    text += "\n" + more
                if text is None:
                    continue
                error = self.run(text, "single")
                if error is not None:
                    self.print_exception(error)
            except KeyboardInterrupt:
                self.write("\n")


def continues(text):
    """Whether the friendly REPL asks for another line (MicroPython's mp_repl_continue_with_input)."""
    word = 0
    while word < len(text) and (text[word].isalpha() or text[word].isdigit() or text[word] == "_"):
        word += 1
    compound = text.startswith("@") or text[:word] in _COMPOUND
    depth = 0
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is None:
            if c in "\"'":
                quote = c * 3 if text[i:i + 3] == c * 3 else c
                i += len(quote)
                continue
            if c == "#":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
        elif c == "\\":
            i += 2
            continue
        elif text[i:i + len(quote)] == quote:
            i += len(quote)
            quote = None
            continue
        i += 1
    if quote is not None and len(quote) == 3:
        return True
    if depth > 0 and quote is None:
        return True
    if text.endswith("\\"):
        return True
    return compound and not text.endswith("\n")


def _patch_machine():
    """The fake machine module ends the VM to reset; here a reset must reach the host as one."""
    try:
        import machine
    except ImportError:
        return

    def hard_reset(status=0):
        raise _HardReset()

    if hasattr(machine, "_exit"):
        machine._exit = hard_reset


def main():
    mode, flash, fakes, state_fd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    board = Board(state_fd)
    os.umount("/")
    os.mount(_Flash(flash, fakes), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", HIDDEN, "/lib"]
    del sys.argv[:]
    board.raw = mode == "raw"
    try:
        _patch_machine()
        if board.run_file("boot.py") and not board.raw:
            board.run_file("main.py")
        while True:
            if board.raw:
                board.raw_repl()
            else:
                board.friendly_repl()
            board.raw = not board.raw  # each REPL returns when asked for the other one
    except _HardReset:
        return EXIT_HARD_RESET
    except _SoftReset:
        board.write("MPY: soft reboot\n")
        return EXIT_SOFT_RESET_RAW if board.raw else EXIT_SOFT_RESET
    except _Eof:
        return EXIT_EOF


sys.exit(main())
