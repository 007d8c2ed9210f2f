"""`xmpp-lite server start|stop|status`, run as a user runs it, against real Prosody instances.

Every command is a separate process (`python -m host_tools ...`), so a server that `start` leaves
behind must survive the exit of the process that started it. Every state directory a test starts a
server in is stopped by a finalizer, whatever the test's outcome.
"""

import json
import os
import re
import socket
import time

import pytest

from clirun import cli, one_line_error
from host_tools.__main__ import main
from host_tools.server import ProsodyServer, stream_features
from xmpp_lite.client import Client
from xmpp_lite.config import check

TIMEOUT_MS = 10000


def field(output, name):
    match = re.search(r"^  %s +(.+)$" % re.escape(name), output, re.MULTILINE)
    assert match, (name, output)
    return match.group(1)


def port_of(output, name):
    return int(re.match(r"127\.0\.0\.1:(\d+)", field(output, name)).group(1))


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def pid_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rpartition(")")[2].split()[0] in "ZX":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def stop_later():
    """Register state directories; whatever server runs in them is stopped at the end."""
    state_dirs = []
    yield state_dirs.append
    for state_dir in state_dirs:
        if os.path.exists(os.path.join(state_dir, "server.json")):
            ProsodyServer.load(state_dir).stop()


def test_start_status_login_stop(tmp_path, stop_later):
    state = tmp_path / "state"
    stop_later(state)
    started = cli("server", "start", "--state", state)
    assert started.returncode == 0, started.stderr
    out = started.stdout
    assert re.match(r"started Prosody \(pid \d+\)", out)
    assert field(out, "domain") == "localhost"
    c2s_port, direct_port = port_of(out, "c2s port"), port_of(out, "direct TLS port")
    assert "STARTTLS required" in field(out, "c2s port")
    ca_pem, ca_der = field(out, "CA (PEM)"), field(out, "CA (DER)")
    assert ca_pem == str(state / "pki" / "ca.pem") and ca_der == str(state / "pki" / "ca.der")
    assert field(out, "state") == str(state)
    # The process that started it has exited; the server is still there.
    status = cli("server", "status", "--state", state)
    assert status.returncode == 0 and status.stdout.startswith("running (pid ")
    pid = int(re.search(r"pid (\d+)", status.stdout).group(1))
    assert port_of(status.stdout, "c2s port") == c2s_port
    assert re.search(rb"<starttls [^>]*>\s*<required/>", stream_features(c2s_port))

    # A board's config from `provision`, the CA from the state: a real client logs in.
    provisioned = cli("provision", "--state", state, "--count", 1, "--prefix", "sensor-",
                      "--out", tmp_path / "out")
    assert provisioned.returncode == 0, provisioned.stderr
    with open(tmp_path / "out" / "sensor-1" / "config.json") as f:
        xmpp = check(json.load(f))["xmpp"]
    assert xmpp["password"] not in provisioned.stdout + provisioned.stderr
    client = Client(xmpp["jid"], xmpp["password"], host=xmpp["server"], port=xmpp["port"], tls=xmpp["tls"],
                    ca=ca_der)
    assert client.connect(TIMEOUT_MS).startswith("sensor-1@localhost/")
    client.close()

    again = cli("server", "start", "--state", state)
    assert again.returncode == 0 and again.stdout.startswith("already running (pid %d)" % pid)
    assert "--port" in one_line_error(cli("server", "start", "--state", state, "--port", c2s_port + 1))

    stopped = cli("server", "stop", "--state", state)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped Prosody (pid %d)" % pid
    assert pid_gone(pid) and refused(c2s_port) and refused(direct_port)
    status = cli("server", "status", "--state", state)
    assert status.returncode == 3 and status.stdout.startswith("stopped")
    stopped = cli("server", "stop", "--state", state)  # idempotent
    assert stopped.returncode == 0 and stopped.stdout.startswith("not running")


def test_restart_keeps_ports_ca_and_settings(tmp_path, stop_later):
    state = tmp_path / "state"
    stop_later(state)
    first = cli("server", "start", "--state", state, "--domain", "xmpp.test", "--no-registration")
    assert first.returncode == 0, first.stderr
    ca_before = (state / "pki" / "ca.der").read_bytes()
    assert cli("server", "stop", "--state", state).returncode == 0
    second = cli("server", "start", "--state", state)
    assert second.returncode == 0, second.stderr
    for name in ("domain", "c2s port", "direct TLS port", "registration"):
        assert field(second.stdout, name) == field(first.stdout, name)
    assert field(second.stdout, "domain") == "xmpp.test"
    assert "disabled" in field(second.stdout, "registration")
    assert (state / "pki" / "ca.der").read_bytes() == ca_before
    assert cli("server", "stop", "--state", state).returncode == 0


def test_no_tls_and_fixed_port(tmp_path, stop_later):
    state = tmp_path / "state"
    stop_later(state)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = cli("server", "start", "--state", state, "--no-tls", "--port", port)
    assert started.returncode == 0, started.stderr
    assert field(started.stdout, "c2s port") == "127.0.0.1:%d (plaintext, no TLS)" % port
    assert "CA (DER)" not in started.stdout and "direct TLS port" not in started.stdout
    assert b"starttls" not in stream_features(port)
    assert cli("server", "stop", "--state", state).returncode == 0


def test_default_state_dir_and_environment(tmp_path, stop_later):
    stop_later(tmp_path / ".state" / "server")
    env = {name: value for name, value in os.environ.items() if name != "XMPP_LITE_STATE"}
    started = cli("server", "start", cwd=tmp_path, env=env)
    assert started.returncode == 0, started.stderr
    assert (tmp_path / ".state" / "server" / "server.json").exists()
    assert cli("server", "status", cwd=tmp_path, env=env).returncode == 0
    assert cli("server", "stop", cwd=tmp_path, env=env).returncode == 0

    env["XMPP_LITE_STATE"] = str(tmp_path / "elsewhere")
    status = cli("server", "status", cwd=tmp_path, env=env)
    assert status.returncode == 3
    assert status.stdout.strip() == "stopped (no server in %s)" % (tmp_path / "elsewhere")


def test_port_in_use_is_one_line(tmp_path, stop_later):
    stop_later(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        error = one_line_error(cli("server", "start", "--state", tmp_path / "state", "--no-tls",
                                   "--port", taken.getsockname()[1]))
    assert "could not open a port" in error and "--port" in error


def test_missing_prosody_says_how_to_install(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # nothing on PATH
    error = one_line_error(cli("server", "start", "--state", tmp_path / "state", env=env))
    assert "prosody" in error and "make prosody" not in error and "apt-get install prosody" in error
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("args, words", [
    (["--engine", "openfire", "start"], ["unknown engine 'openfire'", "prosody", "ejabberd"]),
    (["start", "--nodes", "2"], ["Prosody runs one node", "--engine ejabberd"]),
    (["start", "--nodes", "0"], ["number of nodes"]),
    (["start", "--listen", "example.net"], ["not an IPv4 address"]),
    (["status", "--nodes", "2"], ["--nodes only applies to start"]),
    (["restart"], ["invalid choice", "start"]),
    (["start", "--port", "0"], ["port number"]),
    (["start", "--domain", "not a domain"], ["not a valid XMPP domain"]),
    (["stop", "--port", "5222"], ["--port only applies to start"]),
    ([], ["required", "action"]),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, args, words):
    assert main(["server"] + args + ["--state", str(tmp_path / "state")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmpp-lite: error: ") and "server" in lines[0], captured.err
    for word in words:
        assert word in lines[0]
    assert not os.path.exists(tmp_path / "state" / "server.json")
