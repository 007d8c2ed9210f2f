"""A hostile server against the real library, on CPython and on the MicroPython VM (library as .mpy, VM_HEAP).

One scripted server (TLS from a throw-away test CA) plays every case to one device, a RobustClient
(tests/host/hostile_device.py) run once per runtime. Each case takes one connection: the attack, at login
(downgrade, bad certificates, SCRAM abuse) or once online (XML attacks, floods). The next connection is a
clean login, in which the server pings the device: that proves it came back by itself, within its backoff,
and answers. The device prints one "STATE offline <error>" line per lost connection, in order; the server
keeps what it saw per case. Each case is then its own test, asserting on both.
"""

import datetime
import json
import os
import queue
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from base64 import b64decode, b64encode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from host_tools import testca
from host_tools.tools import find_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_SCRIPT = os.path.join(ROOT, "tests", "host", "hostile_device.py")
# The 1000-message STARTTLS session's smallest heap (bench_client: 100-102k, .mpy) + 16k would be 116-118k.
# This device is a RobustClient with a heartbeat (8 KB more code than a bare Client, and names that cross
# the VM's next pool of names, 7 KB, where a bare Client's stay below it): each worst attack alone needs
# 120-128k (bench_hostile), and all 26 in one process failed two XML attacks at 136k, passed at 140k.
VM_HEAP = "144k"
WAIT = 30.0  # seconds for any one exchange (the VM is slow at SCRAM and at a 10000-stanza flood)
BACKOFF_MS = 300  # the device's fixed reconnection delay: each case must be back within it, plus a login
FLOOD = 10000
DOMAIN = "localhost"
JID = "device1@localhost"
FULL_JID = JID + "/hostile"
PASSWORD = "hostile-secret"

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
          b"streams' id='h1' from='localhost' version='1.0'>")
FEATURES_TLS = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                b"</stream:features>")
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
FEATURES_BIND = b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
SUCCESS = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
STREAM_END = b"</stream:stream>"


def features(*mechanisms):
    return (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            + b"".join(b"<mechanism>" + name + b"</mechanism>" for name in mechanisms)
            + b"</mechanisms></stream:features>")


class Link:
    """One accepted connection: bytes in with expect(), out with send(); STARTTLS on the server side."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(WAIT)
        self.received = b""
        self.pos = 0
        self.header = HEADER  # the server's stream header; its id names the case (see HostileServer)

    def send(self, data):
        self.sock.sendall(data)

    def read_some(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the device closed the connection")
        self.received += chunk
        return chunk

    def expect(self, pattern):
        """Read until ``pattern`` (a regex, bytes) matches after what earlier expects took; the match."""
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.received, self.pos)
            if match is not None:
                self.pos = match.end()
                return match
            self.read_some()

    def read_to_end(self):
        """Everything until the device closes (or WAIT passes)."""
        try:
            while True:
                self.read_some()
        except (EOFError, OSError):
            pass
        return self.received

    def starttls(self, context):
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(WAIT)
        self.received = b""
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- certificates -----------------------------------------------------------------------------------------------


def _issue(directory, name, ca_key, ca_name, dns_names, not_before, not_after):
    key = testca._new_key()
    cert = (testca._leaf_extensions(x509.CertificateBuilder().subject_name(testca._name(dns_names[0]))
                                    .issuer_name(ca_name).public_key(key.public_key())
                                    .serial_number(x509.random_serial_number())
                                    .not_valid_before(not_before).not_valid_after(not_after),
                                    dns_names, ["127.0.0.1"])
            .sign(ca_key, hashes.SHA256()))
    cert_path = os.path.join(directory, name + ".pem")
    key_path = os.path.join(directory, name + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(str(tmp_path_factory.mktemp("hostile-pki")))


def make_certificates(directory):
    """Server contexts by name: good, expired, wrong-name, self-signed, wrong-ca; and the trusted CA (DER)."""
    pki = testca.create(directory, DOMAIN)
    other = testca.create(os.path.join(directory, "other"), DOMAIN)
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(pki.ca_cert, "rb") as f:
        ca_name = x509.load_pem_x509_certificate(f.read()).subject
    now = datetime.datetime.now(datetime.timezone.utc)
    pairs = {
        "good": (pki.server_cert, pki.server_key),
        "expired": _issue(directory, "expired", ca_key, ca_name, [DOMAIN], now - datetime.timedelta(days=30),
                          now - datetime.timedelta(days=2)),
        "wrong-name": _issue(directory, "wrong-name", ca_key, ca_name, ["other.example"],
                             now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)),
        "self-signed": (pki.wrong_cert, pki.wrong_key),
        "wrong-ca": (other.server_cert, other.server_key),
    }
    contexts = {}
    for name, (cert, key) in pairs.items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        contexts[name] = context
    return contexts, pki.ca_der


# -- the server's side of a login ---------------------------------------------------------------------------------


def login(link, tls):
    """A clean STARTTLS + PLAIN + bind login; the device is online when this returns."""
    link.expect(rb"<starttls")
    link.send(link.header + FEATURES_TLS)
    link.send(PROCEED)
    link.starttls(tls["good"])
    link.expect(rb"<stream:stream")
    link.send(link.header + features(b"PLAIN"))
    auth = link.expect(rb"<auth [^>]*>([^<]*)</auth>")
    if b64decode(auth.group(1)) != b"\0device1\0" + PASSWORD.encode():
        raise AssertionError("PLAIN with wrong credentials: %r" % auth.group(1))
    link.send(SUCCESS)
    link.expect(rb"<stream:stream")
    bind = link.expect(rb"<iq [^>]*id=[\"']([^\"']+)[^>]*>.*?</iq>")
    link.send(link.header + FEATURES_BIND + b"<iq type='result' id='" + bind.group(1) + b"'><bind xmlns='urn:ietf:params"
              b":xml:ns:xmpp-bind'><jid>" + FULL_JID.encode() + b"</jid></bind></iq>")


def ping(link, stanza_id):
    link.send(b"<iq type='get' id='" + stanza_id + b"' from='localhost' to='" + FULL_JID.encode()
              + b"'><ping xmlns='urn:xmpp:ping'/></iq>")
    link.expect(rb"<iq [^>]*id=[\"']" + stanza_id + rb"[\"'][^>]*>|<iq [^>]*id=[\"']" + stanza_id + rb"[\"']")
    return True


_BLOCKED = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


def exchange(link, chunks, enough=lambda: False, timeout=4 * WAIT):
    """Send ``chunks`` (an iterable of bytes) while reading the device's output, in this one thread (an SSL
    socket must not be used by two); until all is sent and ``enough()``, or the device hangs up."""
    sock = link.sock
    sock.setblocking(False)
    pending, chunks = b"", iter(chunks)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not pending:
                pending = next(chunks, None)
                if pending is None:
                    pending = b""
                    if enough():
                        return
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.2)
            if readable or getattr(sock, "pending", lambda: 0)():
                try:
                    chunk = sock.recv(65536)
                except _BLOCKED:
                    chunk = None
                if chunk == b"":
                    return  # the device hung up
                if chunk:
                    link.received += chunk
            if writable and pending:
                try:
                    pending = pending[sock.send(pending[:16384]):]
                except _BLOCKED:
                    pass
    except OSError:
        pass  # reset by the device: it hung up on the attack
    finally:
        sock.settimeout(WAIT)


# -- the cases ------------------------------------------------------------------------------------------------------
# Each returns what the server saw (a dict); it runs on the attack connection, from its first byte.


def downgrade(link, tls, seen):
    link.expect(rb"<starttls")
    link.send(link.header + features(b"PLAIN"))  # STARTTLS stripped
    seen["sent"] = link.read_to_end()


def bad_certificate(name):
    def case(link, tls, seen):
        link.expect(rb"<starttls")
        link.send(link.header + FEATURES_TLS + PROCEED)
        try:
            link.starttls(tls[name])
            seen["sent"] = link.read_to_end()
        except (ssl.SSLError, OSError) as error:
            seen["handshake"] = str(error)
            seen["sent"] = b""
    return case


def plaintext_after_proceed(link, tls, seen):
    link.expect(rb"<starttls")
    link.send(link.header + FEATURES_TLS + PROCEED)
    time.sleep(0.3)  # the device is in its handshake by now: this is not read as part of <proceed/>'s chunk
    link.send(link.header + features(b"PLAIN"))
    seen["sent"] = link.read_to_end()


def scram(kind):
    def case(link, tls, seen):
        link.expect(rb"<starttls")
        link.send(link.header + FEATURES_TLS + PROCEED)
        link.starttls(tls["good"])
        link.expect(rb"<stream:stream")
        link.send(link.header + features(b"SCRAM-SHA-1"))
        first = link.expect(rb"<auth [^>]*>([^<]*)</auth>")
        client_nonce = re.search(rb"r=([^,]+)", b64decode(first.group(1))).group(1)
        nonce = b"someone-else" if kind == "nonce" else client_nonce + b"server"
        iterations = b"2147483647" if kind == "iterations" else b"4096"
        challenge = b"r=" + nonce + b",s=" + b64encode(b"salt-of-16-bytes") + b",i=" + iterations
        link.send(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64encode(challenge) + b"</challenge>")
        if kind == "signature":
            link.expect(rb"</response>")
            link.send(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64encode(b"v=" + b64encode(b"x" * 20))
                      + b"</success>")
        seen["sent"] = link.read_to_end()
    return case


def xml_attack(chunks):
    def case(link, tls, seen):
        login(link, tls)
        exchange(link, chunks(), timeout=WAIT)
        seen["sent"] = link.read_to_end()
    return case


def repeat(piece, total):
    """``total`` bytes of ``piece`` over and over, in 64 KB chunks."""
    chunk = piece * (65536 // len(piece))
    sent = 0
    while sent < total:
        yield chunk
        sent += len(chunk)


def long_token(opening, piece, total, closing=b""):
    def chunks():
        yield opening
        yield from repeat(piece, total)
        yield closing
    return chunks


def once(data):
    return lambda: iter([data])


def flood(make, count=FLOOD, answered=False):
    """``count`` stanzas make(n); with ``answered`` each must get its error reply. The device stays online."""
    def case(link, tls, seen):
        login(link, tls)
        batch = 200
        chunks = (b"".join(make(n) for n in range(start, min(start + batch, count)))
                  for start in range(0, count, batch))
        answers = [0]

        def enough():
            answers[0] = link.received.count(b"<service-unavailable ")
            return not answered or answers[0] >= count

        exchange(link, chunks, enough)
        enough()
        seen["answers"] = answers[0]
        seen["online_after"] = ping(link, b"after-flood")
        link.send(STREAM_END)
        seen["sent"] = link.read_to_end()
    return case


def unknown_iq_get(n):
    return b"<iq type='get' id='f%d' from='a@localhost/r'><q xmlns='urn:example:unknown'/></iq>" % n


def message(n):
    return b"<message from='a@localhost/r' type='chat'><body>m%d</body></message>" % n


def huge_presence(n):
    return b"<presence from='a%d@localhost/r'><status>" % n + b"s" * 15000 + b"</status></presence>"


def presence(n):
    return b"<presence from='a%d@localhost/r'><status>on</status></presence>" % n


def iq_result(n):
    return b"<iq type='result' id='r%d' from='a@localhost/r'/>" % n


CASES = {
    # name: (the server's side, the error class the device reports for the attack connection)
    "downgrade": (downgrade, "ProtocolError"),
    "cert-expired": (bad_certificate("expired"), "TLSError"),
    "cert-wrong-name": (bad_certificate("wrong-name"), "TLSError"),
    "cert-self-signed": (bad_certificate("self-signed"), "TLSError"),
    "cert-wrong-ca": (bad_certificate("wrong-ca"), "TLSError"),
    "plaintext-after-proceed": (plaintext_after_proceed, "TLSError"),
    "scram-wrong-nonce": (scram("nonce"), "AuthError"),
    "scram-wrong-signature": (scram("signature"), "AuthError"),
    "scram-absurd-iterations": (scram("iterations"), "AuthError"),
    "xml-depth": (xml_attack(once(b"<message>" + b"<a>" * 100)), "XMLError"),
    "xml-attribute-count": (xml_attack(long_token(b"<message", b" a='1'", 1000000, b"/>")), "XMLError"),
    "xml-long-name": (xml_attack(long_token(b"<message><", b"n", 100000, b"/></message>")), "XMLError"),
    "xml-long-attribute": (xml_attack(long_token(b"<message a='", b"v", 1000000, b"'/>")), "XMLError"),
    "xml-long-text": (xml_attack(long_token(b"<message><body>", b"t", 10000000)), "XMLError"),
    "xml-long-cdata": (xml_attack(long_token(b"<message><body><![CDATA[", b"c", 10000000)), "XMLError"),
    "xml-junk-at-depth-1": (xml_attack(long_token(b"", b"junk ", 100000)), "XMLError"),
    "xml-invalid-utf8": (xml_attack(once(b"<message><body>\xff\xfe\xc3</body></message>")), "XMLError"),
    "xml-entity": (xml_attack(once(b"<message><body>&lol;</body></message>")), "XMLError"),
    "xml-doctype": (xml_attack(once(b"<!DOCTYPE lol [<!ENTITY lol 'lol'>]><message/>")), "XMLError"),
    "xml-comment": (xml_attack(once(b"<!-- a comment --><message/>")), "XMLError"),
    "xml-pi": (xml_attack(once(b"<?xml-stylesheet href='x'?><message/>")), "XMLError"),
    # Floods end with the server's own stream end, after a ping on the same connection: "OSError" is that end.
    "flood-unknown-iq-gets": (flood(unknown_iq_get, answered=True), "OSError"),
    "flood-messages": (flood(message), "OSError"),
    "flood-huge-presences": (flood(huge_presence, 200), "OSError"),
    "flood-presences": (flood(presence), "OSError"),
    "flood-unknown-iq-results": (flood(iq_result), "OSError"),
}

CREDENTIALS = (b"\0device1\0", PASSWORD.encode(), b64encode(b"\0device1\0" + PASSWORD.encode()))


# -- the run: one server, one device per runtime ---------------------------------------------------------------


class HostileServer:
    """Plays every case in ``names``, each followed by a clean login that pings the device; ``seen`` per case."""

    def __init__(self, tls, names):
        self.tls = tls
        self.names = names
        self.seen = {name: {} for name in names}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _accept(self):
        sock, _ = self.listener.accept()
        return Link(sock)

    def _serve(self):
        try:
            for index, name in enumerate(self.names):
                seen = self.seen[name]
                try:
                    link = self._accept()
                except OSError as error:
                    seen["error"] = "the device did not connect: %r" % error
                    return
                link.header = HEADER.replace(b"id='h1'", b"id='" + name.encode() + b"-attack'")
                try:
                    CASES[name][0](link, self.tls, seen)
                except Exception as error:  # noqa: BLE001 - kept for the case's test to report
                    seen["error"] = "%s: %r" % (type(error).__name__, error)
                finally:
                    link.close()
                attack_over = time.monotonic()
                try:
                    link = self._accept()
                except OSError as error:
                    seen["recovery_error"] = "the device did not come back: %r" % error
                    return
                seen["back_after_s"] = time.monotonic() - attack_over
                link.header = HEADER.replace(b"id='h1'", b"id='" + name.encode() + b"-back'")
                try:
                    login(link, self.tls)
                    seen["recovered"] = ping(link, b"back")
                    if index == len(self.names) - 1:
                        link.send(b"<message from='controller@localhost/x' type='chat'><body>quit</body></message>")
                    else:
                        link.send(STREAM_END)
                    link.read_to_end()
                except Exception as error:  # noqa: BLE001 - kept for the case's test to report
                    seen["recovery_error"] = "%s: %r" % (type(error).__name__, error)
                finally:
                    link.close()
        finally:
            self.listener.close()


def run_device(runtime, lib, port, ca_der, folder, heap=VM_HEAP, live_heap=False):
    config = folder / ("hostile-%s.json" % runtime)
    config.write_text(json.dumps({
        "lib": lib, "jid": JID, "password": PASSWORD, "host": "127.0.0.1", "port": port, "ca": ca_der,
        "connect_timeout_ms": int(WAIT * 1000), "backoff_ms": BACKOFF_MS, "max_polls": 200000,
        "live_heap": live_heap,
    }))
    if runtime == "micropython":
        micropython = find_tool("micropython")
        if micropython is None:
            pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
        command = [micropython, "-X", "heapsize=" + heap, DEVICE_SCRIPT, str(config)]
    else:
        command = [sys.executable, "-u", DEVICE_SCRIPT, str(config)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def hostile_run(runtime, lib, certificates, folder, names, heap=VM_HEAP, live_heap=False):
    """Every case in ``names`` against one device; returns {"seen", "offline" (case -> (class, text)), "output"}."""
    tls, ca_der = certificates
    server = HostileServer(tls, names)
    process = run_device(runtime, lib, server.port, ca_der, folder, heap, live_heap)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in process.stdout], daemon=True).start()
    try:
        server.thread.join(len(names) * 6 * WAIT)
        process.wait(WAIT)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.1)
    output = []
    while not lines.empty():
        output.append(lines.get())
    # "STATE offline <stream id> <error class> <text>": the server's stream id names the case and the connection.
    by_case, after = {}, {}
    for line in output:
        if line.startswith("STATE offline "):
            stream_id, error_class, text = (line.split(" ", 4) + [""])[2:5]
            name, _, connection = stream_id.rpartition("-")
            (by_case if connection == "attack" else after).setdefault(name, (error_class, text))
    return {"seen": server.seen, "offline": by_case, "after": after, "output": output}


@pytest.fixture(scope="module", params=["cpython", "micropython"])
def hostile(request, certificates, mpy_lib, tmp_path_factory):
    runtime = request.param
    lib = os.path.join(ROOT, "lib") if runtime == "cpython" else mpy_lib
    return hostile_run(runtime, lib, certificates, tmp_path_factory.mktemp("hostile-" + runtime), list(CASES))


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_peer(hostile, case):
    seen = hostile["seen"][case]
    output = "\n".join(hostile["output"][-40:])
    assert "error" not in seen, "%s: the server's side failed: %s\n%s" % (case, seen["error"], output)
    expected = CASES[case][1]
    offline = hostile["offline"].get(case)
    assert offline is not None, "%s: the device never went offline\n%s" % (case, output)
    assert offline[0] == expected, "%s: %s, not %s\n%s" % (case, " ".join(offline), expected, output)
    sent = seen.get("sent", b"")
    if case.startswith(("downgrade", "cert-", "plaintext-", "scram-")):
        assert not any(secret in sent for secret in CREDENTIALS), "%s: credentials went out" % case
    if case.startswith("xml-"):
        error_at = sent.find(b"<stream:error")
        assert 0 <= error_at < sent.rfind(STREAM_END), "%s: no stream error before the stream end: %r" % (
            case, sent[-300:])
    if case.startswith("flood-"):
        assert seen.get("online_after"), "%s: the device did not answer a ping after the flood" % case
    if case == "flood-unknown-iq-gets":
        assert seen["answers"] == FLOOD, "%d of %d iq gets answered" % (seen["answers"], FLOOD)
    # Back by itself within its backoff (plus a connection), and answering.
    assert "recovery_error" not in seen, "%s: %s\n%s" % (case, seen["recovery_error"], output)
    assert seen.get("recovered") and seen["back_after_s"] < BACKOFF_MS / 1000 + 5, seen
    if case in hostile["after"]:  # the clean login's end: the server's, not a MemoryError
        assert hostile["after"][case][0] == "OSError", "%s: then %s" % (case, " ".join(hostile["after"][case]))
    assert "Traceback" not in output, output


# -- the output path: one write per poll, bounded output under a flood (CPython, in-process) ------------------------


def online_client(certificates, script):
    """A Client logged in to a one-connection server that then runs ``script(link)`` in its thread."""
    from xmpp_lite.client import Client

    tls, ca_der = certificates
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    ready = threading.Event()
    state = {}

    def serve():
        sock, _ = listener.accept()
        link = Link(sock)
        try:
            login(link, tls)
            ready.wait(WAIT)
            script(link)
            state["received"] = link.read_to_end()
        except Exception as error:  # noqa: BLE001 - the test reports it
            state["error"] = repr(error)
        finally:
            link.close()
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Client(JID, PASSWORD, host="127.0.0.1", port=listener.getsockname()[1], ca=ca_der, resource="hostile")
    client.connect(int(WAIT * 1000))
    writes = []
    client.trace = lambda direction, data: direction == "send" and writes.append(bytes(data))
    ready.set()
    return client, writes, thread, state


def test_what_one_poll_has_to_send_goes_out_in_one_write(certificates):
    from xmpp_lite.client import SEND_BUFFER_SIZE

    burst = b"".join(unknown_iq_get(n) for n in range(6))
    client, writes, thread, state = online_client(certificates, lambda link: link.send(burst))
    try:
        deadline = time.monotonic() + WAIT
        while sum(data.count(b"<service-unavailable") for data in writes) < 6 and time.monotonic() < deadline:
            client.poll(50)
        replies = b"".join(writes)
        assert replies.count(b"<service-unavailable") == 6
        assert len(replies) <= SEND_BUFFER_SIZE and len(writes) == 1, [len(data) for data in writes]
    finally:
        client.close()
        thread.join(WAIT)


def test_a_flood_is_answered_in_full_with_bounded_output(certificates):
    from xmpp_lite.client import SEND_BUFFER_SIZE
    from xmpp_lite.session import MAX_REPLY_BACKLOG, OUTPUT_PAUSE_BYTES

    count = 2000
    flood_bytes = b"".join(unknown_iq_get(n) for n in range(count))
    client, writes, thread, state = online_client(
        certificates, lambda link: exchange(link, [flood_bytes], lambda: link.received.count(b"<service-") >= count))
    most_pending = 0
    try:
        deadline = time.monotonic() + WAIT
        answered = 0
        while answered < count and time.monotonic() < deadline:
            client.poll(20)
            most_pending = max(most_pending, client.session.output_pending)
            answered = b"".join(writes).count(b"<service-unavailable")
        assert answered == count and client.session.refused_iqs == 0
        # Backpressure: input waits while OUTPUT_PAUSE_BYTES are queued, so the queue never nears the refusal line.
        assert most_pending < MAX_REPLY_BACKLOG and most_pending < OUTPUT_PAUSE_BYTES + 2048, most_pending
        assert max(len(data) for data in writes) <= SEND_BUFFER_SIZE
    finally:
        client.close()
        thread.join(WAIT)
