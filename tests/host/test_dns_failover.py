"""Devices that find their server by DNS SRV and fail over between servers, on both runtimes.

A real name server (Debian's dnsmasq, on a free loopback port, authoritative for the test domain
``xmpp.test`` and forwarding nothing) serves the SRV and A records; a real Prosody serves ``xmpp.test``.
The device code runs in its own process on CPython and on the MicroPython VM with the library as .mpy:
tests/host/mp_dns_device.py for one login, tests/host/robust_device.py for RobustClient.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from host_tools.linkemu import LinkEmulator
from host_tools.server import ProsodyServer, free_port
from host_tools.tools import find_tool
from lineproc import LineProcess

from xmpp_lite import dns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DNS_DEVICE = os.path.join(ROOT, "tests", "host", "mp_dns_device.py")
ROBUST_DEVICE = os.path.join(ROOT, "tests", "host", "robust_device.py")
DOMAIN = "xmpp.test"
RUNTIMES = ("micropython", "cpython")
VM_HEAP = "256k"
WAIT = 20.0
START_TRIES = 3
START_TIMEOUT = 20.0  # seconds for dnsmasq to answer its first query


@pytest.fixture(scope="module")
def srv_prosody(tmp_path_factory):
    """A Prosody for ``xmpp.test`` with STARTTLS required and a direct TLS port; account ``device1``."""
    server = ProsodyServer(str(tmp_path_factory.mktemp("prosody-srv")), domain=DOMAIN, tls=True,
                           require_encryption=True)
    server.start()
    try:
        for user in ("device1", "controller"):
            server.register(user, secrets.token_urlsafe(12))
        yield server
    finally:
        server.stop()


def free_udp_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class NameServer:
    """dnsmasq on 127.0.0.1:``port``, answering only from ``records`` (dnsmasq options) for xmpp.test."""

    def __init__(self, tmp_path, records):
        binary = shutil.which("dnsmasq")
        if binary is None:
            pytest.fail("dnsmasq not found: install Debian's dnsmasq-base ('make bootstrap')", pytrace=False)
        for _ in range(START_TRIES):  # a free port may be taken by someone else before dnsmasq binds it
            self.port = free_udp_port()
            self.address = "127.0.0.1:%d" % self.port
            log_path = os.path.join(str(tmp_path), "dnsmasq-%d.log" % self.port)
            with open(log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [binary, "--keep-in-foreground", "--conf-file=/dev/null", "--port=%d" % self.port,
                     "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                     "--user=root", "--pid-file=", "--log-facility=-", "--local=/%s/" % DOMAIN] + list(records),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + START_TIMEOUT
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    dns.query(self.address, "ready." + DOMAIN, dns.TYPE_A, timeout_ms=200, tries=1)
                    return
                except dns.DNSError:
                    pass
            self.stop()
        with open(log_path, "rb") as log:
            pytest.fail("dnsmasq did not start:\n" + log.read().decode("utf-8", "replace"), pytrace=False)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def name_server(tmp_path, running):
    def start(*records):
        server = NameServer(tmp_path, records)
        running.append(server)
        return server
    return start


def srv(service, target, port, priority, weight=0):
    return "--srv-host=%s._tcp.%s,%s,%d,%d,%d" % (service, DOMAIN, target, port, priority, weight)


def host(name, address="127.0.0.1"):
    return "--host-record=%s,%s" % (name, address)


def runtime_command(runtime, script, config_path):
    if runtime == "micropython":
        micropython = find_tool("micropython")
        if micropython is None:
            pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
        return [micropython, "-X", "heapsize=" + VM_HEAP, script, config_path]
    return [sys.executable, "-u", script, config_path]


def log_in(runtime, mpy_lib, tmp_path, server, **settings):
    """Run mp_dns_device.py once; its one line of result, split in words."""
    config = {"lib": mpy_lib if runtime == "micropython" else os.path.join(ROOT, "lib"),
              "jid": server.jid("device1"), "password": server.accounts["device1"], "ca": server.ca_der_path,
              "tls": "required", "timeout_ms": 15000}
    config.update(settings)
    path = os.path.join(str(tmp_path), "dns-%s.json" % runtime)
    with open(path, "w") as f:
        json.dump(config, f)
    result = subprocess.run(runtime_command(runtime, DNS_DEVICE, path), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=60)
    output = result.stdout.decode("utf-8", "replace").strip()
    assert result.returncode == 0, output
    return output.splitlines()[-1].split(" ", 4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_srv_lookup_skips_a_dead_server_and_uses_starttls(runtime, srv_prosody, name_server, mpy_lib, tmp_path):
    dead_port = free_port()  # nothing listens there: the connection is refused at once
    ns = name_server(
        srv("_xmpp-client", "dead." + DOMAIN, dead_port, 5),
        srv("_xmpp-client", "node1." + DOMAIN, srv_prosody.c2s_port, 10),
        srv("_xmpps-client", "node2." + DOMAIN, srv_prosody.direct_tls_port, 20),
        host("dead." + DOMAIN), host("node1." + DOMAIN), host("node2." + DOMAIN, "127.0.0.2"))
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, nameserver=ns.address)
    assert words[:4] == ["ONLINE", "127.0.0.1", str(srv_prosody.c2s_port), "required"], words
    assert words[4].startswith(srv_prosody.jid("device1") + "/")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_direct_tls_comes_from_the_xmpps_record(runtime, srv_prosody, name_server, mpy_lib, tmp_path):
    ns = name_server(
        srv("_xmpps-client", "node1." + DOMAIN, srv_prosody.direct_tls_port, 10),
        srv("_xmpp-client", "node1." + DOMAIN, srv_prosody.c2s_port, 20),
        host("node1." + DOMAIN))
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, nameserver=ns.address)
    assert words[:4] == ["ONLINE", "127.0.0.1", str(srv_prosody.direct_tls_port), "direct"], words
    # tls="none" never takes an xmpps record; this server then refuses the plaintext login
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, nameserver=ns.address, tls="none", ca=None)
    assert words[0] == "ERROR" and words[1] in ("ProtocolError", "AuthError"), words


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_without_srv_records_the_domains_a_record_is_used(runtime, srv_prosody, name_server, mpy_lib, tmp_path):
    ns = name_server(host(DOMAIN))
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, nameserver=ns.address, port=srv_prosody.c2s_port)
    assert words[:4] == ["ONLINE", "127.0.0.1", str(srv_prosody.c2s_port), "required"], words


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_domain_without_xmpp_service_says_so(runtime, srv_prosody, name_server, mpy_lib, tmp_path):
    ns = name_server("--srv-host=_xmpp-client._tcp." + DOMAIN, "--srv-host=_xmpps-client._tcp." + DOMAIN)
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, nameserver=ns.address)
    assert words[:2] == ["ERROR", "NoService"], words


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_server_list_is_tried_in_turn(runtime, srv_prosody, mpy_lib, tmp_path):
    servers = ["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % srv_prosody.c2s_port]
    words = log_in(runtime, mpy_lib, tmp_path, srv_prosody, servers=servers)
    assert words[:3] == ["ONLINE", "127.0.0.1", str(srv_prosody.c2s_port)], words


class RobustDevice(LineProcess):
    """tests/host/robust_device.py with a server list."""

    def __init__(self, runtime, mpy_lib, tmp_path, server, servers):
        config = {
            "lib": mpy_lib if runtime == "micropython" else os.path.join(ROOT, "lib"),
            "jid": server.jid("device1"), "password": server.accounts["device1"], "servers": servers,
            "port": 5222, "tls": "required", "ca": server.ca_der_path, "resource": "failover-" + runtime,
            "mechanisms": None, "ws_interval_ms": 0, "probe_interval_ms": 400, "probe_timeout_ms": 400,
            "backoff_initial_ms": 50, "backoff_max_ms": 400, "backoff_stable_ms": 2000,
            "connect_timeout_ms": 5000, "send": 0, "max_in_flight": 16, "poll_ms": 10, "max_run_ms": 60000,
            "status": "testing", "controller": server.jid("controller"),
        }
        path = os.path.join(str(tmp_path), "robust-%s.json" % runtime)
        with open(path, "w") as f:
            json.dump(config, f)
        super().__init__(runtime_command(runtime, ROBUST_DEVICE, path), cwd=ROOT)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_robust_client_resumes_on_the_next_server(runtime, srv_prosody, mpy_lib, tmp_path, running):
    """Two ways to one server (two relays): the first goes away, the stream resumes through the second."""
    from test_resilience import Controller

    first = LinkEmulator(target=("127.0.0.1", srv_prosody.c2s_port)).start()
    running.append(first)
    second = LinkEmulator(target=("127.0.0.1", srv_prosody.c2s_port)).start()
    running.append(second)
    controller = Controller(srv_prosody)
    running.append(controller)
    device = RobustDevice(runtime, mpy_lib, tmp_path, srv_prosody,
                          ["127.0.0.1:%d" % first.port, "127.0.0.1:%d" % second.port])
    running.append(device)
    device.wait_for("STATE online fresh", WAIT)
    full_jid = srv_prosody.jid("device1") + "/failover-" + runtime
    controller.send(full_jid, "cmd 0")
    assert controller.report(full_jid, srv_prosody.jid("device1"))["commands"] == 1
    assert first.stats["accepted"] == 1 and second.stats["accepted"] == 0
    first.stop()  # the first server is gone: connections to it are refused
    controller.send(full_jid, "cmd 1")  # waits in the server's queue for the device
    device.wait_for("STATE offline", WAIT)
    device.wait_for("STATE online resumed", WAIT)
    report = controller.report(full_jid, srv_prosody.jid("device1"))
    assert report is not None and report["commands"] == 2 and report["duplicates"] == 0, report
    assert report["stats"]["resumed"] == 1
    assert second.stats["accepted"] == 1
    controller.send(full_jid, "quit")
