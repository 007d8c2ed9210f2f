"""`xmpp-lite demo` end to end: a real Prosody, the device on the MicroPython VM, the controller on CPython."""

import os
import re
import subprocess
import sys

import pytest

from host_tools import demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_TIMEOUT = 60  # seconds; the demo itself takes a few


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "host_tools"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=DEMO_TIMEOUT)


def test_demo_runs_end_to_end():
    result = run_cli("demo")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    device = re.escape("sensor1@localhost/board")
    # The reading by presence status and by message, then the answer to "read".
    assert re.search(r'controller: presence from %s: available, status "\d+\.\d C"' % device, out), out
    readings = re.findall(r'controller: message from %s: "temperature (\d+\.\d) C"' % device, out)
    assert len(readings) == 2, out
    assert 'controller: sends "read"' in out and 'controller: sends "bye"' in out
    assert "device: online as sensor1@localhost/board (STARTTLS" in out
    assert "device: closed" in out
    assert out.rstrip().splitlines()[-1].startswith("demo: everything stopped")


def test_python_m_host_tools_demo_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "host_tools.demo", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=DEMO_TIMEOUT)
    assert result.returncode == 0 and "--keep-running" in result.stdout


def test_bad_option_is_one_line_and_exit_1():
    result = run_cli("demo", "--no-such-option")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "unrecognized arguments" in result.stderr


def test_device_failure_is_one_clear_error(monkeypatch):
    # Too small a heap: the device dies loading the library; the demo says so and cleans up.
    monkeypatch.setattr(demo, "VM_HEAPSIZE", "16k")
    with pytest.raises(demo.DemoError) as caught:
        demo.run_demo()
    message = str(caught.value)
    assert "\n" not in message and "the device stopped (exit status 1)" in message and "MemoryError" in message
