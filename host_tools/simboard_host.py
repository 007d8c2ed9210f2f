"""The host side of `xmpp-lite simboard`: a virtual board that mpremote reaches at socket://127.0.0.1:PORT.

    board = SimBoard(".state/simboard", port=0, heap="256k").start()
    board.port                  # the TCP port, when 0 was asked for
    board.serve_forever()       # until Ctrl-C (KeyboardInterrupt) or board.stop() from another thread

The board is the MicroPython unix VM running host_tools/simboard_vm.py on a pseudo-terminal, with
the flash folder as its filesystem root. One TCP client at a time is its serial port: bytes are
relayed both ways, and a Ctrl-C from the client while the board runs code becomes a SIGINT (the
unix VM has no UART interrupt), which the VM turns into KeyboardInterrupt as a board does. When
the VM exits (a reset) a fresh one boots, on a fresh terminal; the client stays connected, like a
USB serial port across a board's reset. What the board prints is also logged, line by line, but for
the traffic of the raw REPL (mpremote's commands and their answers).
"""

import ctypes
import os
import pty
import selectors
import signal
import socket
import subprocess
import sys
import termios
import time
import tty

from host_tools.resources import fakes_dir, host_tools_dir, install_hint
from host_tools.tools import find_tool

VM_SCRIPT = os.path.join(host_tools_dir(), "simboard_vm.py")
FAKES = fakes_dir()
DEFAULT_DIR = os.path.join(".state", "simboard")
DEFAULT_HEAP = "256k"
LOOPBACK = "127.0.0.1"

# The VM's exit statuses (simboard_vm.py), and what the next boot is.
EXIT_EOF = 0
EXIT_HARD_RESET = 10
EXIT_SOFT_RESET_RAW = 11
EXIT_SOFT_RESET = 12

INTERRUPT_GAP_S = 0.2  # a second SIGINT before the VM handled the first one would kill it: one per gap
CRASH_PAUSE_S = 1.0  # a VM that dies this soon after booting is restarted only after this pause
SEND_TIMEOUT_S = 5.0  # a client that does not read for this long is dropped
READ_SIZE = 4096
# What the board prints when it enters the raw REPL, and what ends it (simboard_vm.py).
RAW_REPL_BANNER = "raw REPL; CTRL-B to exit"
RAW_REPL_END = "MPY: soft reboot"
FRIENDLY_BANNER = "MicroPython v"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
_CONTROL = {code: None for code in range(32) if code != 9}


class SimBoardError(Exception):
    """The simboard cannot start; one line."""


def _die_with_parent():
    """In the VM's process: get SIGKILL if the simboard dies without stopping it (Linux)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _raw_terminal(fd):
    """Bytes in as they come (no line editing, echo, signals or flow control); "\\n" out as "\\r\\n" as a board's print."""
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[1] |= termios.OPOST | termios.ONLCR
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class SimBoard:
    def __init__(self, flash_dir=DEFAULT_DIR, port=0, heap=DEFAULT_HEAP, host=LOOPBACK, log=None,
                 micropython=None):
        self.flash_dir = os.path.abspath(flash_dir)
        self.host = host
        self.port = port
        self.heap = heap
        self.log = log if log is not None else sys.stdout
        self.micropython = micropython or find_tool("micropython")
        self.boots = 0
        self._selector = None
        self._listener = None
        self._client = None
        self._process = None
        self._master = None
        self._state = None
        self._running = True  # what the VM said last: running code ("R") or waiting for input ("I")
        self._raw = False  # the board's output is in the raw REPL, whose traffic (mpremote's) is not logged
        self._last_interrupt = 0.0
        self._pending = bytearray()  # client bytes not yet taken by the terminal
        self._line = bytearray()  # the board's output since its last newline, for the log
        self._booted_at = 0.0
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self):
        if self.micropython is None:
            raise SimBoardError("no micropython binary (the MicroPython unix VM); " + install_hint("micropython"))
        self._check_heap()
        try:
            os.makedirs(os.path.join(self.flash_dir, "lib"), exist_ok=True)
        except OSError as error:
            raise SimBoardError("cannot make the flash folder %s: %s" % (self.flash_dir, error.strerror))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((self.host, self.port))
        except OSError as error:
            self._listener.close()
            raise SimBoardError("cannot listen on %s:%d: %s" % (self.host, self.port, error.strerror))
        self._listener.listen(4)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        self.say("listening on %s (flash %s, heap %s)" % (self.url(), self.flash_dir, self.heap))
        self._boot("normal", "power on")
        return self

    def _check_heap(self):
        try:
            result = subprocess.run([self.micropython, "-X", "heapsize=" + self.heap, "-c", "pass"],
                                    capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SimBoardError("cannot run %s: %s" % (self.micropython, error))
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise SimBoardError("the VM does not start with heap %r: %s"
                                % (self.heap, lines[-1] if lines else "exit status %d" % result.returncode))

    def _vm_command(self, mode, state_fd):
        return [self.micropython, "-X", "heapsize=" + self.heap, VM_SCRIPT, mode, self.flash_dir, FAKES, str(state_fd)]

    def url(self):
        return "socket://%s:%d" % (self.host, self.port)

    def stop(self):
        """Stop the VM and close everything; also safe from another thread while serve_forever runs."""
        self._stopping = True
        self._stop_vm()
        if self._client is not None:
            self._close_client()
        if self._listener is not None:
            try:
                self._selector.unregister(self._listener)
            except (KeyError, ValueError):
                pass
            self._listener.close()
            self._listener = None

    def _stop_vm(self):
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_terminal()

    # -- the VM ----------------------------------------------------------------------------

    def _boot(self, mode, why):
        self.boots += 1
        master, slave = pty.openpty()
        _raw_terminal(slave)
        state_read, state_write = os.pipe()
        environment = dict(os.environ)
        environment.pop("MICROPYPATH", None)
        try:
            self._process = subprocess.Popen(
                self._vm_command(mode, state_write), stdin=slave, stdout=slave, stderr=slave, cwd=self.flash_dir,
                env=environment, pass_fds=(state_write,), start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as error:
            os.close(master)
            os.close(state_read)
            raise SimBoardError("cannot start %s: %s" % (self.micropython, error.strerror or error))
        finally:
            os.close(slave)
            os.close(state_write)
        os.set_blocking(master, False)
        os.set_blocking(state_read, False)
        self._master = master
        self._state = state_read
        self._running = True
        self._raw = False
        self._pending.clear()
        self._booted_at = time.monotonic()
        self._selector.register(master, selectors.EVENT_READ, "terminal")
        self._selector.register(state_read, selectors.EVENT_READ, "state")
        self.say("boot (%s), VM pid %d" % (why, self._process.pid))

    def _close_terminal(self):
        for fd in (self._master, self._state):
            if fd is not None:
                try:
                    self._selector.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        self._master = self._state = None

    def _vm_exited(self):
        self._read_state()
        try:
            status = self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            status = self._process.wait(5)
        self._close_terminal()
        self._flush_log()
        if self._stopping:
            return
        if status == EXIT_HARD_RESET:
            self._boot("normal", "hard reset")
        elif status == EXIT_SOFT_RESET_RAW:
            self._boot("raw", "soft reset")
        elif status == EXIT_SOFT_RESET:
            self._boot("normal", "soft reset")
        else:
            self.say("the VM exited with status %s; resetting the board" % status)
            if time.monotonic() - self._booted_at < CRASH_PAUSE_S:
                time.sleep(CRASH_PAUSE_S)
            self._boot("normal", "reset after the VM exited")

    def _read_state(self):
        if self._state is None:
            return
        try:
            data = os.read(self._state, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self._running = data[-1:] == b"R"

    # -- the relay -------------------------------------------------------------------------

    def serve_forever(self):
        while not self._stopping:
            for key, events in self._selector.select(0.5):
                if self._stopping:
                    break
                what = key.data
                if what == "listener":
                    self._accept()
                elif what == "client":
                    self._from_client()
                elif what == "terminal":
                    if events & selectors.EVENT_READ and self._from_terminal():
                        break  # the VM exited and a new one booted: the other keys are stale
                    if events & selectors.EVENT_WRITE:
                        self._flush_pending()
                elif what == "state":
                    self._read_state()

    def _accept(self):
        client, address = self._listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(SEND_TIMEOUT_S)
        self._client = client
        # Like a serial port, one user at a time: the next one waits in the listen queue.
        self._selector.unregister(self._listener)
        self._selector.register(client, selectors.EVENT_READ, "client")
        self.say("client connected from %s:%d" % address[:2])

    def _close_client(self):
        try:
            self._selector.unregister(self._client)
        except (KeyError, ValueError):
            pass
        self._client.close()
        self._client = None
        if self._listener is not None and not self._stopping:
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")

    def _from_client(self):
        try:
            data = self._client.recv(READ_SIZE)
            if _QUICKACK is not None:  # mpremote's small writes would wait for delayed ACKs (Nagle)
                self._client.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            data = b""
        if not data:
            self._close_client()
            self.say("client disconnected")
            return
        if self._master is None:
            return  # the board is resetting: what arrives now is lost, as on a UART
        parts = data.split(b"\x03")
        self._pending += parts[0]
        for part in parts[1:]:
            self._ctrl_c()
            self._pending += part
        self._flush_pending()

    def _ctrl_c(self):
        self._read_state()
        if not self._running:
            self._pending += b"\x03"  # the REPL is waiting for input: a character like any other
            return
        now = time.monotonic()
        if now - self._last_interrupt >= INTERRUPT_GAP_S and self._process.poll() is None:
            self._last_interrupt = now
            self._process.send_signal(signal.SIGINT)

    def _flush_pending(self):
        if self._master is None:
            return
        while self._pending:
            try:
                written = os.write(self._master, self._pending)
            except BlockingIOError:
                break
            except OSError:
                self._pending.clear()  # the VM is gone; _from_terminal sees it next
                break
            del self._pending[:written]
        self._selector.modify(self._master, selectors.EVENT_READ | (selectors.EVENT_WRITE if self._pending else 0),
                              "terminal")

    def _from_terminal(self):
        """Relay the board's output; True when the VM exited (and the next one booted)."""
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every holder of the terminal's other side is gone
            data = b""
        if not data:
            self._vm_exited()
            return True
        if self._client is not None:
            try:
                self._client.sendall(data)
            except OSError:
                self._close_client()
                self.say("client dropped (not reading)")
        self._log_output(data)
        return False

    # -- the log ---------------------------------------------------------------------------

    def say(self, text):
        self._flush_log()
        self.log.write("simboard: %s\n" % text)
        self.log.flush()

    def _log_output(self, data):
        self._line += data
        if b"\n" not in self._line:
            return
        lines = self._line.split(b"\n")
        self._line = bytearray(lines.pop())
        for line in lines:
            self._log_line(line)
        self.log.flush()

    def _flush_log(self):
        if self._line:
            self._log_line(self._line)
            self._line = bytearray()
            self.log.flush()

    def _log_line(self, line):
        text = bytes(line).decode("utf-8", "ignore").translate(_CONTROL).rstrip()
        if self._raw:
            # The raw REPL lasts until a soft reset or the friendly REPL's banner.
            if RAW_REPL_END not in text and not text.startswith(FRIENDLY_BANNER):
                return
            self._raw = False
        elif RAW_REPL_BANNER in text:
            self._raw = True
            return
        if text:
            self.log.write(text + "\n")
