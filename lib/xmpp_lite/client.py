"""A thin driver: one Session over one non-blocking socket, the same code on MicroPython and CPython.

    client = Client("device1@example.net", "secret", ca="/ca.der")
    client.on_message = lambda msg: print(msg.find_text("body"))
    client.connect()                      # blocks until online, or raises
    client.send_presence(status="21.5 C")
    while True:
        client.poll(100)                  # I/O once, callbacks; returns within ~100 ms
        ... sensor work ...

``connect`` raises AuthError (bad credentials: never retry them), StreamError
(the server ended the stream), ProtocolError (the server broke the protocol,
or offered no STARTTLS while TLS is required), TLSError (an OSError: the
handshake or the certificate check failed) or OSError (DNS, TCP, timeouts).
``poll`` raises the same once online, and OSError when the connection is gone.

Servers. ``host``/``port``: one server. ``servers``: several, tried in turn
until one takes the login (a cluster's nodes, say); the next connect starts
with the one that worked last, so a XEP-0198 stream resumes on whichever
node is up. Neither: the client looks up the JID's domain by DNS SRV
(xmpp_lite.dns: ``_xmpps-client._tcp`` for direct TLS and
``_xmpp-client._tcp`` for STARTTLS, ordered by priority and weight) with
the name server ``nameserver`` (default: the one the network gave the board,
or /etc/resolv.conf's), and falls back to the domain itself on ``port``.
A connection that fails (OSError, TLSError, StreamError) moves on to the next
server; a refused login (AuthError) does not.

TLS. ``tls="required"``: STARTTLS on the normal port; ``"direct"``: TLS from
the first byte (XEP-0368, e.g. port 5223); ``"none"``: plaintext (PLAIN then
needs ``insecure_plain=True``). The server certificate is verified against
``ca`` (a path or bytes, PEM or DER, one or more certificates; a pinned server
certificate works as well, on MicroPython only a self-signed one) and the
JID's domain; ``verify=False`` turns that off and says so loudly.

Policy is not here, by design: keepalive (whitespace, probes), reconnection
with backoff and stream resumption are xmpp_lite.robust, a layer above that
calls ``poll``, watches ``last_sent_ms`` / ``last_received_ms`` and
reconnects on OSError or StreamError, and never on AuthError. This driver
only offers the means: ``send_whitespace()``, ``request_ack()``,
``send_ping()``, and ``sm=`` (an xmpp_lite.sm.StreamManagement) to use
XEP-0198 and resume the stream it remembers.
"""

import errno
import select

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, TLS_ERRORS, const, sock_recv_into, sock_send, ticks_diff, ticks_ms
from xmpp_lite.errors import TLSError, describe
from xmpp_lite.session import TLS_NONE, TLS_REQUIRED
from xmpp_lite.stanza import Element

# After the session: loading it first leaves the VM's heap less fragmented when the library is compiled
# from source on the device.
from xmpp_lite.linkstate import CONNECT_TIMEOUT_MS, DEFAULT_PORT  # noqa: E402,I001

# xmpp_lite.session's event kinds, folded into the code (no global, no import of each);
# tests/host/test_client_names.py keeps them equal to session's.
_EVENT_CLOSED = const(10)
_EVENT_ERROR = const(9)
_EVENT_HANDLER_ERROR = const(8)
_EVENT_IQ = const(5)
_EVENT_MESSAGE = const(3)
_EVENT_ONLINE = const(2)
_EVENT_PRESENCE = const(4)
_EVENT_REGISTERED = const(7)
_EVENT_RESUMED = const(11)
_EVENT_SEE_OTHER_HOST = const(6)
_EVENT_STARTTLS = const(1)

_CLOSE_TIMEOUT_MS = const(2000)  # how long close() waits for the server's stream end
READ_SIZE = 1024  # bytes per read, into one buffer allocated with the Client
FEED_SIZE = 512  # bytes handed to the session at once; its events are handled after each: bounds them
SEND_BUFFER_SIZE = 1536  # output is copied into this buffer and written from it: one write per poll if it fits
_MAX_READS_PER_POLL = const(8)  # reads in one poll() before other work gets a turn
MAX_UNSENT_BYTES = 16384  # bytes the socket would not take yet; more means the link is stalled


class Client:
    """An XMPP client connection; see the module docstring.

    ``host``/``port``: where to connect. ``servers``: a list of "host",
    "host:port" or (host, port), tried in turn. Neither: a DNS SRV lookup of
    the JID's domain with ``nameserver`` ("a.b.c.d" or "a.b.c.d:port"), then the
    domain itself (see the module docstring). ``resource``: the resource to bind (None: the server picks).
    ``sasl_cache``: a dict that keeps SCRAM salted keys across logins (see
    xmpp_lite.sasl). ``mechanisms``: allowed SASL mechanisms; pinning one
    saves a round trip (see xmpp_lite.session). ``sm``: an
    xmpp_lite.sm.StreamManagement to use XEP-0198 with (None: not used).
    ``sasl2``: log in by XEP-0388 SASL2 with XEP-0386 Bind2 when the server
    offers it (no stream restart: a round trip and about 200 bytes fewer).

    Callbacks, each given the Element: ``on_message``, ``on_presence``,
    ``on_iq`` (results and errors of send_iq). ``trace(direction, data)``,
    if set, sees every chunk ("send"/"recv") as it passes.
    """

    def __init__(self, jid, password, host=None, port=DEFAULT_PORT, tls=TLS_REQUIRED, ca=None, insecure_plain=False,
                 resource=None, verify=True, sasl_cache=None, mechanisms=None, software=None, sm=None, sasl2=True,
                 servers=None, nameserver=None):
        # Loaded for the check only (it unloads itself on MicroPython); xmpp_lite.dns loads at connect
        # when the servers must be looked up.
        from xmpp_lite.checks import check_client

        self.domain, self.servers = check_client(jid, tls, host, servers, port)
        self.jid = None  # the bound full JID while online
        self.host = host or self.domain  # the server of the last connection attempt
        self.port = port
        self.nameserver = nameserver
        self._preferred = 0  # index in the server list of the last server that took the login
        self.tls = tls
        self.verify = verify
        self.on_message = None
        self.on_presence = None
        self.on_iq = None
        self.trace = None
        self.session = None
        self.sock = None
        self.sm = sm
        self.last_sent_ms = None  # ticks_ms of the last write, for a keepalive policy
        self.last_received_ms = None  # ticks_ms of the last read
        # The Session's arguments, the account's with them (no attribute, no name, of their own).
        self._options = {"jid": jid, "password": password, "resource": resource, "insecure_plain": insecure_plain,
                         "sasl_cache": sasl_cache, "mechanisms": mechanisms, "software": software, "sasl2": sasl2}
        self._presence = None  # the initial presence of the login under way
        self._ca = ca
        self._tls_context = None  # made at the first connection that uses TLS, then kept
        self._handlers = {}
        # Both buffers live as long as the Client, across reconnections: no
        # allocation per read or write that a fragmented heap could refuse.
        self._rx = memoryview(bytearray(READ_SIZE))  # read into; sliced for the session without a copy
        self._rx_fed = 0  # self._rx[_rx_fed:_rx_end] is read but not yet given to the session
        self._rx_end = 0
        self._tx = bytearray(SEND_BUFFER_SIZE)
        self._tx_view = memoryview(self._tx)
        self._tx_start = 0  # self._tx[_tx_start:_tx_end] is taken from the session, not yet by the socket
        self._tx_end = 0
        self._refused_seen = 0  # refused stanzas (session.refused_iqs + refused_stanzas) when last said
        self._poller = None
        self._mask = 0
        self._more = False  # the last read stopped at _MAX_READS_PER_POLL: input may be waiting
        self._tls_pending = False  # TLS set up, handshake not known to be done (MicroPython: done in I/O)
        self._deadline = None  # the ticks_ms by which connect() must be done, while connecting
        self._reached = None  # EVENT_ONLINE or EVENT_REGISTERED once seen
        self._closing = False
        if MICROPYTHON and tls != TLS_NONE:
            # The TLS context (one object of about 3 KB, kept) now, at the bottom of the heap, rather than
            # at the first connect, where it would split the room the login needs.
            from xmpp_lite.certs import make_tls_context  # it unloads itself

            try:
                make_tls_context(self)
            except OSError:
                pass  # a CA that cannot be loaded: connect() tries again and raises it, as on CPython

    # -- public API ---------------------------------------------------------------------------------

    @property
    def connected(self):
        return self.sock is not None and self.session is not None and self.session.online

    def register_iq_handler(self, xmlns, fn):
        """Answer iq get/set in ``xmlns`` with ``fn(iq) -> reply Element`` (see Session)."""
        self._handlers[xmlns] = fn
        if self.session is not None:
            self.session.register_iq_handler(xmlns, fn)

    def connect(self, timeout_ms=CONNECT_TIMEOUT_MS, presence=None):
        """Connect and log in; returns the bound JID. Follows one see-other-host redirect.

        ``presence`` (an Element, e.g. ``xmpp_lite.stanza.presence(status=...)``)
        is the initial presence: it goes out as early as the login allows,
        with the last SASL2 message when it can, which saves the round trip
        that a send_presence() after connect() costs.
        """
        self._presence = presence
        try:
            return self._run(None, timeout_ms)
        finally:
            self._presence = None

    def register(self, fields=None, timeout_ms=CONNECT_TIMEOUT_MS):
        """Create this client's account by in-band registration (XEP-0077), then disconnect.

        Returns the username; raises RegistrationError (e.g. condition
        "conflict": the name is taken) or the errors of connect().
        """
        # Imported here: provisioning tools register, devices only log in (about 5 KB of heap saved).
        from xmpp_lite.register import Registration

        return self._run(Registration(fields), timeout_ms)

    def poll(self, timeout_ms=0):
        """Move bytes once (waiting at most ``timeout_ms`` for input) and run callbacks.

        Returns the number of events handled.
        """
        if self.sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        count = self._handle_events()
        self._pump(timeout_ms)
        return count + self._handle_events()

    def send(self, elem):
        """Send a stanza (an Element)."""
        self._online_session().send(elem)
        self._write()

    def send_message(self, to, body, type="chat", payload=None):
        """Send a <message/>; returns its id."""
        stanza_id = self._online_session().send_message(to, body, type=type, payload=payload)
        self._write()
        return stanza_id

    def send_presence(self, status=None, show=None, priority=None, payload=None, to=None, type=None):
        self._online_session().send_presence(status=status, show=show, priority=priority, payload=payload,
                                             to=to, type=type)
        self._write()

    def send_iq(self, type, payload=None, to=None):
        """Send an iq get/set; returns its id. The answer goes to ``on_iq``."""
        stanza_id = self._online_session().send_iq(type, payload=payload, to=to)
        self._write()
        return stanza_id

    def send_whitespace(self):
        """One space to the server: keeps NAT mappings alive (RFC 6120 4.6.1)."""
        self._online_session().send_whitespace()
        self._write()

    def request_ack(self):
        """Ask for an XEP-0198 ack (<r/>); False when stream management is not on."""
        queued = self._online_session().request_ack()
        self._write()
        return queued

    def send_ping(self):
        """An XEP-0199 ping to the server; returns its id (the answer goes to ``on_iq``)."""
        # XEP-0199's namespace, responder.NS_PING: a literal, no global (a str const() needs MicroPython 1.19).
        return self.send_iq("get", payload=Element("ping", xmlns="urn:xmpp:ping"))

    def abort(self):
        """Close the socket at once, without a stream end: for a link known to be dead.

        A stream that uses XEP-0198 stays resumable.
        """
        self._drop()
        self.jid = None

    def close(self, timeout_ms=_CLOSE_TIMEOUT_MS):
        """Close the stream, wait (bounded) for the server's stream end, close the socket."""
        if self.sock is None:
            return
        self._closing = True
        try:
            self.session.close()
            start = ticks_ms()
            while self.sock is not None and not self.session.finished:
                left = timeout_ms - ticks_diff(ticks_ms(), start)
                if left <= 0:
                    break
                self._pump(left)
                self._handle_events()
        except Exception:  # noqa: BLE001 - whatever the server or a callback does now, we are closing
            pass
        finally:
            self._drop()

    # -- connecting -----------------------------------------------------------------------------------

    def _online_session(self):
        if self.sock is None or self.session is None:
            raise OSError(errno.ENOTCONN, "not connected")
        return self.session

    def _run(self, registration, timeout_ms):
        if MICROPYTHON:
            # What the last connection's trouble loaded (the parser's rare paths, the stream errors)
            # goes before the login needs the room.
            for name in ("xmpp_lite.parser_rare", "xmpp_lite.streamerror"):
                unload(name)
        from xmpp_lite.connecting import run

        try:
            return run(self, registration, timeout_ms)
        finally:
            if MICROPYTHON:
                # The attempt is over, done or failed: its code goes until the next one (the login's, where
                # to connect, TCP and TLS setup). Not on CPython, where RAM is plenty and other threads (the
                # fleet's devices) may be importing these modules at this moment.
                for name in ("xmpp_lite.sasl", "xmpp_lite.connecting", "xmpp_lite.dns", "xmpp_lite.certs",
                             "xmpp_lite.streamerror", "xmpp_lite.parser_rare"):
                    unload(name)

    # -- I/O ------------------------------------------------------------------------------------------

    def _drop(self):
        """Close the socket, keep the session for inspection."""
        sock = self.sock
        self.sock = None
        self._poller = None
        self._rx_fed = self._rx_end = 0
        self._tx_start = self._tx_end = 0
        self._tls_pending = False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _failed(self, error):
        tls_pending = self._tls_pending  # read before _drop() clears it
        self._drop()
        if tls_pending or isinstance(error, TLS_ERRORS) and not isinstance(error, OSError):
            raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (self.domain, describe(error)))
        if isinstance(error, OSError):
            raise error
        raise OSError(errno.EIO, describe(error))

    def _pump(self, timeout_ms):
        """Write what is pending, wait up to timeout_ms for the socket, read what is there."""
        self._write()
        if self.sock is None:
            return
        unsent = self._tx_start < self._tx_end
        mask = select.POLLIN | select.POLLOUT if unsent else select.POLLIN
        if mask != self._mask:
            self._poller.modify(self.sock, mask)
            self._mask = mask
        events = self._poller.poll(0 if self._more else max(timeout_ms, 0))
        if events or self._more:
            self._read()
            self._write()

    def _write(self):
        """Copy the session's output into the send buffer and write it, until the socket or the session stops.

        All the session has to send goes out in one write when it fits the
        buffer (one TLS record).
        """
        session = self.session
        if self.sock is None or session is None:
            return
        while True:
            if self._tx_start >= self._tx_end:
                count = session.write_into(self._tx)
                if not count:
                    return
                self._tx_start = 0
                self._tx_end = count
            start = self._tx_start
            try:
                sent = sock_send(self.sock, self._tx_view[start:self._tx_end])
            except TLS_ERRORS + (OSError,) as error:  # the tuple is made only when an error is raised
                self._failed(error)
            if not sent:
                if session.output_pending + self._tx_end - start > MAX_UNSENT_BYTES:
                    self._drop()
                    from xmpp_lite.streamerror import link_error

                    raise link_error(errno.ENOBUFS, MAX_UNSENT_BYTES)
                return
            self._tls_pending = False
            if self.trace is not None:
                self.trace("send", bytes(self._tx_view[start:start + sent]))
            self._tx_start = start + sent
            self.last_sent_ms = ticks_ms()

    def _read(self):
        """Read into the receive buffer and feed the session, while it takes input (backpressure)."""
        self._more = False
        if not self._feed():
            return  # the session is over, or its output must drain first: POLLOUT brings us back
        for _ in range(_MAX_READS_PER_POLL):
            try:
                count = sock_recv_into(self.sock, self._rx)
            except TLS_ERRORS + (OSError,) as error:  # the tuple is made only when an error is raised
                self._failed(error)
            if count is None:
                return
            if self.trace is not None:
                self.trace("recv", bytes(self._rx[:count]))
            if not count:
                self.session.receive_data(b"")
                self._handle_events()
                return
            self._tls_pending = False
            self._rx_fed = 0
            self._rx_end = count
            if not self._feed():
                return
        self._more = True

    def _feed(self):
        """Give the session what was read, FEED_SIZE bytes at a time; False if input must wait."""
        session = self.session
        while self._rx_fed < self._rx_end:
            if self.sock is None or session is None:
                return False
            if not session.accepting_input:
                self._write()  # drain what we can; the rest waits for POLLOUT, the input with it
                if self.sock is None or not session.accepting_input:
                    return False
            start = self._rx_fed
            end = min(start + FEED_SIZE, self._rx_end)
            self._rx_fed = end
            signs = session.alive_signs
            session.receive_data(self._rx[start:end])
            if session.alive_signs != signs:
                # Liveness: complete stanzas and whitespace, not any byte.
                self.last_received_ms = ticks_ms()
            refused = session.refused_iqs + session.refused_stanzas
            if refused and refused >= self._refused_seen * 10:
                # Said at the 1st, 10th, 100th, ...: a flood must not become a flood of lines (and of heap).
                from xmpp_lite.streamerror import say_refused

                say_refused(self, refused)
            self._handle_events()
        return self.sock is not None

    def _flush_quietly(self):
        try:
            self._write()
        except OSError:
            pass

    def _handle_events(self):
        """Run callbacks for the session's events; returns how many there were."""
        session = self.session
        count = 0
        while session is not None:
            event = session.next_event()
            if event is None:
                break
            count += 1
            kind, value = event
            if kind == _EVENT_MESSAGE:
                if self.on_message is not None:
                    self.on_message(value)
            elif kind == _EVENT_PRESENCE:
                if self.on_presence is not None:
                    self.on_presence(value)
            elif kind == _EVENT_IQ:
                if self.on_iq is not None:
                    self.on_iq(value)
            elif kind == _EVENT_STARTTLS:
                if self._rx_fed < self._rx_end:
                    from xmpp_lite.streamerror import client_ends

                    client_ends(self, kind, value)  # plaintext behind <proceed/>: raises
                self._write()
                from xmpp_lite.connecting import start_tls

                start_tls(self)
            elif kind == _EVENT_ONLINE or kind == _EVENT_RESUMED:
                self.jid = value
                self._reached = kind
            elif kind == _EVENT_REGISTERED:
                self._reached = kind
            elif kind == _EVENT_HANDLER_ERROR:
                self._write()  # the error reply
                raise value[1]
            elif kind == _EVENT_SEE_OTHER_HOST:
                from xmpp_lite.streamerror import client_ends

                client_ends(self, kind, value)  # raises
            elif kind == _EVENT_ERROR:
                self._flush_quietly()
                self._drop()
                raise value
            elif kind == _EVENT_CLOSED:
                self._flush_quietly()
                self._drop()
                self.jid = None
                if not self._closing:
                    raise OSError(errno.ECONNRESET, value)
        return count

