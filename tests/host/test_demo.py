"""`xmpp-lite demo` end to end: a real Prosody, five boards on the MicroPython VM over the GPRS link, the monitor."""

import os
import re
import subprocess
import sys

import pytest

import clirun
from host_tools import demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_TIMEOUT = 150  # seconds; the demo itself takes its --duration plus the logins over GPRS


def run_cli(*args):
    # clirun.run, not subprocess.run: a demo stopped by a timeout gets SIGTERM and stops its Prosody.
    return clirun.run([sys.executable, "-m", "host_tools"] + list(args), DEMO_TIMEOUT, cwd=ROOT)


def test_demo_runs_end_to_end():
    result = run_cli("demo", "--duration", "12")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"demo: local Prosody on 127\.0\.0\.1:\d+ \(STARTTLS required", out), out
    assert "demo: provisioned sensor-1@localhost .. sensor-5@localhost and controller@localhost" in out
    assert "demo: all 5 boards report" in out
    # The monitor's table: a row per board, online, with a reading.
    for number in range(1, 6):
        rows = [line for line in out.splitlines() if re.match(r"%d\s+sensor-%d@localhost\s+" % (number, number), line)]
        assert rows and "online" in rows[-1] and re.search(r"temp=\d+(\.\d)?C light=", rows[-1]), out
    assert re.search(r'demo: sensor-1@localhost answers "temp=\d+(\.\d)?C light=[\d.]+"', out), out
    assert re.search(r"demo: 5/5 online, \d+ reports, \d+ reconnects", out), out
    assert out.rstrip().splitlines()[-1].startswith("demo: everything stopped")


def test_python_m_host_tools_demo_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "host_tools.demo", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=DEMO_TIMEOUT)
    assert result.returncode == 0 and "--keep-running" in result.stdout and "--duration" in result.stdout


def test_bad_option_is_one_line_and_exit_1():
    for args, expected in ((["--no-such-option"], "unrecognized arguments"),
                           (["--duration", "0"], "--duration must be more than 0 seconds")):
        result = run_cli("demo", *args)
        assert result.returncode == 1
        assert result.stderr.strip().count("\n") == 0 and expected in result.stderr


def test_device_failure_is_one_clear_error(monkeypatch):
    # Too small a heap: the boards die loading the library; the demo says so and cleans up.
    monkeypatch.setattr(demo, "VM_HEAPSIZE", "16k")
    monkeypatch.setattr(demo, "REPORTING_TIMEOUT_S", 15)
    with pytest.raises(demo.DemoError) as caught:
        demo.run_demo(duration=5, interactive=False)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("not every board reported within 15 s"), message
    assert "MemoryError" in message, message


def test_demo_on_ejabberd():
    result = run_cli("demo", "--engine", "ejabberd", "--duration", "6")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"demo: local ejabberd on 127\.0\.0\.1:\d+ \(STARTTLS required", out), out
    assert "demo: all 5 boards report" in out
    assert re.search(r'demo: sensor-1@localhost answers "temp=\d+(\.\d)?C light=[\d.]+"', out), out
    assert re.search(r"demo: 5/5 online, \d+ reports, \d+ reconnects", out), out
    assert out.rstrip().splitlines()[-1].startswith("demo: everything stopped")
