"""xmpp_lite against a real ejabberd (Debian's package), one node from a generated config: the interop set.

STARTTLS with certificate checks and each SASL mechanism (SCRAM-SHA-1, SCRAM-SHA-256, PLAIN), direct
TLS, messages and presence with slixmpp as the peer, ping, disco and version answered by the device,
in-band registration (several in a row: the rate limit is off), and XEP-0198 resumption after the link
is reset, on CPython and on the MicroPython VM (the library as .mpy). One server for the module.
"""

import json
import os
import secrets
import ssl
import subprocess
import sys
import time

import pytest

import test_resilience
from ejabberdrun import start_ejabberd
from host_tools.linkemu import LinkEmulator, Profile
from host_tools.tools import find_tool
from lineproc import LineProcess
from slixpeer import Controller
from test_resilience import Controller as CommandController, Device, device_settings

from xmpp_lite.client import Client, TLSError
from xmpp_lite.register import RegistrationError
from xmpp_lite.sasl import AuthError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_SCRIPT = os.path.join(ROOT, "tests", "host", "mp_client_device.py")
TIMEOUT_MS = 10000
VM_HEAP = "256k"
VM_TIMEOUT = 45.0
RUNTIMES = ("micropython", "cpython")
MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN")
BODY = "<&'\"> caf\u00e9 \u6e29\u5ea6 \U0001f321 ]]>"


@pytest.fixture(scope="module")
def ejabberd(tmp_path_factory):
    server = start_ejabberd(tmp_path_factory.mktemp("ejabberd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def controller(ejabberd):
    # Not "desk": the resumption test's controller logs in there, and a second login would replace this one.
    peer = Controller(ejabberd, resource="peer")
    yield peer
    peer.stop()


def device(server, user="device1", **options):
    options.setdefault("port", server.c2s_port)
    options.setdefault("ca", server.ca_path)
    return Client(server.jid(user), server.accounts[user], host="127.0.0.1", **options)


def test_the_config_is_ours_and_the_node_is_not_the_systems(ejabberd):
    config = open(ejabberd.node_list[0].config_path).read()
    for line in ("starttls_required: true", "tls: true", "registration_timeout: infinity", "mod_stream_mgmt:",
                 "mod_ping:", "mod_disco:", "mod_register:", "mod_roster:", "mod_offline:", "mod_version:"):
        assert line in config
    assert ejabberd.cluster() == [ejabberd.node_list[0].name] and "ejabberd@" not in ejabberd.cluster()[0]
    assert ejabberd.registered_users() == sorted(ejabberd.accounts)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_starttls_login_with_each_mechanism(ejabberd, mechanism):
    client = device(ejabberd, mechanisms=(mechanism,))
    sent = []
    client.trace = lambda direction, data: direction == "send" and sent.append(data)
    try:
        assert client.connect(TIMEOUT_MS).startswith("device1@localhost/")
        assert client.session.mechanism == mechanism and client.session.secure
        assert sent[0].find(b"<starttls") > 0 and sent[0].find(b"device1") < 0
    finally:
        client.close()


def test_direct_tls_and_wrong_certificate(ejabberd, tmp_path):
    client = device(ejabberd, port=ejabberd.direct_tls_port, tls="direct", resource="direct-1")
    assert client.connect(TIMEOUT_MS) == "device1@localhost/direct-1"
    client.close()
    with pytest.raises(TLSError):
        device(ejabberd, ca=ejabberd.pki.wrong_cert).connect(TIMEOUT_MS)
    with pytest.raises(AuthError) as caught:
        Client(ejabberd.jid("device1"), "wrong", host="127.0.0.1", port=ejabberd.c2s_port,
               ca=ejabberd.ca_path).connect(TIMEOUT_MS)
    assert caught.value.condition == "not-authorized"


def test_messages_presence_ping_disco_version(ejabberd, controller):
    client = device(ejabberd, resource="chat")
    messages = []
    client.on_message = messages.append
    jid = client.connect(TIMEOUT_MS)
    try:
        client.send_presence(status="21.5 C", to=controller.jid)
        assert controller.next_from(controller.presences, jid, client)["status"] == "21.5 C"
        message_id = client.send_message(controller.jid, BODY)
        message = controller.next_from(controller.messages, jid, client)
        assert message["body"] == BODY and message["id"] == message_id
        controller.send_message(jid, BODY + " back")
        deadline = time.monotonic() + 10
        while not any(m.get("from") == controller.jid for m in messages):
            assert time.monotonic() < deadline, "no message from the controller"
            client.poll(20)
        assert [m for m in messages if m.get("from") == controller.jid][0].find_text("body") == BODY + " back"
        assert controller.wait(controller.submit(controller.ping(jid)), client) >= 0
        features, identities = controller.wait(controller.submit(controller.disco_info(jid)), client)
        assert "urn:xmpp:ping" in features and identities == [("client", "bot")]
        assert controller.wait(controller.submit(controller.version(jid)), client)[0] == "xmpp_lite"
        assert controller.wait(controller.submit(controller.unknown_iq(jid)), client) == (
            "cancel", "service-unavailable")
    finally:
        client.close()


def test_in_band_registration_several_in_a_row(ejabberd):
    # ejabberd's default registration_timeout would refuse the second with resource-constraint.
    options = dict(host="127.0.0.1", port=ejabberd.c2s_port, ca=ejabberd.ca_path)
    for _ in range(3):
        user = "reg" + secrets.token_hex(4)
        password = secrets.token_urlsafe(12)
        assert Client(ejabberd.jid(user), password, **options).register(timeout_ms=TIMEOUT_MS) == user
        client = Client(ejabberd.jid(user), password, **options)
        assert client.connect(TIMEOUT_MS).startswith(ejabberd.jid(user) + "/")
        client.close()
    with pytest.raises(RegistrationError) as caught:
        Client(ejabberd.jid(user), "other", **options).register(timeout_ms=TIMEOUT_MS)
    assert caught.value.condition == "conflict"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stream_resumed_after_a_reset(runtime, ejabberd, mpy_lib, running, tmp_path):
    link = LinkEmulator(target=("127.0.0.1", ejabberd.c2s_port), profile=Profile(), seed=7)
    link.start()
    running.append(link)
    controller = CommandController(ejabberd)
    running.append(controller)
    resource = "reset-" + runtime
    settings = device_settings(ejabberd, link, resource=resource)
    if runtime == "micropython":
        settings["lib"] = mpy_lib
    device = Device(runtime, tmp_path, **settings)
    running.append(device)
    device.wait_for("STATE online fresh")
    full_jid = ejabberd.jid("device1") + "/" + resource
    controller.send(full_jid, "cmd 0")
    assert controller.report(full_jid, ejabberd.jid("device1"))["commands"] == 1
    assert link.cut() == 1
    controller.send(full_jid, "cmd 1")  # waits in the server's session for the device
    device.wait_for("STATE offline")
    device.wait_for("STATE online resumed")
    report = controller.report(full_jid, ejabberd.jid("device1"))
    assert report["commands"] == 2 and report["duplicates"] == 0 and report["in_order"]
    assert report["stats"]["resumed"] == 1
    controller.send(full_jid, "quit")
    assert device.done()["unacked"] == 0


def test_micropython_vm_client(ejabberd, controller, mpy_lib, tmp_path):
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.fail("no micropython binary beside %s; run `make bootstrap`" % sys.executable, pytrace=False)
    wrong_der = tmp_path / "wrong.der"
    wrong_der.write_bytes(ssl.PEM_cert_to_DER_cert(open(ejabberd.pki.wrong_cert).read()))
    new_user = "vm" + secrets.token_hex(4)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "lib": mpy_lib, "host": "127.0.0.1", "port": ejabberd.c2s_port, "plain_over_tls": True,
        "ca_der": ejabberd.ca_der_path, "wrong_ca": str(wrong_der),
        "jid": ejabberd.jid("device1"), "password": ejabberd.accounts["device1"],
        "mechanisms": ["SCRAM-SHA-1", "SCRAM-SHA-256"],
        "new_jid": ejabberd.jid(new_user), "new_password": secrets.token_urlsafe(12),
        "controller": controller.jid, "status": "vm 21.5 C", "timeout_ms": TIMEOUT_MS, "max_polls": 600,
    }))
    process = LineProcess([micropython, "-X", "heapsize=" + VM_HEAP, DEVICE_SCRIPT, str(config)])
    try:
        def line():
            return process.wait_for("", VM_TIMEOUT)[1]

        assert line() == "WRONG-CERT refused", process.output()
        assert line() == "BAD-PASSWORD not-authorized 1", process.output()
        plain = line().split()
        assert plain[0] == "PLAIN" and plain[2] == "PLAIN", process.output()
        assert line() == "MECHANISM SCRAM-SHA-1 SCRAM-SHA-1", process.output()
        assert line() == "MECHANISM SCRAM-SHA-256 SCRAM-SHA-256", process.output()
        assert line() == "REGISTERED " + new_user, process.output()
        assert line().startswith("NEW-ONLINE %s/" % ejabberd.jid(new_user)), process.output()
        online = line().split()
        assert online[0] == "ONLINE" and online[1] == ejabberd.jid("device1") + "/vm", process.output()
        jid = online[1]
        assert controller.next_from(controller.presences, jid)["status"] == "vm 21.5 C"
        controller.send_message(jid, BODY)
        assert controller.next_from(controller.messages, jid)["body"] == BODY
        assert controller.wait(controller.submit(controller.ping(jid))) >= 0
        features, _ = controller.wait(controller.submit(controller.disco_info(jid)))
        assert "urn:xmpp:ping" in features
        controller.send_message(jid, "quit")
        assert line() == "BYE", process.output()
        assert process.process.wait(VM_TIMEOUT) == 0, process.output()
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def test_stop_ends_every_process_it_started(tmp_path):
    server = start_ejabberd(tmp_path / "state", accounts=())
    pids = [node.pid for node in server.node_list]
    server.stop()
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split(") ")[1][0] in "ZX"
    leftover = subprocess.run(["pgrep", "-f", server.node_list[0].name], capture_output=True, text=True).stdout
    assert leftover == ""
