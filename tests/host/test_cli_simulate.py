"""`xmpp-lite simulate` as a user runs it: a fleet on both runtimes against a temporary Prosody, and bad arguments."""

import json
import os
import sys

from clirun import cli, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def simulate(*args, timeout=180):
    # clirun.run: stopped by SIGTERM first, so that the fleet stops its boards and server on a timeout.
    return run([sys.executable, "-m", "host_tools", "simulate", *args], timeout, cwd=ROOT)


def test_micropython_fleet_reports(tmp_path):
    out = tmp_path / "summary.json"
    result = simulate("--devices", "3", "--runtime", "micropython", "--link", "wifi", "--duration", "8",
                      "--interval", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == json.loads(out.read_text())
    assert summary["devices"] == 3 and summary["online"] == 3 and summary["reporting"] == 3
    assert summary["messages"] >= 6 and summary["errors"] == {} and summary["link_stats"]["accepted"] == 3
    # The live line, one every few seconds when stderr is not a terminal.
    assert "devices 3  online 3" in result.stderr


def test_cpython_fleet_over_gprs(tmp_path):
    result = simulate("--devices", "10", "--runtime", "cpython", "--link", "gprs", "--duration", "12",
                      "--interval", "3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["online"] == 10 and summary["max_online"] == 10 and summary["errors"] == {}
    assert summary["reporting"] == 10 and summary["link"] == "gprs"


def test_bad_arguments_are_one_line(tmp_path):
    for args, expected in ((["--devices", "0"], "--devices must be at least 1"),
                           (["--runtime", "java"], "invalid choice: 'java'"),
                           (["--state", str(tmp_path / "nothing")], "no server in")):
        result = simulate(*args, timeout=30)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("xmpp-lite: error: ") and expected in lines[0], lines


def test_fleet_on_a_started_server_reports_to_a_provisioned_controller(tmp_path):
    """The README's session: server start, provision --create-controller, simulate, monitor."""
    state, out = str(tmp_path / "state"), str(tmp_path / "provisioned")
    assert cli("server", "start", "--state", state, cwd=str(tmp_path), timeout=120).returncode == 0
    try:
        provisioned = cli("provision", "--state", state, "--count", "1", "--prefix", "sensor-", "--out", out,
                          "--create-controller", cwd=str(tmp_path), timeout=120)
        assert provisioned.returncode == 0, provisioned.stderr
        account = os.path.join(out, "controller.json")
        result = simulate("--devices", "2", "--runtime", "cpython", "--link", "wifi", "--duration", "6",
                          "--interval", "2", "--state", state, "--controller-account", account)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["online"] == 2 and summary["reporting"] == 2
        watched = cli("monitor", "--account", account, "--plain", "--duration", "1", cwd=str(tmp_path), timeout=120)
        assert watched.returncode == 0, watched.stderr
        bad = simulate("--state", state, "--controller-account", str(tmp_path / "nope.json"), timeout=30)
        assert bad.returncode == 1 and "--controller-account" in bad.stderr
    finally:
        cli("server", "stop", "--state", state, cwd=str(tmp_path), timeout=120)
