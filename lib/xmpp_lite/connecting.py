"""What a client needs only while it connects: the TCP connect, TLS, the login loop.

xmpp_lite.client and xmpp_lite.aio import this module for a connection attempt; on MicroPython they
unload it again (xmpp_lite.unload) once the attempt is over, with xmpp_lite.certs: a board online keeps
none of it in RAM. Where to connect (a server list, or DNS SRV) is xmpp_lite.dns's, described in
xmpp_lite.client's docstring.
"""

import errno
import select
import socket

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, TLS_ERRORS, ticks_diff, ticks_ms
from xmpp_lite.errors import TLSError, describe
from xmpp_lite.linkstate import CONNECT_TIMEOUT_MS
from xmpp_lite.session import EVENT_REGISTERED, TLS_DIRECT, TLS_NONE, Session
from xmpp_lite.stream import StreamError

# For one server's TCP handshake, so that the next server gets its turn (DNS not included: getaddrinfo
# blocks as long as it takes).
SERVER_CONNECT_TIMEOUT_MS = 10000
_CONNECTING = (errno.EINPROGRESS, errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))


# -- the runtimes' differences in connecting (see xmpp_lite._compat) --------------------------------------

if MICROPYTHON:  # pragma: no cover - MicroPython
    TLS_HANDSHAKE_IN_IO = True  # the handshake happens in the first reads and writes

    def socket_error(sock, events):
        """The errno of a failed non-blocking connect, or 0 if it worked.

        There is no getsockopt: poll flags the failure, a read tells which.
        """
        if not events & (select.POLLERR | select.POLLHUP):
            return 0
        try:
            sock.read(1)
        except OSError as error:
            if error.args and isinstance(error.args[0], int):
                return error.args[0]
        return errno.ECONNREFUSED

    def tls_context(cadata, verify):
        """The client SSLContext: made once per client and kept, it holds the CA certificates parsed.

        ``cadata``: DER certificates to trust. Made before the first login: it is one
        allocation of about 3 KB that a heap fragmented by a login may not have. The
        ``tls`` module directly: ``ssl`` is a Python wrapper over it that only costs heap.
        """
        import tls

        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        if verify:
            if not cadata:
                raise ValueError("MicroPython has no system CA store: pass ca= (or verify=False)")
            context.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]  # the stubs lack it
            for der in cadata:  # mbedTLS parses one DER certificate per call
                context.load_verify_locations(der)
        else:
            context.verify_mode = tls.CERT_NONE  # type: ignore[attr-defined]  # the stubs lack it
        return context

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake runs inside the first reads and writes; their errors are in TLS_ERRORS.
        """
        return context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)

else:
    TLS_HANDSHAKE_IN_IO = False  # wrap_tls does the handshake

    def socket_error(sock, events):
        """The errno of a failed non-blocking connect, or 0 if it worked."""
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake is done here, blocking for at most ``timeout_ms``.
        """
        sock.settimeout(max(timeout_ms, 1) / 1000)
        try:
            tls = context.wrap_socket(sock, server_hostname=server_hostname)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "TLS handshake timed out")
        tls.setblocking(False)
        return tls

    def tls_context(cadata, verify):
        """The client SSLContext, made once per client: ``cadata``, DER certificates to trust (None: the system's)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            if cadata:
                context.load_verify_locations(cadata=b"".join(cadata))
                # A pinned server certificate (not a CA) is trusted as it is.
                context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            else:
                context.load_default_certs()
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class Redirect(Exception):
    """The server sent see-other-host (raised by xmpp_lite.client while connecting)."""

    def __init__(self, host, port):
        super().__init__(host, port)
        self.host = host
        self.port = port


def find_servers(client):
    """The client's servers by DNS (xmpp_lite.dns.find_servers); on MicroPython xmpp_lite.dns is unloaded again."""
    from xmpp_lite import dns

    try:
        return dns.find_servers(client.domain, client.port, client.tls, client.nameserver)
    finally:
        if MICROPYTHON:
            unload("xmpp_lite.dns")  # before the login: it needs the room


def make_tls_context(client, tls):
    """The client's SSLContext, made at its first connection that uses TLS and kept.

    Made before the login leaves the heap in pieces (on MicroPython one object of about 3 KB); the CA
    certificates are parsed into it once and their bytes are not kept. Raises TLSError.
    """
    if tls != TLS_NONE and client._tls_context is None:
        try:
            cadata = None
            if client.verify and client._ca is not None:
                from xmpp_lite.certs import load_ca

                if MICROPYTHON:
                    unload("xmpp_lite.certs")  # needed this once: the next connection has the context
                cadata = load_ca(client._ca)
            client._tls_context = tls_context(cadata, client.verify)
        except TLS_ERRORS as error:
            raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))


# -- xmpp_lite.client.Client's connection attempts -------------------------------------------------


def remaining(client):
    start, timeout_ms = client._deadline
    return timeout_ms - ticks_diff(ticks_ms(), start)


def run(client, registration, timeout_ms):
    """Client.connect and Client.register: the servers in turn, until one takes the login."""
    if client.sock is not None:
        # MicroPython's errno has no EISCONN.
        raise OSError(getattr(errno, "EISCONN", errno.EALREADY), "already connected")
    client._deadline = (ticks_ms(), timeout_ms)
    try:
        # Given, or found by SRV, or the domain itself.
        candidates = client.servers
        if candidates is None:
            candidates = find_servers(client)
        count = len(candidates)
        for turn in range(count):
            index = (client._preferred + turn) % count
            host, port, tls = candidates[index]
            try:
                result = _attempt_following_redirect(client, host, port, tls, registration)
                client._preferred = index
                return result
            except (OSError, StreamError):
                if turn == count - 1 or remaining(client) <= 0:
                    raise
    finally:
        client._deadline = None


def _attempt_following_redirect(client, host, port, tls, registration):
    redirected = False
    while True:
        try:
            return _attempt(client, host, port, tls, registration)
        except Redirect as redirect:
            if redirected:
                raise StreamError("see-other-host", "redirected a second time, to " + redirect.host)
            redirected = True
            host = redirect.host
            port = redirect.port or port


def _attempt(client, host, port, tls, registration):
    client._reached = None
    client._closing = False
    client._more = False
    client._refused_seen = 0
    client.session = None
    client.jid = None
    client.host = host
    client.port = port
    # The session imports the SASL mechanisms once the server's features are read; loaded now instead,
    # while the heap is in one piece: its functions need blocks of up to 1 KB that a heap cut up by TCP,
    # TLS and the stream's first bytes may not have. Only sys.modules holds it (no name here), so that
    # the login unloads it once authenticated, before the bind.
    import xmpp_lite.sasl  # noqa: F401

    make_tls_context(client, tls)
    use_socket(client, _open_socket(client, host, port))
    if tls == TLS_DIRECT:
        start_tls(client)
    session = Session(client._jid, client._password, tls=tls, registration=registration,
                      sm=None if registration is not None else client.sm,
                      presence=client._presence if registration is None else None, **client._options)
    handlers = client._handlers
    for xmlns in handlers:
        session.register_iq_handler(xmlns, handlers[xmlns])
    client.session = session
    session.start()
    try:
        while client._reached is None:
            left = remaining(client)
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "login to %s:%d timed out (session state: %s)"
                              % (host, port, session.state))
            client._pump(left)
            client._handle_events()
    except BaseException:
        client._drop()
        raise
    if client._reached == EVENT_REGISTERED:
        client.close()
        return session.username
    return client.jid


def _open_socket(client, host, port):
    try:
        addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except OSError as error:
        raise OSError(errno.EHOSTUNREACH, "cannot resolve %s: %s" % (host, describe(error)))
    last_error = OSError(errno.EHOSTUNREACH, "no address for " + host)
    for address in addresses:
        sock = socket.socket(address[0], socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                sock.connect(address[-1])
            except OSError as error:
                if not error.args or error.args[0] not in _CONNECTING:
                    raise OSError(error.args[0] if error.args else errno.ECONNREFUSED,
                                  "cannot connect to %s:%d: %s" % (host, port, describe(error)))
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            left = min(remaining(client), SERVER_CONNECT_TIMEOUT_MS)
            events = poller.poll(left) if left > 0 else []
            if not events:
                raise OSError(errno.ETIMEDOUT, "connecting to %s:%d timed out" % (host, port))
            failure = socket_error(sock, events[0][1])
            if failure:
                raise OSError(failure, "cannot connect to %s:%d (errno %d)" % (host, port, failure))
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    raise last_error


def use_socket(client, sock):
    client.sock = sock
    client._poller = poller = select.poll()
    client._mask = select.POLLIN
    poller.register(sock, select.POLLIN)


def warn_unverified(client):
    if not client.verify:
        print("WARNING: xmpp_lite: TLS certificate verification is OFF (verify=False): "
              "anyone on the path to %s can read and change this connection" % client.domain)


def start_tls(client):
    """TLS over the client's socket: from the first byte, or after the server's STARTTLS <proceed/>."""
    warn_unverified(client)
    try:
        sock = wrap_tls(client._tls_context, client.sock, client.domain,
                        max(remaining(client), 1) if client._deadline else CONNECT_TIMEOUT_MS)
    except TLS_ERRORS as error:
        client._drop()
        raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))
    client._tls_pending = TLS_HANDSHAKE_IN_IO
    use_socket(client, sock)
    if client.session is not None:
        client.session.tls_established()
