"""`xmpp-lite simboard` with the real mpremote: exec, the filesystem commands, resets, Ctrl-C, boot order.

The simboard runs as the user runs it, `python -m host_tools simboard`, and mpremote reaches it at
socket://127.0.0.1:PORT. Its log (the board's output, without the raw REPL's traffic) is read line
by line. test_cli_deploy.py uses the same helpers for deploys to a simboard.
"""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from host_tools.tools import find_tool
from lineproc import LineProcess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join((ROOT, os.path.join(ROOT, "lib"))), PYTHONUNBUFFERED="1")
MPREMOTE_TIMEOUT = 60


class Simboard:
    """`xmpp-lite simboard --dir FLASH` in a child process; ``url`` once it listens."""

    def __init__(self, flash, heap=None):
        self.flash = str(flash)
        command = [sys.executable, "-m", "host_tools", "simboard", "--dir", self.flash]
        if heap:
            command += ["--heap", heap]
        self.process = LineProcess(command, cwd=ROOT, env=ENV)
        _, line = self.process.wait_for("simboard: listening on socket://")
        self.url = re.search(r"socket://127\.0\.0\.1:\d+", line).group(0)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.vm_pids = [int(self.process.wait_for("VM pid")[1].rsplit(" ", 1)[1])]

    def wait_for(self, fragment, timeout=15):
        line = self.process.wait_for(fragment, timeout)[1]
        if "VM pid" in line:
            self.vm_pids.append(int(line.rsplit(" ", 1)[1]))
        return line

    def wait_for_boot(self, why, timeout=15):
        """The next boot line; every line before it is kept in the output."""
        while True:
            line = self.wait_for("simboard: boot", timeout)
            if "boot (%s)" % why in line:
                return line

    def output(self):
        return self.process.output()

    def stop(self):
        """Ctrl-C, as a person stops it; the exit status."""
        if self.process.process.poll() is None:
            self.process.process.send_signal(signal.SIGINT)
        return self.process.finish()


def mpremote(url, *commands, check=True, timeout=MPREMOTE_TIMEOUT):
    tool = find_tool("mpremote")
    if tool is None:
        pytest.fail("no mpremote; run `make bootstrap`", pytrace=False)
    result = subprocess.run([tool, "connect", url] + list(commands), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail("mpremote %s failed (%d):\n%s%s" % (" ".join(commands), result.returncode, result.stdout,
                                                         result.stderr), pytrace=False)
    return result


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def simboard(tmp_path):
    board = Simboard(tmp_path / "flash")
    yield board
    board.stop()
    for pid in board.vm_pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_exec_and_files(simboard, tmp_path):
    assert mpremote(simboard.url, "exec", "print(1+1)").stdout.strip() == "2"
    assert mpremote(simboard.url, "eval", "1+2").stdout.strip() == "3"

    local = tmp_path / "data.bin"
    local.write_bytes(bytes(range(256)) * 40 + b"\r\n\x03\x04 end")  # control bytes survive the raw REPL
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    result = mpremote(simboard.url, "mkdir", ":lib/pkg", "+", "cp", str(local), ":lib/pkg/", "+",
                      "ls", ":lib/pkg", "+", "sha256sum", ":lib/pkg/data.bin", "+", "cat", ":boot.py", check=False)
    assert "%12d data.bin" % local.stat().st_size in result.stdout
    assert digest in result.stdout
    assert "cat: boot.py: No such file or directory" in result.stderr  # an OSError with its errno, as on a board
    with open(os.path.join(simboard.flash, "lib", "pkg", "data.bin"), "rb") as f:
        assert f.read() == local.read_bytes()  # the board's root is the flash folder

    # Absolute paths stay inside it too, and the fakes are importable but neither listed nor writable.
    result = mpremote(simboard.url, "exec", "open('/note.txt', 'w').write('hi')\nimport os, machine\n"
                      "print(sorted(os.listdir('/')), machine.__name__)\n"
                      "try:\n open('/.simboard/x.py', 'w')\nexcept OSError as e:\n print('read only', e.errno)")
    assert result.stdout.split("\n")[:2] == ["['lib', 'note.txt'] machine", "read only 30"]
    assert open(os.path.join(simboard.flash, "note.txt")).read() == "hi"

    result = mpremote(simboard.url, "rm", ":lib/pkg/data.bin", "+", "rmdir", ":lib/pkg", "+", "ls", ":lib")
    assert not os.path.exists(os.path.join(simboard.flash, "lib", "pkg"))
    error = mpremote(simboard.url, "exec", "1/0", check=False)
    assert error.returncode == 1 and "ZeroDivisionError: divide by zero" in error.stdout + error.stderr
    assert "simboard_vm" not in error.stdout + error.stderr  # the board's own frames are not shown


def test_boots_like_a_board(simboard):
    """boot.py then main.py at a hard reset; a soft reset from the raw REPL runs boot.py only; Ctrl-C stops main.py."""
    with open(os.path.join(simboard.flash, "boot.py"), "w") as f:
        f.write("print('boot.py ran')\n")
    with open(os.path.join(simboard.flash, "main.py"), "w") as f:
        f.write("import time\nn = 0\ntry:\n    while True:\n        n += 1\n        print('main tick', n)\n"
                "        time.sleep_ms(100)\nexcept KeyboardInterrupt:\n    print('main.py stopped by Ctrl-C')\n")
    mpremote(simboard.url, "reset")
    simboard.wait_for_boot("hard reset")
    simboard.wait_for("boot.py ran")
    simboard.wait_for("main tick 3")

    # mpremote interrupts main.py (Ctrl-C, as SIGINT for the VM) and soft-resets into the raw REPL.
    assert mpremote(simboard.url, "exec", "print('at the prompt')").stdout.strip() == "at the prompt"
    simboard.wait_for("main.py stopped by Ctrl-C")
    simboard.wait_for_boot("soft reset")
    simboard.wait_for("boot.py ran")
    # Another exec soft-resets again: its boot line closes the stretch in which main.py would have
    # printed "main tick 1" at once had the first soft reset run it (the log is one ordered stream).
    mpremote(simboard.url, "exec", "pass")
    simboard.wait_for_boot("soft reset")
    between = simboard.output().rsplit("boot (soft reset)", 2)[1]
    assert "boot.py ran" in between and "main tick" not in between  # the raw REPL's soft reset skips main.py

    # machine.reset() in the fake ends the VM; the simboard boots a fresh one, main.py included.
    mpremote(simboard.url, "exec", "--no-follow", "import machine; machine.reset()")
    simboard.wait_for_boot("hard reset")  # (what the raw REPL prints, "fake: machine.reset()", is not logged)
    simboard.wait_for("main tick 2")
    assert len(set(simboard.vm_pids)) >= 3  # a new VM each time


def test_ctrl_c_interrupts_code_and_friendly_repl(simboard):
    """The friendly REPL over a plain socket: echo, results, continuation lines, Ctrl-C of a busy loop."""
    with socket.create_connection(("127.0.0.1", simboard.port), timeout=10) as client:
        seen = bytearray()

        def expect(data, wanted, timeout=10):
            client.sendall(data)
            deadline = time.monotonic() + timeout
            while wanted not in seen:
                assert time.monotonic() < deadline, "no %r in %r" % (wanted, bytes(seen))
                seen.extend(client.recv(4096))
            del seen[:seen.index(wanted) + len(wanted)]

        expect(b"\r", b">>> ")
        expect(b"6*7\r", b"42\r\n>>> ")
        expect(b"for i in range(2):\r  print('line', i)\r\r", b"line 1\r\n>>> ")
        expect(b"while True:\r  pass\r\r", b"... \r\n")
        time.sleep(0.3)
        expect(b"\x03", b"KeyboardInterrupt")
        expect(b"\r", b">>> ")
        expect(b"\x05x = 5\rprint(x * 2)\r\x04", b"10\r\n>>> ")  # paste mode
        expect(b"\x04", b"MPY: soft reboot\r\n")  # Ctrl-D: a soft reset, then the friendly REPL again
        expect(b"\r", b">>> ")
        expect(b"print(globals().get('x'))\r", b"None\r\n>>> ")  # a fresh VM
    simboard.wait_for_boot("soft reset")


def test_ctrl_c_stops_the_simboard_and_its_vm(tmp_path):
    board = Simboard(tmp_path / "flash", heap="300k")
    assert "heap 300k" in board.output()
    vm = board.vm_pids[0]
    assert pid_alive(vm)
    assert board.stop() == 0
    assert "simboard: stopped" in board.output() and "Traceback" not in board.output()
    deadline = time.monotonic() + 5
    while pid_alive(vm) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(vm)


def test_bad_options_are_one_line(tmp_path):
    for options, message in ((["--heap", "lots"], "--heap 'lots' is not a size"),
                             (["--heap", "1"], "the VM does not start with heap '1'")):
        result = subprocess.run([sys.executable, "-m", "host_tools", "simboard", "--dir", str(tmp_path)] + options,
                                capture_output=True, text=True, env=ENV, timeout=30)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
