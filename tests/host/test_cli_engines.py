"""The command line against ejabberd: `server start --engine ejabberd --nodes 2`, and `simulate` and `provision`
against that cluster as a local server (--state, or the default state directory) and as a server elsewhere
(--server, --domain, --ca). One cluster for the module, started by the CLI and stopped by pid at the end.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from clirun import cli, one_line_error
from host_tools import testca
from host_tools.engines.ejabberd import EjabberdServer
from xmpp_lite.client import Client
from xmpp_lite.config import check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_MS = 10000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("engines") / "state")
    try:
        started = cli("server", "start", "--engine", "ejabberd", "--nodes", "2", "--state", state, timeout=180)
        assert started.returncode == 0, started.stderr
        server = EjabberdServer.load(state)
        yield server, started.stdout
    finally:
        if os.path.exists(os.path.join(state, "server.json")):
            EjabberdServer.load(state).stop()


def simulate_command(*args):
    return [sys.executable, "-m", "host_tools", "simulate", "--runtime", "cpython", "--link", "perfect", *args]


def simulate(*args, env=None, timeout=180):
    return subprocess.run(simulate_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def sim_users(server):
    return [user for user in server.registered_users() if user.startswith("sim-")]


def test_server_start_status_stop_a_cluster(cluster, tmp_path):
    server, out = cluster
    assert re.match(r"started ejabberd: 2 nodes in one cluster \(node 1 pid \d+, node 2 pid \d+\)", out)
    for number, node in enumerate(server.node_list, 1):
        assert re.search(r"^  node %d +%s, c2s 127\.0\.0\.1:%d, direct TLS 127\.0\.0\.1:%d, pid %d$" % (
            number, re.escape(node.name), node.c2s_port, node.direct_tls_port, node.pid), out, re.MULTILINE), out
        assert not node.name.startswith("ejabberd@")
    status = cli("server", "status", "--state", server.state_dir)
    assert status.returncode == 0, status.stdout
    assert "running: 2 of 2 nodes" in status.stdout
    assert "cluster: %s" % " ".join(sorted(n.name for n in server.node_list)) in status.stdout
    error = one_line_error(cli("server", "start", "--state", server.state_dir, "--engine", "prosody"))
    assert "is ejabberd" in error


def test_simulate_spreads_over_the_cluster_and_removes_its_accounts(cluster):
    server, _ = cluster
    before = sim_users(server)
    result = simulate("--state", server.state_dir, "--devices", "4", "--duration", "8", "--interval", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["online"] == 4 and summary["reporting"] == 4 and summary["errors"] == {}
    assert summary["online_per_server"] == [2, 2]
    assert summary["servers"] == ["%s:%d" % address for address in server.addresses()]
    assert summary["accounts_removed"] == 5  # 4 devices and the controller
    assert sim_users(server) == before


def test_simulate_uses_the_running_server_of_the_default_state(cluster):
    server, _ = cluster
    env = dict(os.environ, XMPP_LITE_STATE=server.state_dir)
    result = simulate("--devices", "2", "--duration", "4", "--interval", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert "at %s" % ", ".join("%s:%d" % a for a in server.addresses()) in result.stderr
    assert json.loads(result.stdout)["online_per_server"] == [1, 1]


def test_simulate_against_a_server_elsewhere_with_several_addresses(cluster):
    server, _ = cluster
    addresses = ",".join("%s:%d" % address for address in server.addresses())
    result = simulate("--server", addresses, "--domain", server.domain, "--ca", server.ca_path,
                      "--devices", "2", "--duration", "5", "--interval", "2", "--keep-accounts")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["online"] == 2 and summary["online_per_server"] == [1, 1]
    assert "accounts_removed" not in summary and "kept the 3 accounts" in result.stderr
    kept = sim_users(server)
    assert len(kept) >= 3
    for user in kept:
        server.unregister(user)
    assert "--ca" in one_line_error(simulate("--server", addresses, "--domain", server.domain, timeout=30))


def test_sigterm_prints_the_summary_and_removes_the_accounts(cluster):
    server, _ = cluster
    before = sim_users(server)
    process = subprocess.Popen(simulate_command("--state", server.state_dir, "--devices", "2", "--duration", "0",
                                                "--interval", "1"),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(sim_users(server)) < len(before) + 3:
            assert time.monotonic() < deadline and process.poll() is None, "no accounts made"
            time.sleep(0.5)
        time.sleep(3)  # online, reporting
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["devices"] == 2 and summary["accounts_removed"] == 3
    assert "removed 3 of the 3 accounts" in err
    assert sim_users(server) == before


def test_provision_on_the_local_ejabberd_uses_its_own_admin_command(cluster, tmp_path):
    server, _ = cluster
    out = tmp_path / "out"
    result = cli("provision", "--state", server.state_dir, "--engine", "ejabberd", "--count", "2",
                 "--prefix", "board-", "--method", "ejabberdctl", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created (ejabberdctl)") == 2
    assert "warning: the configs point at 127.0.0.1" in result.stderr
    with open(out / "board-2" / "config.json") as f:
        xmpp = check(json.load(f))["xmpp"]
    assert xmpp["server"] is None and len(xmpp["servers"]) == len(server.nodes())  # every node, for failover
    client = Client(xmpp["jid"], xmpp["password"], servers=xmpp["servers"], ca=str(out / "board-2" / "ca.der"))
    assert client.connect(TIMEOUT_MS).startswith("board-2@localhost/")
    client.close()
    forced = cli("provision", "--state", server.state_dir, "--count", "1", "--prefix", "board-", "--force",
                 "--out", out)
    assert forced.returncode == 0 and "password reset (ejabberdctl)" in forced.stdout, forced.stderr
    error = one_line_error(cli("provision", "--state", server.state_dir, "--engine", "prosody", "--count", "1",
                               "--prefix", "x-", "--out", tmp_path / "other"))
    assert "is ejabberd" in error


def test_provision_auto_falls_back_to_ejabberdctl_on_the_registration_limit(tmp_path):
    # ejabberd's default limit: one in-band registration per IP address every 600 s.
    server = EjabberdServer(tmp_path / "limited", registration_timeout_s=600)
    try:
        server.start()
        out = tmp_path / "out"
        result = cli("provision", "--state", server.state_dir, "--count", "3", "--prefix", "lim-", "--out", out)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("created (in-band)") == 1 and result.stdout.count("created (ejabberdctl)") == 2
        assert "in-band registration refused for now (resource-constraint); using ejabberdctl" in result.stdout
        error = one_line_error(cli("provision", "--state", server.state_dir, "--count", "1", "--prefix", "ibr-",
                                   "--method", "ibr", "--out", tmp_path / "other"))
        assert "resource-constraint" in error and "registration_timeout" in error and "600 s" in error
    finally:
        server.stop()


def test_listen_on_a_second_loopback_address(tmp_path):
    state = tmp_path / "state"
    try:
        started = cli("server", "start", "--state", state, "--listen", "127.0.0.2")
        assert started.returncode == 0, started.stderr
        assert re.search(r"^  c2s port +127\.0\.0\.2:\d+ ", started.stdout, re.MULTILINE)
        names = testca.certificate_names(str(state / "pki" / "server.pem"))
        assert "127.0.0.2" in names and socket.gethostname() in names and "localhost" in names
        out = tmp_path / "out"
        result = cli("provision", "--state", state, "--count", "1", "--prefix", "lan-", "--out", out,
                     "--network-profile", write_json(tmp_path / "wifi.json",
                                                     {"kind": "wifi", "ssid": "lab", "password": "pw-123456"}))
        assert result.returncode == 0, result.stderr
        assert "warning: the configs point at 127.0.0.2" in result.stderr  # loopback still: a board elsewhere cannot
        with open(out / "lan-1" / "config.json") as f:
            config = check(json.load(f))
        assert config["xmpp"]["server"] == "127.0.0.2" and config["network"]["ssid"] == "lab"
        xmpp = config["xmpp"]
        client = Client(xmpp["jid"], xmpp["password"], host=xmpp["server"], port=xmpp["port"],
                        ca=str(out / "lan-1" / "ca.der"))
        assert client.connect(TIMEOUT_MS).startswith("lan-1@localhost/")
        client.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", xmpp["port"]), timeout=2).close()
    finally:
        cli("server", "stop", "--state", state)


def write_json(path, value):
    path.write_text(json.dumps(value))
    return str(path)


def test_simulate_with_accounts_from_a_file_keeps_them(cluster, tmp_path):
    server, _ = cluster
    accounts = {"sim-file-1": "pw-file-1-secret", "sim-file-2": "pw-file-2-secret"}
    for user, password in accounts.items():
        server.register(user, password)
    try:
        result = simulate("--state", server.state_dir, "--devices", "2", "--duration", "5", "--interval", "2",
                          "--accounts", write_json(tmp_path / "accounts.json", accounts))
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["online"] == 2 and summary["accounts_removed"] == 1  # the controller made for the run
        assert {"sim-file-1", "sim-file-2"} <= set(server.registered_users())
        too_few = one_line_error(simulate("--state", server.state_dir, "--devices", "3", "--accounts",
                                          str(tmp_path / "accounts.json"), timeout=30))
        assert "holds 2 accounts" in too_few
    finally:
        for user in accounts:
            server.unregister(user)


def test_simulate_on_a_temporary_ejabberd_cluster(tmp_path):
    env = dict(os.environ, XMPP_LITE_STATE=str(tmp_path / "none"))
    result = simulate("--engine", "ejabberd", "--nodes", "2", "--devices", "2", "--duration", "4", "--interval", "2",
                      env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["online_per_server"] == [1, 1] and len(summary["servers"]) == 2
    assert "accounts_removed" not in summary  # they went away with the temporary server
    assert "a cluster needs --engine ejabberd" in one_line_error(simulate("--nodes", "2", env=env, timeout=30))


def test_provision_runs_ejabberdctl_with_the_node_and_config_given(tmp_path):
    # A stand-in ejabberdctl that records its arguments: the command line is what is tested here.
    log = tmp_path / "args.log"
    fake = tmp_path / "bin" / "ejabberdctl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$@\" >> %s\n" % log)
    fake.chmod(0o755)
    ca = tmp_path / "ca.der"
    testca.create(tmp_path / "pki")
    ca.write_bytes((tmp_path / "pki" / "ca.der").read_bytes())
    env = dict(os.environ, PATH="%s:%s" % (fake.parent, os.environ["PATH"]), XMPP_LITE_STATE=str(tmp_path / "none"))
    result = cli("provision", "--server", "xmpp.example.net", "--ca", ca, "--method", "ejabberdctl",
                 "--ejabberd-node", "ejabberd@xmpp", "--ejabberd-config", "/etc/ejabberd/ejabberd.yml",
                 "--count", "1", "--prefix", "far-", "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr
    line = log.read_text().strip()
    assert line.startswith("--node ejabberd@xmpp --config /etc/ejabberd/ejabberd.yml register far-1 xmpp.example.net ")
    assert "warning: the configs point at" not in result.stderr
