"""xmpp_lite.client against a real Prosody, with slixmpp as the independent peer.

The same client code runs here in-process on CPython and, in
test_micropython_vm_client, on the MicroPython VM (tests/host/mp_client_device.py).
A tiny scripted server stands in only where the server is not what is tested:
a server that strips STARTTLS, and certificates other than Prosody's.
Every wait is bounded.
"""

import json
import os
import queue
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from host_tools.tools import find_tool
from slixpeer import Controller

from xmpp_lite.certs import load_ca
from xmpp_lite.client import Client, TLSError
from xmpp_lite.register import RegistrationError
from xmpp_lite.sasl import AuthError
from xmpp_lite.session import ProtocolError, StreamError
from xmpp_lite.stanza import Element
from xmpp_lite.stanza import presence as make_presence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_SCRIPT = os.path.join(ROOT, "tests", "host", "mp_client_device.py")
TIMEOUT_MS = 10000
WAIT = 10.0  # seconds for any one exchange
VM_TIMEOUT = 45.0
VM_HEAP = "256k"
POLL_MS = 20
# A body with every character XML escapes, and some that UTF-8 needs 2, 3 and 4 bytes for.
TRICKY_BODY = "<&'\"> caf\u00e9 \u6e29\u5ea6 \U0001f321 ]]>"


def device(server, user="device1", **options):
    options.setdefault("port", server.c2s_port)
    options.setdefault("ca", server.ca_path)
    return Client(server.jid(user), server.accounts[user], host="127.0.0.1", **options)


def poll_until(client, predicate, timeout=WAIT):
    """Poll the client until predicate() is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s" % timeout)
        client.poll(POLL_MS)


@pytest.fixture(scope="module")
def controller(prosody):
    peer = Controller(prosody)
    yield peer
    peer.stop()


# -- a scripted server, for the cases where the server is not under test -------------------------------

SERVER_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' id='fake' from='localhost' version='1.0'>")
FEATURES_NO_TLS = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                   b"<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
                   b"</stream:features>")
FEATURES_BIND = b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"


def bind_result(received):
    stanza_id = re.findall(rb"<iq [^>]*id=[\"']([^\"']+)", received)[-1]
    return (b"<iq type='result' id='" + stanza_id + b"'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<jid>device1@localhost/fake</jid></bind></iq>")


LOGIN_SCRIPT = [
    (b"<stream:stream", SERVER_HEADER + FEATURES_NO_TLS),
    (b"</auth>", b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
    (b"</iq>", lambda received: SERVER_HEADER + FEATURES_BIND + bind_result(received)),
    (b"</stream:stream>", b"</stream:stream>"),
]


class ScriptedServer:
    """Accepts one connection on loopback and plays ``script``: (marker, reply) pairs, in order.

    Each reply (bytes, or a function of everything received) is sent once the
    marker has arrived. ``received`` keeps every byte the client sent.
    """

    def __init__(self, script, cert=None, key=None):
        self.script = script
        self.received = b""
        self.error = None
        self.context = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(WAIT)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            with conn:
                position = 0
                for marker, reply in self.script:
                    while self.received.find(marker, position) < 0:
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        self.received += chunk
                    position = self.received.find(marker, position) + len(marker)
                    conn.sendall(reply(self.received) if callable(reply) else reply)
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    self.received += chunk
        except (OSError, ssl.SSLError) as error:
            self.error = error
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(WAIT)


# -- TLS -------------------------------------------------------------------------------------------------


def test_starttls_with_verification_and_scram(prosody):
    client = device(prosody)
    sent = []
    client.trace = lambda direction, data: direction == "send" and sent.append(data)
    jid = client.connect(TIMEOUT_MS)
    try:
        assert jid.startswith("device1@localhost/") and client.jid == jid and client.connected
        assert client.session.mechanism == "SCRAM-SHA-1" and client.session.secure
        # STARTTLS went with the first header; nothing about the account before TLS.
        assert sent[0].find(b"<starttls") > 0 and sent[0].find(b"device1") < 0
    finally:
        client.close()
    assert not client.connected


def test_ca_as_der_file_and_as_bytes(prosody):
    for ca in (prosody.ca_der_path, open(prosody.ca_path, "rb").read()):
        client = device(prosody, ca=ca)
        client.connect(TIMEOUT_MS)
        client.close()
    assert load_ca(prosody.ca_path) == [open(prosody.ca_der_path, "rb").read()]


def test_direct_tls(prosody):
    client = device(prosody, port=prosody.direct_tls_port, tls="direct", resource="direct-1")
    assert client.connect(TIMEOUT_MS) == "device1@localhost/direct-1"
    client.close()


def test_wrong_certificate_is_refused(prosody):
    client = device(prosody, ca=prosody.wrong_cert_path)
    with pytest.raises(TLSError) as caught:
        client.connect(TIMEOUT_MS)
    assert "TLS with localhost failed" in str(caught.value)
    assert isinstance(caught.value, OSError) and not client.connected


def test_wrong_host_name_is_refused(prosody):
    # The certificate is signed by the trusted CA but does not name the JID's domain.
    fake = ScriptedServer(LOGIN_SCRIPT, cert=prosody.cert_path, key=prosody.key_path)
    client = Client("device1@example.org", "secret", host="127.0.0.1", port=fake.port, tls="direct",
                    ca=prosody.ca_path)
    with pytest.raises(TLSError):
        client.connect(TIMEOUT_MS)
    fake.join()
    assert fake.received.find(b"<auth") < 0


def test_pinned_self_signed_certificate_works_as_ca(prosody):
    fake = ScriptedServer(LOGIN_SCRIPT, cert=prosody.wrong_cert_path, key=prosody.pki.wrong_key)
    client = Client("device1@localhost", "secret", host="127.0.0.1", port=fake.port, tls="direct",
                    ca=prosody.wrong_cert_path, mechanisms=("PLAIN",))
    assert client.connect(TIMEOUT_MS) == "device1@localhost/fake"
    client.close()
    fake.join()


def test_verify_false_warns_loudly(prosody, capsys):
    client = device(prosody, ca=None, verify=False)
    client.connect(TIMEOUT_MS)
    client.close()
    out = capsys.readouterr().out
    assert "WARNING" in out and "verification is OFF" in out


def test_stripped_starttls_is_refused_before_any_credential():
    fake = ScriptedServer([(b"<stream:stream", SERVER_HEADER + FEATURES_NO_TLS)])
    client = Client("device1@localhost", "secret", host="127.0.0.1", port=fake.port, insecure_plain=True)
    with pytest.raises(ProtocolError) as caught:
        client.connect(TIMEOUT_MS)
    assert "STARTTLS" in str(caught.value)
    fake.join()
    assert fake.received.startswith(b"<stream:stream ")
    assert fake.received.find(b"<auth") < 0 and fake.received.find(b"secret") < 0
    assert fake.received.find(b"c2VjcmV0") < 0  # nor base64 of it
    assert fake.received.endswith(b"</stream:stream>")


def see_other_host(port):
    return (SERVER_HEADER + b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
            + ("127.0.0.1:%d" % port).encode() + b"</see-other-host></stream:error></stream:stream>")


def test_see_other_host_is_followed_once():
    target = ScriptedServer(LOGIN_SCRIPT)
    redirector = ScriptedServer([(b"<stream:stream", see_other_host(target.port))])
    client = Client("device1@localhost", "secret", host="127.0.0.1", port=redirector.port, tls="none",
                    insecure_plain=True, mechanisms=("PLAIN",))
    assert client.connect(TIMEOUT_MS) == "device1@localhost/fake"
    client.close()
    # A second redirect is not followed.
    third = ScriptedServer([(b"<stream:stream", see_other_host(1))])
    second = ScriptedServer([(b"<stream:stream", see_other_host(third.port))])
    client = Client("device1@localhost", "secret", host="127.0.0.1", port=second.port, tls="none")
    with pytest.raises(StreamError) as caught:
        client.connect(TIMEOUT_MS)
    assert caught.value.condition == "see-other-host"
    for server in (target, redirector, second, third):
        server.join()


def test_a_second_redirect_moves_on_to_the_next_server():
    third = ScriptedServer([(b"<stream:stream", see_other_host(1))])
    second = ScriptedServer([(b"<stream:stream", see_other_host(third.port))])
    target = ScriptedServer(LOGIN_SCRIPT)
    client = Client("device1@localhost", "secret", servers=[("127.0.0.1", second.port), ("127.0.0.1", target.port)],
                    tls="none", insecure_plain=True, mechanisms=("PLAIN",))
    assert client.connect(TIMEOUT_MS) == "device1@localhost/fake"
    assert (client.host, client.port) == ("127.0.0.1", target.port)
    client.close()
    for server in (third, second, target):
        server.join()


# -- authentication, binding ----------------------------------------------------------------------------


def test_plain_over_starttls(prosody):
    client = device(prosody, mechanisms=("PLAIN",))
    client.connect(TIMEOUT_MS)
    assert client.session.mechanism == "PLAIN"
    client.close()


def test_plain_in_the_clear_takes_two_round_trips(prosody_plain):
    client = device(prosody_plain, tls="none", ca=None, insecure_plain=True, mechanisms=("PLAIN",))
    flights = []
    last = []

    def trace(direction, data):
        # A new flight: we send after having received since our last send.
        if direction == "send" and (not last or last[-1] == "recv"):
            flights.append(data)
        last.append(direction)

    client.trace = trace
    client.connect(TIMEOUT_MS)
    assert client.session.mechanism == "PLAIN"
    assert len(flights) == 2 and client.session.flights == 2
    client.close()


def test_scram_in_the_clear_without_insecure_plain(prosody_plain):
    # SASL2 (the server offers it): header; <authenticate/> with Bind2; <response/>.
    client = device(prosody_plain, tls="none", ca=None)
    client.connect(TIMEOUT_MS)
    assert client.session.mechanism == "SCRAM-SHA-1" and client.session.sasl2_used
    assert client.session.flights == 3
    client.close()


CONNECT_CODE = ("xmpp_lite.sasl", "xmpp_lite.connecting", "xmpp_lite.certs", "xmpp_lite.dns")
TROUBLE_CODE = ("xmpp_lite.parser_rare", "xmpp_lite.streamerror")  # what a stream error may have loaded


@pytest.mark.parametrize("tls", ["none", "required"])
def test_logging_in_again_after_the_connect_code_was_unloaded(prosody, prosody_plain, tls, monkeypatch):
    # MicroPython unloads the SASL mechanisms and the connection code once an attempt is over
    # (test_micropython_vm_client checks that); here the same path on CPython: the next login imports them
    # again, and the TLS context made at the first connection (the CA parsed into it) serves the second.
    monkeypatch.setattr("xmpp_lite.client.MICROPYTHON", True)
    server = prosody_plain if tls == "none" else prosody
    client = device(server, tls=tls, ca=None if tls == "none" else server.ca_path)
    client.connect(TIMEOUT_MS)
    try:
        assert not [name for name in CONNECT_CODE if name in sys.modules]
        assert (client._tls_context is None) == (tls == "none")
        client.send_message(server.jid("device1"), "after the login")
    finally:
        client.close()
    context = client._tls_context
    # As if the last connection had ended in an XML error: the next attempt lets that code go first.
    import xmpp_lite.parser_rare  # noqa: F401
    import xmpp_lite.streamerror  # noqa: F401

    client.connect(TIMEOUT_MS)
    assert client.connected and not [name for name in CONNECT_CODE + TROUBLE_CODE if name in sys.modules]
    assert client._tls_context is context
    client.close()


def test_classic_sasl_when_sasl2_is_turned_off(prosody_plain):
    # Header; <auth/>; <response/>; header again with the bind request.
    client = device(prosody_plain, tls="none", ca=None, sasl2=False)
    client.connect(TIMEOUT_MS)
    assert client.session.mechanism == "SCRAM-SHA-1" and not client.session.sasl2_used
    assert client.session.flights == 4
    client.close()


def test_plain_refused_in_the_clear_without_insecure_plain(prosody_plain):
    client = device(prosody_plain, tls="none", ca=None, mechanisms=("PLAIN",))
    with pytest.raises(AuthError) as caught:
        client.connect(TIMEOUT_MS)
    assert caught.value.condition == "invalid-mechanism"


def test_wrong_password_is_exactly_one_auth_error(prosody):
    client = Client(prosody.jid("device1"), "not-the-password", host="127.0.0.1", port=prosody.c2s_port,
                    ca=prosody.ca_path)
    sent = []
    client.trace = lambda direction, data: direction == "send" and sent.append(data)
    with pytest.raises(AuthError) as caught:
        client.connect(TIMEOUT_MS)
    assert caught.value.condition == "not-authorized"
    assert b"".join(sent).count(b"<auth") == 1
    assert not client.connected


def test_sasl2_sends_the_initial_presence_behind_its_last_sasl_message(prosody, controller):
    client = device(prosody)
    flights = []
    client.trace = lambda direction, data: direction == "send" and flights.append(bytes(data))
    try:
        jid = client.connect(TIMEOUT_MS, presence=make_presence(to=controller.jid, status="first words"))
        assert client.session.sasl2_used and client.session.presence_sent
        # After STARTTLS: header; <authenticate/> with Bind2; <response/> with the presence behind it.
        carrier = [data for data in flights if b"<presence" in data]
        assert len(carrier) == 1 and carrier[0].find(b"<response") < carrier[0].find(b"<presence")
        assert client.session.login_round_trips == flights.index(carrier[0])
        assert controller.next_from(controller.presences, jid, client)["status"] == "first words"
    finally:
        client.close()


def test_sasl2_binds_a_chosen_resource_and_classic_sasl_still_works(prosody):
    for sasl2 in (True, False):
        client = device(prosody, resource="pick-%s" % sasl2, sasl2=sasl2)
        assert client.connect(TIMEOUT_MS) == "device1@localhost/pick-%s" % sasl2
        assert client.session.sasl2_used == sasl2
        client.close()


def test_sasl_cache_skips_pbkdf2_next_time(prosody):
    cache = {}
    for _ in range(2):
        client = device(prosody, sasl_cache=cache)
        client.connect(TIMEOUT_MS)
        client.close()
    assert len(cache) == 1 and list(cache)[0].startswith("SCRAM-SHA-1,")


def test_bind_configured_and_server_assigned_resource(prosody):
    client = device(prosody, resource="sensor-1")
    assert client.connect(TIMEOUT_MS) == "device1@localhost/sensor-1"
    client.close()
    client = device(prosody)
    jid = client.connect(TIMEOUT_MS)
    assert jid.startswith("device1@localhost/") and len(jid) > len("device1@localhost/")
    client.close()


def test_connection_refused_is_a_clear_os_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]  # closed again: nothing listens there
    client = Client("device1@localhost", "secret", host="127.0.0.1", port=port)
    with pytest.raises(OSError) as caught:
        client.connect(2000)
    assert "cannot connect to 127.0.0.1:%d" % port in str(caught.value)


# -- stanzas both ways, iq answers, with slixmpp ------------------------------------------------------------


def test_presence_and_messages_both_ways(prosody, controller):
    client = device(prosody, resource="chat")
    messages, presences = [], []
    client.on_message = messages.append
    client.on_presence = presences.append
    jid = client.connect(TIMEOUT_MS)
    try:
        client.send_presence(status="21.5 C", show="chat", to=controller.jid)
        presence = controller.next_from(controller.presences, jid, client)
        assert presence["status"] == "21.5 C" and presence["show"] == "chat"

        message_id = client.send_message(controller.jid, TRICKY_BODY)
        message = controller.next_from(controller.messages, jid, client)
        assert message["body"] == TRICKY_BODY and message["id"] == message_id

        controller.send_message(jid, TRICKY_BODY + " back")
        poll_until(client, lambda: any(m.get("from") == controller.jid for m in messages))
        received = [m for m in messages if m.get("from") == controller.jid][0]
        assert received.find_text("body") == TRICKY_BODY + " back"

        controller.send_presence(jid, "watching")
        poll_until(client, lambda: any(p.get("from") == controller.jid for p in presences))
        assert [p for p in presences if p.get("from") == controller.jid][0].find_text("status") == "watching"
    finally:
        client.close()


def test_ping_disco_version_and_unknown_iq(prosody, controller):
    client = device(prosody, resource="answers")
    client.register_iq_handler("urn:example:sensor", lambda iq: None)
    jid = client.connect(TIMEOUT_MS)
    try:
        assert controller.wait(controller.submit(controller.ping(jid)), client) >= 0
        features, identities = controller.wait(controller.submit(controller.disco_info(jid)), client)
        assert features == sorted(["http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version",
                                   "urn:example:sensor"])
        assert identities == [("client", "bot")]
        name, version = controller.wait(controller.submit(controller.version(jid)), client)
        assert name == "xmpp_lite" and version
        assert controller.wait(controller.submit(controller.unknown_iq(jid)), client) == (
            "cancel", "service-unavailable")
    finally:
        client.close()


def test_send_iq_answer_goes_to_on_iq(prosody):
    client = device(prosody)
    answers = []
    client.on_iq = answers.append
    client.connect(TIMEOUT_MS)
    try:
        stanza_id = client.send_iq("get", Element("ping", xmlns="urn:xmpp:ping"), to="localhost")
        poll_until(client, lambda: answers)
        assert answers[0].get("id") == stanza_id and answers[0].get("type") == "result"
    finally:
        client.close()


# -- in-band registration -------------------------------------------------------------------------------


def test_in_band_registration_creates_a_working_account(prosody):
    user = "reg" + secrets.token_hex(4)
    password = secrets.token_urlsafe(12)
    options = dict(host="127.0.0.1", port=prosody.c2s_port, ca=prosody.ca_path)
    assert Client(prosody.jid(user), password, **options).register(timeout_ms=TIMEOUT_MS) == user
    client = Client(prosody.jid(user), password, **options)
    assert client.connect(TIMEOUT_MS).startswith(prosody.jid(user) + "/")
    client.close()
    with pytest.raises(RegistrationError) as caught:
        Client(prosody.jid(user), "other", **options).register(timeout_ms=TIMEOUT_MS)
    assert caught.value.condition == "conflict" and "already taken" in str(caught.value)


# -- the same client on the MicroPython VM ----------------------------------------------------------------


def test_micropython_vm_client(prosody, prosody_plain, controller, mpy_lib, tmp_path):
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.fail("no micropython binary beside %s; run `make bootstrap`" % sys.executable, pytrace=False)
    wrong_der = tmp_path / "wrong.der"
    wrong_der.write_bytes(ssl.PEM_cert_to_DER_cert(open(prosody.wrong_cert_path).read()))
    new_user = "vm" + secrets.token_hex(4)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        # From .mpy, as a board runs it: compiling a module loaded on demand (the login's mechanisms)
        # from source needs more contiguous heap than a long-running capped VM has left.
        "lib": mpy_lib, "host": "127.0.0.1", "port": prosody.c2s_port,
        "plain_port": prosody_plain.c2s_port, "ca_der": prosody.ca_der_path, "wrong_ca": str(wrong_der),
        "jid": prosody.jid("device1"), "password": prosody.accounts["device1"],
        "plain_password": prosody_plain.accounts["device1"],
        "new_jid": prosody.jid(new_user), "new_password": secrets.token_urlsafe(12),
        "controller": controller.jid, "status": "vm 21.5 C", "timeout_ms": TIMEOUT_MS, "max_polls": 600,
    }))
    process = subprocess.Popen([micropython, "-X", "heapsize=" + VM_HEAP, DEVICE_SCRIPT, str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in process.stdout], daemon=True).start()
    output = []

    def next_line(timeout=VM_TIMEOUT):
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("the VM said nothing for %.0f s; so far:\n%s" % (timeout, "\n".join(output)))
        output.append(line)
        return line

    try:
        assert next_line() == "WRONG-CERT refused", output
        assert next_line() == "BAD-PASSWORD not-authorized 1", output
        plain = next_line().split()
        assert plain[0] == "PLAIN" and plain[2] == "PLAIN" and plain[3] == "2", output
        assert next_line() == "REGISTERED " + new_user, output
        assert next_line().startswith("NEW-ONLINE %s/" % prosody.jid(new_user)), output
        online = next_line().split()
        assert online[0] == "ONLINE" and online[1] == prosody.jid("device1") + "/vm", output
        assert online[2] == "SCRAM-SHA-1" and online[4] == "sasl-unloaded", output
        jid = online[1]

        assert controller.next_from(controller.presences, jid)["status"] == "vm 21.5 C"
        controller.send_message(jid, TRICKY_BODY)
        assert controller.next_from(controller.messages, jid)["body"] == TRICKY_BODY
        assert controller.wait(controller.submit(controller.ping(jid))) >= 0
        features, identities = controller.wait(controller.submit(controller.disco_info(jid)))
        assert features == sorted(["http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version"])
        assert controller.wait(controller.submit(controller.version(jid)))[0] == "xmpp_lite"
        assert controller.wait(controller.submit(controller.unknown_iq(jid))) == ("cancel", "service-unavailable")
        controller.send_message(jid, "quit")
        assert next_line() == "BYE", output
        assert process.wait(VM_TIMEOUT) == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
