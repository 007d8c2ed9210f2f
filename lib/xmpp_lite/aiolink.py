"""The transport under xmpp_lite.aio: TCP, then TLS, over asyncio streams; one Link class per runtime; the login.

    link = Link()
    await link.open(host, port, (domain, context) or None)   # None: plain TCP; context: the client's SSLContext
    await link.start_tls((domain, context))     # STARTTLS on the open connection
    data = await link.read()                # empty at the end of the stream (a view of the read buffer)
    await link.write(data)
    link.close()

MicroPython: getaddrinfo (blocking: there is no other resolver), a
non-blocking connect checked every CONNECT_POLL_MS, and for TLS the socket
wrapped by xmpp_lite.connecting.wrap_tls without a handshake
(``do_handshake_on_connect=False``) under a new ``asyncio.StreamReader``:
the handshake runs inside the stream's reads and writes, each of which waits
on the loop's I/O poll; a read that only advanced the handshake (or got part
of a TLS record) returns None and is repeated. CPython: asyncio's streams,
``start_tls`` for STARTTLS, with the SSLContext of xmpp_lite.certs.make_tls_context
(the checks of the poll driver). ``within(awaitable, ms)`` and ``sleep_ms(ms)`` are the
same on both.
"""

import asyncio
import errno

from xmpp_lite._compat import MICROPYTHON
from xmpp_lite.errors import TLSError, describe
from xmpp_lite.session import TLS_DIRECT, TLS_NONE, Session

READ_SIZE = 1024  # bytes per read (one buffer, reused, on MicroPython)
CONNECT_POLL_MS = 10  # how often a TCP connect under way is checked (MicroPython)

if MICROPYTHON:  # pragma: no cover - MicroPython
    import select
    import socket

    sleep_ms = asyncio.sleep_ms  # also for applications: the same on both runtimes

    def within(awaitable, timeout_ms):
        return asyncio.wait_for_ms(awaitable, timeout_ms)

    class Link:
        """A TCP (then TLS) socket under an asyncio stream; the TLS handshake runs in its reads and writes."""

        def __init__(self):
            self.sock = None
            self.stream = None
            self._rx = memoryview(bytearray(READ_SIZE))  # read into; what read() returns is a slice of it

        async def open(self, host, port, tls):
            # getaddrinfo blocks the loop: MicroPython has no other way to resolve a name.
            addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            if not addresses:
                raise OSError(errno.EHOSTUNREACH, "no address for " + host)
            address = addresses[0]
            sock = socket.socket(address[0], socket.SOCK_STREAM)
            self.sock = sock
            sock.setblocking(False)
            try:
                sock.connect(address[-1])
            except OSError as error:
                if not error.args or error.args[0] not in (errno.EINPROGRESS, errno.EAGAIN):
                    raise OSError(error.args[0] if error.args else errno.ECONNREFUSED,
                                  "cannot connect to %s:%d: %s" % (host, port, error))
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            while True:
                events = poller.poll(0)
                if events:
                    break
                await sleep_ms(CONNECT_POLL_MS)
            from xmpp_lite.connecting import socket_error, wrap_tls  # loaded while connecting

            failure = socket_error(sock, events[0][1])
            if failure:
                raise OSError(failure, "cannot connect to %s:%d (errno %d)" % (host, port, failure))
            if tls is not None:
                self.sock = sock = wrap_tls(tls[1], sock, tls[0], 0)
            self.stream = asyncio.StreamReader(sock)

        async def start_tls(self, tls):
            from xmpp_lite.connecting import wrap_tls  # loaded while connecting

            self.sock = wrap_tls(tls[1], self.sock, tls[0], 0)
            self.stream = asyncio.StreamReader(self.sock)

        async def read(self):
            """A memoryview of the one read buffer, valid until the next read: no per-read copy."""
            while True:
                count = await self.stream.readinto(self._rx)
                if count is not None:  # None: a TLS record (or handshake step) is not complete yet
                    return self._rx[:count]

        async def write(self, data):
            stream = self.stream
            stream.write(data)
            await stream.drain()

        def close(self):
            sock = self.sock
            self.sock = self.stream = None
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

else:
    def sleep_ms(ms):
        """MicroPython's asyncio.sleep_ms on CPython."""
        return asyncio.sleep(ms / 1000)

    def within(awaitable, timeout_ms):
        return asyncio.wait_for(awaitable, timeout_ms / 1000)

    class Link:
        """asyncio's streams; getaddrinfo runs in the loop's thread pool, TLS by start_tls."""

        def __init__(self):
            self.reader = None
            self.writer = None

        async def open(self, host, port, tls):
            try:
                if tls is None:
                    self.reader, self.writer = await asyncio.open_connection(host, port)
                else:
                    self.reader, self.writer = await asyncio.open_connection(
                        host, port, ssl=tls[1], server_hostname=tls[0])
            except OSError as error:
                if isinstance(error, TLS_ERRORS):
                    raise
                raise OSError(error.errno or errno.ECONNREFUSED, "cannot connect to %s:%d: %s" % (host, port, error))

        async def start_tls(self, tls):
            await self.writer.start_tls(tls[1], server_hostname=tls[0])

        async def read(self):
            return await self.reader.read(READ_SIZE)

        async def write(self, data):
            self.writer.write(data)
            await self.writer.drain()

        def close(self):
            writer = self.writer
            self.reader = self.writer = None
            if writer is not None:
                writer.transport.abort()

    import ssl as _ssl

    TLS_ERRORS = (_ssl.SSLError, _ssl.CertificateError)


def is_tls_error(error):
    """True for the errors of CPython's ssl module (MicroPython's are plain OSError and ValueError)."""
    return not MICROPYTHON and isinstance(error, TLS_ERRORS)


# What a TLS failure may raise in a read or write (TLSError when the handshake is not known to be done).
TLS_FAILURES = (OSError, ValueError) if MICROPYTHON else (OSError,)


# -- xmpp_lite.aio.AsyncClient's connection attempt (xmpp_lite.connecting loaded for it on MicroPython) ---


def _tls_args(client):
    if not client.verify:  # as xmpp_lite.connecting.start_tls
        print("WARNING: xmpp_lite: TLS certificate verification is OFF (verify=False): "
              "anyone on the path to %s can read and change this connection" % client.domain)
    return (client.domain, client._tls_context)


async def login(client):
    """One AsyncClient attempt at the next server: connect, TLS, log in, until online (the caller bounds it)."""
    from xmpp_lite import sasl  # noqa: F401 - now, while the heap is in one piece (see xmpp_lite.connecting)

    client._reached = None
    client._tls_due = False
    client._closing = False
    client.jid = None
    link = Link()
    client._link = link
    tls_pending = False  # True while a TLS failure may show as a plain OSError (MicroPython's handshake)
    try:
        # The server for this attempt: from the list, or found by DNS (again after each round).
        servers = client.servers
        if servers is None:
            if client._found is None or client._turn >= len(client._found):
                from xmpp_lite.connecting import find_servers

                client._found = find_servers(client)
                client._turn = 0
            servers = client._found
        client.host, client.port, tls = servers[client._turn % len(servers)]
        if tls != TLS_NONE and client._tls_context is None:
            from xmpp_lite.certs import make_tls_context

            make_tls_context(client)
        await link.open(client.host, client.port, _tls_args(client) if tls == TLS_DIRECT else None)
        tls_pending = tls == TLS_DIRECT and MICROPYTHON
        session = Session(tls=tls, sm=client.sm, presence=client._presence, **client._options)
        handlers = client._handlers
        for xmlns in handlers:
            session.register_iq_handler(xmlns, handlers[xmlns])
        client.session = session
        session.start()
        await client._flush(link, session)
        while client._reached is None:
            data = await link.read()
            if data:
                tls_pending = False
            client._received(session, data)
            if client._tls_due:
                client._tls_due = False
                await client._flush(link, session)
                tls_pending = True
                await link.start_tls(_tls_args(client))
                tls_pending = MICROPYTHON  # there the handshake runs in the next reads and writes
                session.tls_established()
            await client._flush(link, session)
    except TLS_FAILURES as error:
        if tls_pending or is_tls_error(error):
            raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))
        raise
