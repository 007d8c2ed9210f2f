"""Links that die: heartbeats, dead-link detection, reconnection, XEP-0198 resumption, no loss.

The device is tests/host/robust_device.py (xmpp_lite.robust) in its own process, on the MicroPython VM and
on CPython, connected to a real Prosody (mod_smacks) through the link emulator (host_tools.linkemu). The
controller is xmpp_lite's Client on CPython, connected to Prosody directly. Times are scaled down from GPRS
(NAT timeouts of 60-150 s) to a fraction of a second so that the suite stays short; the ratios between
NAT timeout, heartbeat interval and probe timeout are kept. Every wait is bounded.
"""

import json
import os
import queue
import secrets
import sys
import threading
import time

import pytest

from host_tools.linkemu import LinkEmulator, Profile
from host_tools.server import ProsodyServer, free_port
from host_tools.tools import find_tool
from lineproc import LineProcess

from xmpp_lite.client import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_SCRIPT = os.path.join(ROOT, "tests", "host", "robust_device.py")
LIB = os.path.join(ROOT, "lib")
RUNTIMES = ("micropython", "cpython")
VM_HEAP = "256k"  # the device script from source, the library from .mpy (as on a board)
WAIT = 15.0
POLL_MS = 10

# The soak: messages each way, and the random cuts the link must survive (CI; `make soak` runs more).
SOAK_MESSAGES = 1000
SOAK_CUT_INTERVAL_MS = 500  # mean time to a random reset of each connection
SOAK_MIN_CUTS = 20
LONG_SOAK_MIN_CUTS = 100


_vm_lib = {}  # "path": the library as .mpy for VM devices (the mpy_lib fixture), see _use_mpy_lib


@pytest.fixture(autouse=True)
def _use_mpy_lib(mpy_lib):
    _vm_lib["path"] = mpy_lib


def device_command(runtime, config_path):
    if runtime == "micropython":
        micropython = find_tool("micropython")
        if micropython is None:
            pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
        return [micropython, "-X", "heapsize=" + VM_HEAP, DEVICE_SCRIPT, config_path]
    return [sys.executable, "-u", DEVICE_SCRIPT, config_path]


class Device(LineProcess):
    """robust_device.py in a subprocess, configured with ``settings`` over the defaults below."""

    def __init__(self, runtime, tmp_path, **settings):
        config = {
            "lib": LIB, "host": "127.0.0.1", "tls": "none", "resource": "board", "ca": None,
            "mechanisms": ["PLAIN"], "ws_interval_ms": 0, "probe_interval_ms": 0, "probe_timeout_ms": 0,
            "backoff_initial_ms": 50, "backoff_max_ms": 400, "backoff_stable_ms": 2000,
            "connect_timeout_ms": 3000, "send": 0, "max_in_flight": 16, "poll_ms": POLL_MS,
            "max_run_ms": 60000, "status": "testing",
        }
        config.update(settings)
        if runtime == "micropython" and "lib" not in settings:
            config["lib"] = _vm_lib["path"]
        path = os.path.join(str(tmp_path), "device-%s.json" % runtime)
        with open(path, "w") as f:
            json.dump(config, f)
        self.runtime = runtime
        super().__init__(device_command(runtime, path), cwd=ROOT)

    def done(self, timeout=WAIT):
        """The device's final summary (it must end by itself or after "quit")."""
        _, line = self.wait_for(" DONE ", timeout)
        self.finish(timeout)
        return json.loads(line.split(" DONE ", 1)[1])


class Controller:
    """The controller account on xmpp_lite's Client (CPython), in a thread that owns the connection."""

    def __init__(self, server):
        self.client = Client(server.jid("controller"), server.accounts["controller"], host="127.0.0.1",
                             port=server.c2s_port, resource="desk", **_tls_options(server))
        self.messages = queue.Queue()
        self.client.on_message = lambda msg: self.messages.put(msg)
        self._outbox = queue.Queue()
        self._stop = threading.Event()
        self.client.connect(10000)
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        to, body = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    self.client.send_message(to, body)
                self.client.poll(POLL_MS)
        except Exception as error:  # noqa: BLE001 - reported by the test that uses it
            self.error = error

    def send(self, to, body):
        self._outbox.put((to, body))

    def bodies_from(self, sender_bare):
        """Bodies received so far from ``sender_bare`` (bare JID), in order."""
        bodies = []
        while True:
            try:
                msg = self.messages.get_nowait()
            except queue.Empty:
                return bodies
            if (msg.get("from") or "").split("/")[0] == sender_bare and msg.get("type") != "error":
                body = msg.find_text("body")
                if body is not None:
                    bodies.append(body)

    def report(self, device_jid, sender_bare, timeout=WAIT):
        """Ask the device for its summary; None if no answer within ``timeout`` s."""
        self.send(device_jid, "report")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.bodies_from(sender_bare):
                if body.startswith("report "):
                    return json.loads(body[7:])
            time.sleep(0.02)
        return None

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.client.close()


def _tls_options(server):
    if server.tls:
        return {"ca": server.ca_path}
    return {"tls": "none", "insecure_plain": True, "mechanisms": ("PLAIN",)}


def wait_until(predicate, timeout):
    """True once ``predicate()`` is, False if it is not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def device_settings(server, link, **settings):
    base = {"jid": server.jid("device1"), "password": server.accounts["device1"], "port": link.port,
            "controller": server.jid("controller") + "/desk"}
    if server.tls:
        base.update({"tls": "required", "ca": server.ca_der_path, "mechanisms": None})
    base.update(settings)
    return base


@pytest.fixture
def emulator(request):
    links = []

    def make(server, profile=None):
        link = LinkEmulator(target=("127.0.0.1", server.c2s_port), profile=profile or Profile(), seed=7)
        link.start()
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()


# -- idle links behind a NAT ------------------------------------------------------------------------

NAT_IDLE_MS = 600
IDLE_MS = 5 * NAT_IDLE_MS


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("heartbeats", (True, False), ids=("heartbeats", "no-heartbeats"))
def test_idle_link_behind_a_nat(runtime, heartbeats, prosody_plain, emulator, running, tmp_path):
    """Idle for five NAT timeouts: with heartbeats the link stays up with no reconnection; without, it dies."""
    server = prosody_plain
    link = emulator(server, Profile(nat_idle_timeout_ms=NAT_IDLE_MS))
    controller = Controller(server)
    running.append(controller)
    beats = {"ws_interval_ms": NAT_IDLE_MS // 3, "probe_interval_ms": NAT_IDLE_MS * 2,
             "probe_timeout_ms": NAT_IDLE_MS} if heartbeats else {}
    device = Device(runtime, tmp_path, **device_settings(server, link, resource="idle-" + runtime, **beats))
    running.append(device)
    device.wait_for("STATE online fresh")
    full_jid = server.jid("device1") + "/idle-" + runtime
    if heartbeats:
        time.sleep(IDLE_MS / 1000)  # the idle time is the test: the link must stay up through it
        report = controller.report(full_jid, server.jid("device1"), timeout=3 * NAT_IDLE_MS / 1000 + 1)
    else:
        # The emulator counts the drop: from then on nothing can reach the device.
        assert wait_until(lambda: link.stats["nat_drops"] == 1, IDLE_MS / 1000 + WAIT), link.stats
        report = controller.report(full_jid, server.jid("device1"), timeout=NAT_IDLE_MS / 1000)
    if heartbeats:
        assert report is not None, "the device did not answer after %d ms idle" % IDLE_MS
        assert report["stats"]["online"] == 1 and report["stats"]["lost"] == 0
        # At least one keepalive byte per NAT timeout (probes also count as traffic, so fewer spaces are needed).
        assert report["stats"]["whitespace"] >= IDLE_MS // NAT_IDLE_MS
        assert link.stats["nat_drops"] == 0 and link.stats["accepted"] == 1
    else:
        assert report is None, "a link without heartbeats survived the NAT: %r" % report
        assert link.stats["nat_drops"] == 1
    controller.send(full_jid, "quit")


# -- a black hole ------------------------------------------------------------------------------------

PROBE_INTERVAL_MS = 400
PROBE_TIMEOUT_MS = 400
# poll granularity, process scheduling and the reader thread on a loaded 2-core machine
DETECTION_SLACK_MS = 400


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_black_hole_is_detected_and_the_stream_resumed(runtime, prosody, emulator, running, tmp_path):
    server = prosody
    link = emulator(server)
    controller = Controller(server)
    running.append(controller)
    resource = "hole-" + runtime
    device = Device(runtime, tmp_path, **device_settings(
        server, link, resource=resource, ws_interval_ms=0, probe_interval_ms=PROBE_INTERVAL_MS,
        probe_timeout_ms=PROBE_TIMEOUT_MS))
    running.append(device)
    device.wait_for("STATE online fresh")
    full_jid = server.jid("device1") + "/" + resource
    controller.send(full_jid, "cmd 0")
    assert controller.report(full_jid, server.jid("device1"))["commands"] == 1
    started = time.monotonic()
    link.blackhole()
    # While the link is dead, the controller's command waits in the server's queue for the device.
    controller.send(full_jid, "cmd 1")
    detected, _ = device.wait_for("STATE offline")
    detection_ms = (detected - started) * 1000
    assert detection_ms <= PROBE_INTERVAL_MS + PROBE_TIMEOUT_MS + DETECTION_SLACK_MS, detection_ms
    device.wait_for("STATE online resumed")
    report = controller.report(full_jid, server.jid("device1"))
    assert report is not None
    assert report["commands"] == 2 and report["duplicates"] == 0 and report["in_order"]
    assert report["stats"]["dead_links"] == 1 and report["stats"]["resumed"] == 1
    controller.send(full_jid, "quit")
    assert device.done()["unacked"] == 0


# -- random cuts: nothing lost, nothing twice, order kept --------------------------------------------


def soak(runtime, server, emulator, running, tmp_path, min_cuts, messages=SOAK_MESSAGES):
    link = emulator(server, Profile(cut_interval_ms=SOAK_CUT_INTERVAL_MS, cut_mode="reset"))
    controller = Controller(server)
    running.append(controller)
    resource = "soak-" + runtime
    device = Device(runtime, tmp_path, **device_settings(
        server, link, resource=resource, send=messages, probe_interval_ms=500, probe_timeout_ms=500,
        max_run_ms=600000))
    running.append(device)
    device.wait_for("STATE online fresh")
    full_jid = server.jid("device1") + "/" + resource
    device_bare = server.jid("device1")
    received = []
    # Commands at a steady pace while the device sends, until both are through and enough cuts happened.
    deadline = time.monotonic() + 120
    sent_commands = 0
    pace = 0.01
    while time.monotonic() < deadline:
        if sent_commands < messages:
            controller.send(full_jid, "cmd %d" % sent_commands)
            sent_commands += 1
        received += [body for body in controller.bodies_from(device_bare) if body.startswith("seq ")]
        if sent_commands == messages and len(received) >= messages and link.stats["random_cuts"] >= min_cuts:
            break
        device.check_alive()
        assert controller.error is None, controller.error
        time.sleep(pace)
    assert controller.error is None, controller.error
    report = None
    for _ in range(10):  # the last commands may still be on their way after a cut
        device.check_alive()
        report = controller.report(full_jid, device_bare, timeout=3)
        if report is not None and report["commands"] >= messages:
            break
    received += [body for body in controller.bodies_from(device_bare) if body.startswith("seq ")]
    cuts = link.stats["random_cuts"]
    controller.send(full_jid, "quit")
    summary = device.done(timeout=30)
    numbers = [int(body[4:]) for body in received]
    assert cuts >= min_cuts, "only %d cuts" % cuts
    assert numbers == list(range(messages)), "device->controller: lost or duplicated %s" % sorted(
        set(range(messages)) ^ set(numbers))[:20]
    assert summary["commands"] == messages and summary["duplicates"] == 0 and summary["in_order"], summary
    assert summary["stats"]["lost"] >= min_cuts // 2 and summary["stats"]["resumed"] >= 1, summary
    print("soak %s: %d cuts, %d messages each way, device stats %s" % (runtime, cuts, messages, summary["stats"]))
    return cuts, summary


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_soak_random_cuts_lose_nothing(runtime, prosody_plain, emulator, running, tmp_path):
    soak(runtime, prosody_plain, emulator, running, tmp_path, SOAK_MIN_CUTS)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_long_soak_random_cuts_lose_nothing(runtime, prosody, emulator, running, tmp_path):
    # With STARTTLS and SCRAM: every reconnection costs a TLS handshake on the device.
    soak(runtime, prosody, emulator, running, tmp_path, LONG_SOAK_MIN_CUTS, messages=4 * SOAK_MESSAGES)


# -- the server goes away and comes back --------------------------------------------------------------


@pytest.fixture
def own_prosody(tmp_path):
    """A plaintext Prosody of this test's own, on a fixed port so that it can be restarted in place."""
    server = ProsodyServer(tmp_path / "prosody", tls=False, require_encryption=False, port=free_port())
    server.start()
    for user in ("device1", "controller"):
        server.register(user, secrets.token_urlsafe(12))
    yield server
    server.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_server_restart_device_comes_back(runtime, own_prosody, emulator, running, tmp_path):
    server = own_prosody
    link = emulator(server)
    device = Device(runtime, tmp_path, **device_settings(
        server, link, resource="restart", probe_interval_ms=500, probe_timeout_ms=500))
    running.append(device)
    device.wait_for("STATE online fresh")
    server.stop()
    device.wait_for("STATE offline")
    # A few attempts refused (counted by the emulator, which passes the server's refusal on), with backoff.
    assert wait_until(lambda: link.stats["refused"] >= 2, WAIT), link.stats
    server.start()
    device.wait_for("STATE online fresh")  # the restarted server forgot the stream: a fresh one
    controller = Controller(server)
    running.append(controller)
    full_jid = server.jid("device1") + "/restart"
    report = controller.report(full_jid, server.jid("device1"))
    assert report is not None and report["stats"]["online"] == 2 and report["stats"]["attempts"] >= 3
    controller.send(full_jid, "quit")
    device.done()


# -- bad credentials ------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wrong_password_is_tried_once(runtime, prosody, emulator, running, tmp_path):
    server = prosody
    link = emulator(server)
    device = Device(runtime, tmp_path, **device_settings(
        server, link, password="not-the-password", resource="badpw", max_run_ms=2000))
    running.append(device)
    device.wait_for("AUTH-FAILED not-authorized")
    summary = device.done()
    assert summary["auths"] == 1 and summary["stats"]["attempts"] == 1
    assert link.stats["accepted"] == 1
