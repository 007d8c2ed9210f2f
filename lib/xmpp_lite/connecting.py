"""What a client needs only while it connects: the TCP connect, TLS, the login loop.

xmpp_lite.client and xmpp_lite.aio import this module for a connection attempt; on MicroPython they
unload it again (xmpp_lite.unload) once the attempt is over: a board online keeps none of it in RAM.
The TLS context is xmpp_lite.certs's; the DNS SRV lookup xmpp_lite.dns's (see xmpp_lite.client's
docstring). It is in the heap at the login's peak: few functions, few names.
"""

import errno
import select
import socket

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, TLS_ERRORS, const, ticks_add, ticks_diff, ticks_ms
from xmpp_lite.errors import TLSError, describe
from xmpp_lite.linkstate import CONNECT_TIMEOUT_MS
from xmpp_lite.session import TLS_DIRECT, TLS_NONE, Session
from xmpp_lite.stream import StreamError

# xmpp_lite.session's, folded into the code (tests/host/test_client_names.py keeps them equal).
_EVENT_REGISTERED = const(7)

# For one server's TCP handshake, so that the next server gets its turn (DNS not included: getaddrinfo
# blocks as long as it takes).
_SERVER_CONNECT_TIMEOUT_MS = const(10000)


# -- the runtimes' differences in connecting (see xmpp_lite._compat) --------------------------------------

if MICROPYTHON:  # pragma: no cover - MicroPython

    def socket_error(sock, flags):
        """The errno of a failed non-blocking connect (``flags``: its poll events), or 0 if it worked.

        There is no getsockopt: poll flags the failure, a read tells which.
        """
        if not flags & (select.POLLERR | select.POLLHUP):
            return 0
        try:
            sock.read(1)
        except OSError as error:
            if error.args and isinstance(error.args[0], int):
                return error.args[0]
        return errno.ECONNREFUSED

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake runs inside the first reads and writes; their errors are in TLS_ERRORS.
        """
        return context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)

else:
    # CPython's ways live in a module of their own: their names and code never reach a board's heap.
    from xmpp_lite.connecting_cpython import socket_error, wrap_tls


class Redirect(Exception):
    """The server sent see-other-host while connecting: Redirect(host, port), raised by xmpp_lite.streamerror."""


def find_servers(client):
    """The client's servers by DNS (xmpp_lite.dns.find_servers); on MicroPython xmpp_lite.dns is unloaded again."""
    from xmpp_lite.dns import find_servers as look_up

    try:
        return look_up(client.domain, client.port, client.tls, client.nameserver)
    finally:
        if MICROPYTHON:
            unload("xmpp_lite.dns")  # before the login: it needs the room


# -- xmpp_lite.client.Client's connection attempts -------------------------------------------------
# client._deadline: the ticks_ms by which the connect must be done (None once it is over).


def run(client, registration, timeout_ms):
    """Client.connect and Client.register: the servers in turn, until one takes the login.

    One attempt per server (TCP, TLS, the login, until online or registered), which follows one
    see-other-host redirect; an OSError or a StreamError moves on to the next server while time is
    left. One function: each function is code and a name in the heap at the login's peak.
    """
    if client.sock is not None:
        raise OSError(errno.EALREADY, "already connected")
    client._deadline = ticks_add(ticks_ms(), timeout_ms)
    try:
        # Given, or found by SRV, or the domain itself.
        servers = client.servers
        if servers is None:
            servers = find_servers(client)
        count = len(servers)
        turn = 0
        redirect = None  # the (host, port) of a see-other-host being followed
        while True:
            index = (client._preferred + turn) % count
            host, port, tls = servers[index]
            if redirect is not None:
                host = redirect[0]
                port = redirect[1] or port
            try:
                client._reached = None
                client._closing = False
                client._more = False
                client._refused_seen = 0
                client.session = None
                client.jid = None
                client.host = host
                client.port = port
                # The session imports the SASL mechanisms once the server's features are read; loaded now
                # instead, while the heap is in one piece: its functions need blocks of up to 1 KB that a
                # heap cut up by TCP, TLS and the stream's first bytes may not have. Only sys.modules holds
                # it (no name here), so that the login unloads it once authenticated, before the bind.
                import xmpp_lite.sasl  # noqa: F401

                if tls != TLS_NONE and client._tls_context is None:
                    from xmpp_lite.certs import make_tls_context

                    make_tls_context(client)
                # TCP: each address in turn, a non-blocking connect bounded by the deadline and by
                # _SERVER_CONNECT_TIMEOUT_MS.
                try:
                    addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
                except OSError as error:
                    raise OSError(errno.EHOSTUNREACH, "cannot resolve %s: %s" % (host, describe(error)))
                failure = None
                for address in addresses:
                    sock = socket.socket(address[0], socket.SOCK_STREAM)
                    try:
                        sock.setblocking(False)
                        try:
                            sock.connect(address[-1])
                        except OSError as error:
                            # EWOULDBLOCK is EAGAIN on both runtimes' platforms.
                            if not error.args or error.args[0] not in (errno.EINPROGRESS, errno.EAGAIN):
                                raise OSError(error.args[0] if error.args else errno.ECONNREFUSED,
                                              "cannot connect to %s:%d: %s" % (host, port, describe(error)))
                        poller = select.poll()
                        poller.register(sock, select.POLLOUT)
                        left = min(ticks_diff(client._deadline, ticks_ms()), _SERVER_CONNECT_TIMEOUT_MS)
                        events = poller.poll(left) if left > 0 else []
                        if not events:
                            raise OSError(errno.ETIMEDOUT, "connecting to %s:%d timed out" % (host, port))
                        code = socket_error(sock, events[0][1])
                        if code:
                            raise OSError(code, "cannot connect to %s:%d (errno %d)" % (host, port, code))
                        break
                    except OSError as error:
                        sock.close()
                        failure = error
                else:
                    raise failure or OSError(errno.EHOSTUNREACH, "no address for " + host)
                addresses = address = events = None  # this frame lives through the login: they need not
                client.sock = sock
                if tls == TLS_DIRECT:
                    start_tls(client)
                else:  # the connect's poller, from now on for input
                    client._poller = poller
                    client._mask = select.POLLIN
                    poller.modify(sock, select.POLLIN)
                session = Session(tls=tls, registration=registration,
                                  sm=None if registration is not None else client.sm,
                                  presence=client._presence if registration is None else None, **client._options)
                handlers = client._handlers
                for xmlns in handlers:
                    session.register_iq_handler(xmlns, handlers[xmlns])
                client.session = session
                session.start()
                try:
                    while client._reached is None:
                        left = ticks_diff(client._deadline, ticks_ms())
                        if left <= 0:
                            raise OSError(errno.ETIMEDOUT, "login to %s:%d timed out (session state: %s)"
                                          % (host, port, session.state))
                        client._pump(left)
                        client._handle_events()
                except BaseException:
                    client._drop()
                    raise
                client._preferred = index
                if client._reached == _EVENT_REGISTERED:
                    client.close()
                    return session.username
                return client.jid
            except (OSError, StreamError, Redirect) as error:
                if isinstance(error, Redirect):
                    if redirect is None:
                        redirect = error.args
                        continue  # the same server's turn, at the address it gave
                    error = StreamError("see-other-host", "redirected a second time, to " + error.args[0])
                if turn == count - 1 or ticks_diff(client._deadline, ticks_ms()) <= 0:
                    raise error
                turn += 1
                redirect = None
    finally:
        client._deadline = None


def start_tls(client):
    """TLS over the client's socket: from the first byte, or after the server's STARTTLS <proceed/>."""
    if not client.verify:  # xmpp_lite.aiolink says the same
        print("WARNING: xmpp_lite: TLS certificate verification is OFF (verify=False): "
              "anyone on the path to %s can read and change this connection" % client.domain)
    deadline = client._deadline
    try:
        sock = wrap_tls(client._tls_context, client.sock, client.domain,
                        CONNECT_TIMEOUT_MS if deadline is None else max(ticks_diff(deadline, ticks_ms()), 1))
    except TLS_ERRORS as error:
        client._drop()
        raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))
    client._tls_pending = MICROPYTHON  # there the handshake runs in the first reads and writes
    client.sock = sock
    client._poller = poller = select.poll()
    client._mask = select.POLLIN
    poller.register(sock, select.POLLIN)
    if client.session is not None:
        client.session.tls_established()
