"""The XMPP link as asyncio tasks: the same Session and policies as xmpp_lite.robust, driven by an event loop.

    import asyncio
    from xmpp_lite.aio import AsyncClient
    from xmpp_lite.stanza import presence

    async def main():
        link = AsyncClient("sensor1@example.net", "secret", ca="/ca.der")
        link.on_message = lambda msg: print(msg.find_text("body"))
        await link.connect(presence=presence(status="starting"))   # AuthError and other fatal errors raise
        stanza_id = link.send_message("controller@example.net", "temp=21.5C")   # online or not
        await link.acked(stanza_id, 10000)      # True once the server has it (XEP-0198)
        ...
        await link.close()

It runs on MicroPython's asyncio and on CPython's. Once connected, three
tasks do the work while the application's own tasks run: a reader (bytes in,
callbacks, answers to pings and disco), a writer (what the session has to
send) and a supervisor (heartbeats while online, reconnection with backoff
and stream resumption while offline). The policies are the objects
RobustClient uses: xmpp_lite.keepalive.Heartbeat, xmpp_lite.backoff.Backoff,
xmpp_lite.sm.StreamManagement, and xmpp_lite.linkstate for which errors
stop the link. It loads without the poll driver (xmpp_lite.client, robust).

Received stanzas go to ``on_message``, ``on_presence``, ``on_iq`` when set;
otherwise, once an ``async for stanza in link`` has begun, to a bounded
inbox that the loop takes them from (the reader stops reading while it is
full: the server waits, nothing is dropped).

TLS. "required" (STARTTLS) and "direct" as in xmpp_lite.client, with the
same certificate checks; how the handshake runs under each runtime's asyncio
is in xmpp_lite.aiolink.

What still blocks the loop: ``socket.getaddrinfo`` (MicroPython has no
asynchronous DNS; a numeric address or a cached name takes microseconds,
a lookup over a slow network seconds); on MicroPython, each TLS handshake
step's public-key arithmetic (certificate check, key exchange) and the
SCRAM key derivation (PBKDF2, once per password with a ``sasl_cache``).
docs/asyncio.md gives the measured figures.
"""

import asyncio
import errno
import gc

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, ticks_diff, ticks_ms
from xmpp_lite.aiolink import login, sleep_ms, within
from xmpp_lite.backoff import Backoff
from xmpp_lite.keepalive import LINK_DEAD, SEND_PROBE, SEND_WHITESPACE, Heartbeat
from xmpp_lite.responder import NS_PING
from xmpp_lite.linkstate import (
    CLOSE_ACK_TIMEOUT_MS,
    CONNECT_TIMEOUT_MS,
    DEFAULT_PORT,
    STATE_OFFLINE,
    STATE_ONLINE,
    STATE_STOPPED,
    is_fatal,
)
from xmpp_lite.session import (
    EVENT_CLOSED,
    EVENT_ERROR,
    EVENT_HANDLER_ERROR,
    EVENT_IQ,
    EVENT_MESSAGE,
    EVENT_ONLINE,
    EVENT_PRESENCE,
    EVENT_RESUMED,
    EVENT_SEE_OTHER_HOST,
    EVENT_STARTTLS,
    TLS_REQUIRED,
    IdSource,
    StreamError,
)
from xmpp_lite.sm import MAX_UNACKED, QueueFull, StreamManagement
from xmpp_lite.stanza import NS_CLIENT, Element, serialise
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stanza import presence as make_presence

MAX_INBOX = 16  # stanzas waiting for ``async for``; the reader pauses above this
CLOSE_TIMEOUT_MS = 2000  # how long close() waits for the server's stream end
CLOSE_POLL_MS = 10  # how often close() looks whether the server's stream end came


def _retryable_memory(error):
    # MemoryError is a connection failure (drop, collect, back off, reconnect), never a permanent stop.
    if isinstance(error, MemoryError):
        gc.collect()
        return True
    return False


class AsyncClient:
    """An XMPP link that runs as asyncio tasks and comes back by itself; see the module docstring.

    Options as xmpp_lite.robust.RobustClient: ``heartbeat``, ``backoff``,
    ``max_unacked``, ``connect_timeout_ms`` (one attempt: TCP, TLS, login;
    DNS included), and those of xmpp_lite.client.Client (host, port, tls, ca,
    verify, resource, insecure_plain, sasl_cache, mechanisms, software,
    sasl2, servers, nameserver). See-other-host redirects are not followed
    (the attempt fails and is retried). With several servers (given, or found
    by DNS SRV), each attempt goes to one of them: a failed attempt moves on to
    the next one, a stream that went online stays with its server. The SRV
    lookup blocks the loop like getaddrinfo (at most dns.QUERY_TIMEOUT_MS per
    datagram, when the name server does not answer).

    Callbacks: ``on_message``, ``on_presence``, ``on_iq`` (each given the
    Element), ``on_state(state, detail)`` as on RobustClient, ``trace(direction,
    data)``. ``stats`` counts what happened (RobustClient's keys).
    """

    def __init__(self, jid, password, host=None, port=DEFAULT_PORT, tls=TLS_REQUIRED, ca=None, verify=True,
                 resource=None, insecure_plain=False, sasl_cache=None, mechanisms=None, software=None, sasl2=True,
                 heartbeat=None, backoff=None, max_unacked=MAX_UNACKED, connect_timeout_ms=CONNECT_TIMEOUT_MS,
                 servers=None, nameserver=None):
        # Loaded for the check only (it unloads itself on MicroPython); xmpp_lite.dns loads for an attempt
        # when the servers must be looked up.
        from xmpp_lite.checks import check_client

        self.domain, self.servers = check_client(jid, tls, host, servers, port)
        self.host = host or self.domain  # the server of the current or last attempt
        self.port = port
        self.tls = tls
        self.verify = verify
        self.nameserver = nameserver
        self._found = None  # servers found by DNS, until each was tried
        self._turn = 0  # index of the server for the next attempt
        self.sm = StreamManagement(max_unacked)
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat()
        self.backoff = backoff if backoff is not None else Backoff()
        self.connect_timeout_ms = connect_timeout_ms
        self.state = STATE_STOPPED
        self.error = None
        self.session = None
        self.jid = None
        self.on_message = None
        self.on_presence = None
        self.on_iq = None
        self.on_state = None
        self.trace = None
        self.last_sent_ms = None
        self.last_received_ms = None
        self.stats = {"attempts": 0, "online": 0, "resumed": 0, "lost": 0, "dead_links": 0, "probes": 0,
                      "whitespace": 0, "handler_errors": 0, "memory_errors": 0}
        self.memory_errors_in_row = 0  # as RobustClient's: the firmware resets the board after too many
        # The Session's arguments, the account's with them (no attribute, no name, of their own).
        self._options = {"jid": jid, "password": password, "resource": resource, "insecure_plain": insecure_plain,
                         "sasl_cache": sasl_cache, "mechanisms": mechanisms, "software": software, "sasl2": sasl2}
        self._ca = ca
        self._tls_context = None  # made at the first connection that uses TLS, then kept (the CA parsed in it)
        self._handlers = {}
        self._ids = IdSource()
        self._presence = None  # the last broadcast presence (Element), announced again on a fresh stream
        self._presence_due = False
        self._ping_id = None
        self._beat_ms = None
        self._link = None
        self._tasks = []  # reader and writer of the current connection
        self._supervisor = None
        self._wake = asyncio.Event()  # the supervisor: the link was lost, or close()
        self._send_due = asyncio.Event()  # the writer: the session has bytes
        self._acks = asyncio.Event()  # replaced at each pulse: acks arrived or the client stopped
        self._inbox = None
        self._inbox_event = asyncio.Event()
        self._reached = None
        self._tls_due = False
        self._closing = False
        self._stopping = False
        self._online_at = None  # ticks_ms when the link last went online

    # -- public API ---------------------------------------------------------------------------------

    @property
    def online(self):
        return self.state == STATE_ONLINE

    @property
    def unacked(self):
        """How many stanzas wait for an ack or for the link."""
        return len(self.sm.unacked)

    def register_iq_handler(self, xmlns, fn):
        """Answer iq get/set in ``xmlns`` with ``fn(iq) -> reply Element`` (see Session)."""
        self._handlers[xmlns] = fn
        if self.session is not None:
            self.session.register_iq_handler(xmlns, fn)

    async def connect(self, presence=None):
        """The first attempt; then the link keeps itself up in the background.

        ``presence`` (an Element, e.g. xmpp_lite.stanza.presence(status=...))
        is the initial presence, sent with the login and again on every fresh
        stream. Returns True when online; False after a network or server
        problem (retried after a backoff delay). Raises the fatal errors
        (AuthError, conflict, ...), and then stays stopped.
        """
        if presence is not None:
            self._presence = presence
        if self._supervisor is not None:  # running already: online, or retrying in the background
            return self.state == STATE_ONLINE
        self.error = None
        self._stopping = False
        self.backoff.reset()
        self.state = STATE_OFFLINE
        try:
            online = await self._attempt()
        except BaseException:
            self.state = STATE_STOPPED
            raise
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())
        return online

    def new_id(self):
        """A stanza id unique for this client across reconnections."""
        return self._ids.next()

    def send(self, elem):
        """Send a stanza now, or keep it for the link; raises QueueFull (nothing kept) when full."""
        if self.state == STATE_STOPPED:
            raise OSError(errno.ENOTCONN, "the client is stopped: connect() first")
        session = self.session
        if self.state != STATE_ONLINE or session is None or not session.online:
            self.sm.queue_offline(serialise(elem, NS_CLIENT))
            return
        session.send(elem)
        self._send_due.set()

    def send_message(self, to, body, type="chat", payload=None):
        """Send (or keep) a <message/>; returns its id (for ``acked``)."""
        stanza_id = self.new_id()
        self.send(make_message(to=to, body=body, type=type, id=stanza_id, payload=payload))
        return stanza_id

    def send_presence(self, status=None, show=None, priority=None, payload=None, to=None, type=None):
        """Send a presence; a broadcast one is remembered and announced again on every fresh stream."""
        elem = make_presence(to=to, type=type, show=show, status=status, priority=priority, payload=payload)
        if to is None and type is None:
            self._presence = elem
            self._presence_due = True
            self._announce()
            return
        self.send(elem)

    async def acked(self, stanza_id, timeout_ms=None):
        """Wait until the server acked the stanza ``stanza_id`` (XEP-0198).

        True: the server has it. False: stream management is not in use on
        this link (nothing can be known), or ``timeout_ms`` passed first.
        """
        marker = ('id="%s"' % stanza_id).encode()
        start = ticks_ms()
        session = self.session
        if self._waiting(marker) and self.state == STATE_ONLINE and session is not None and session.online:
            if session.request_ack():  # ask now rather than after ACK_REQUEST_EVERY stanzas
                self._send_due.set()
        while self._waiting(marker):
            if self.state == STATE_STOPPED:
                return False
            event = self._acks
            if timeout_ms is None:
                await event.wait()
                continue
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            if left <= 0:
                return False
            try:
                await within(event.wait(), left)
            except asyncio.TimeoutError:
                return False
        return self.sm.enabled or self.sm.resumable

    def __aiter__(self):
        if self._inbox is None:
            self._inbox = []
        return self

    async def __anext__(self):
        inbox = self._inbox
        while not inbox:
            if self.state == STATE_STOPPED:
                raise StopAsyncIteration
            self._inbox_event.clear()
            await self._inbox_event.wait()
        stanza = inbox.pop(0)
        self._inbox_event.set()  # room again: the reader may go on
        return stanza

    async def close(self, timeout_ms=CLOSE_ACK_TIMEOUT_MS):
        """Wait (at most ``timeout_ms``) for acks of what is unacked, close the stream, stop.

        Returns how many stanzas were still unacked (0: the server has everything that was sent).
        """
        session = self.session
        if self.state == STATE_ONLINE and session is not None and session.online:
            try:
                if self.sm.unacked and session.request_ack():
                    self._send_due.set()
                    start = ticks_ms()
                    while self.sm.unacked and self.state == STATE_ONLINE:
                        left = timeout_ms - ticks_diff(ticks_ms(), start)
                        if left <= 0:
                            break
                        try:
                            await within(self._acks.wait(), left)
                        except asyncio.TimeoutError:
                            break
                if self.state == STATE_ONLINE:
                    self._closing = True
                    session.close()
                    self._send_due.set()
                    start = ticks_ms()
                    while not session.finished and self._link is not None:
                        if ticks_diff(ticks_ms(), start) >= CLOSE_TIMEOUT_MS:
                            break
                        await sleep_ms(CLOSE_POLL_MS)
            except Exception:  # noqa: BLE001 - whatever the server does now, we are closing
                pass
        left = len(self.sm.unacked)
        self._stopping = True
        self._drop()
        supervisor = self._supervisor
        self._supervisor = None
        if supervisor is not None and supervisor is not _current_task():
            supervisor.cancel()
        self._stop(None)
        return left

    # -- connecting -----------------------------------------------------------------------------------

    async def _attempt(self):
        """One connection attempt; True when online. Fatal errors raise (after stopping)."""
        self.stats["attempts"] += 1
        if MICROPYTHON:  # what the last connection's trouble loaded goes before the login (see client)
            for name in ("xmpp_lite.parser_rare", "xmpp_lite.streamerror"):
                unload(name)
        try:
            try:
                await within(login(self), self.connect_timeout_ms)
            finally:
                if MICROPYTHON:
                    # The attempt is over: its code goes until the next one (see xmpp_lite.client).
                    for name in ("xmpp_lite.sasl", "xmpp_lite.connecting", "xmpp_lite.dns", "xmpp_lite.certs",
                                 "xmpp_lite.streamerror", "xmpp_lite.parser_rare"):
                        unload(name)
        except Exception as error:  # noqa: BLE001 - sorted into fatal and retryable below
            self._drop()
            if isinstance(error, asyncio.TimeoutError):
                state = self.session.state if self.session is not None else "connecting"
                error = OSError(errno.ETIMEDOUT, "login to %s:%d timed out (session state: %s)"
                                % (self.host, self.port, state))
            self._count_memory(error)
            if not _retryable_memory(error) and is_fatal(error):
                self._stop(error)
                raise error
            self._turn += 1  # the next attempt goes to the next server
            self.error = error
            self._schedule(error)
            return False
        self._went_online()
        return True

    async def _flush(self, link, session):
        data = session.data_to_send()
        if data:
            if self.trace is not None:
                self.trace("send", data)
            self.last_sent_ms = ticks_ms()
            await link.write(data)

    def _went_online(self):
        now = ticks_ms()
        session = self.session
        self.state = STATE_ONLINE
        self.error = None
        self.stats["online"] += 1
        self._online_at = now
        if session.resumed:
            self.stats["resumed"] += 1
        else:
            self._presence_due = self._presence is not None and not session.presence_sent
        self._ping_id = None
        self._beat_ms = None
        self.heartbeat.reset(now)
        self.backoff.online(now)
        link = self._link
        self._tasks = [asyncio.create_task(self._read_loop(link, session)),
                       asyncio.create_task(self._write_loop(link, session))]
        self._pulse_acks()  # <resumed h=.../> may have acked stanzas that acked() waits for
        if self.sm.unacked:
            session.request_ack()  # what was sent again is confirmed now, not after ACK_REQUEST_EVERY more
        self._notify(STATE_ONLINE, "resumed" if session.resumed else "fresh")
        self._announce()
        self._send_due.set()

    def _announce(self):
        session = self.session
        if not self._presence_due or self.state != STATE_ONLINE or session is None or not session.online:
            return
        try:
            session.send(self._presence)
            self._presence_due = False
            self._send_due.set()
        except Exception as error:  # noqa: BLE001 - QueueFull: again later; others are the link's
            if not isinstance(error, QueueFull):
                self._lost(error)

    def _schedule(self, error):
        self.state = STATE_OFFLINE
        self._notify(STATE_OFFLINE, error)

    def _drop(self):
        """Close the connection (the stream stays resumable) and end its tasks, but not the one running."""
        current = _current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks = []
        link = self._link
        self._link = None
        if link is not None:
            link.close()
        self.jid = None

    def _lost(self, error):
        self._drop()
        if self.state != STATE_ONLINE:
            return
        self.stats["lost"] += 1
        self.error = error
        self._schedule(error)
        self._wake.set()

    def _fail(self, error):
        """An error from the link's tasks: stop if it is fatal, else reconnect."""
        if self._stopping:
            return
        self._count_memory(error)
        if _retryable_memory(error) or not is_fatal(error):
            self._lost(error)
            return
        self._drop()
        self._stop(error)
        self._wake.set()

    def _count_memory(self, error):
        """Counted before on_state hears of it, as RobustClient does (the firmware reads the counts there)."""
        if isinstance(error, MemoryError):
            self.stats["memory_errors"] += 1
            self.memory_errors_in_row += 1

    def _stop(self, error):
        self.state = STATE_STOPPED
        self.error = error
        self._pulse_acks()
        self._inbox_event.set()
        self._notify(STATE_STOPPED, error)

    def _notify(self, state, detail):
        if self.on_state is not None:
            self.on_state(state, detail)

    def _pulse_acks(self):
        event = self._acks
        self._acks = asyncio.Event()
        event.set()

    # -- the tasks ------------------------------------------------------------------------------------

    async def _supervise(self):
        """Heartbeats while online; reconnection after a backoff delay while offline. Ends when stopped."""
        try:
            while self.state != STATE_STOPPED:
                if self.state == STATE_ONLINE:
                    self._beat()
                    if self.state == STATE_ONLINE:
                        now = ticks_ms()
                        self.backoff.check_stable(now)
                        if self.memory_errors_in_row and ticks_diff(now, self._online_at) >= self.backoff.stable_ms:
                            self.memory_errors_in_row = 0  # online long enough: the errors were not in a row
                        await self._sleep(self.heartbeat.next_due_ms(now, self._last_sent(), self.last_received_ms))
                    continue
                await self._sleep(self.backoff.next_delay())
                if self.state == STATE_OFFLINE:
                    try:
                        await self._attempt()
                    except Exception:  # noqa: BLE001 - fatal: _attempt stopped the client and told on_state
                        pass
        finally:
            if self._supervisor is _current_task():
                self._supervisor = None

    async def _sleep(self, ms):
        """Sleep ``ms``, or less if the link changes (lost, closed)."""
        self._wake.clear()
        if ms <= 0:
            await sleep_ms(0)
            return
        try:
            await within(self._wake.wait(), ms)
        except asyncio.TimeoutError:
            pass

    async def _read_loop(self, link, session):
        try:
            while True:
                inbox = self._inbox
                while inbox is not None and len(inbox) >= MAX_INBOX:
                    self._inbox_event.clear()
                    await self._inbox_event.wait()
                    if self.state == STATE_STOPPED:
                        return
                data = await link.read()
                acked = self.sm.acked
                self._received(session, data)
                if self.sm.acked != acked:
                    self._pulse_acks()
                if not data:
                    return  # the stream was closed (our close()); otherwise _received raised
                self._send_due.set()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - sorted in _fail
            if session is self.session:
                self._fail(error)

    async def _write_loop(self, link, session):
        try:
            while True:
                await self._send_due.wait()
                self._send_due.clear()
                await self._flush(link, session)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - sorted in _fail
            if session is self.session:
                self._fail(error)

    def _last_sent(self):
        # A space the socket has not taken yet (a stalled link) counts as sent: one is enough.
        sent = self.last_sent_ms
        beat = self._beat_ms
        if sent is None or (beat is not None and ticks_diff(beat, sent) > 0):
            return beat
        return sent

    def _beat(self):
        session = self.session
        now = ticks_ms()
        action = self.heartbeat.check(now, self._last_sent(), self.last_received_ms)
        try:
            if action == SEND_WHITESPACE:
                self.stats["whitespace"] += 1
                self._beat_ms = now
                session.send_whitespace()
            elif action == SEND_PROBE:
                self.stats["probes"] += 1
                if not session.request_ack():
                    self._ping_id = session.send_iq("get", payload=Element("ping", xmlns=NS_PING))
            elif action == LINK_DEAD:
                self.stats["dead_links"] += 1
                self._lost(OSError(errno.ETIMEDOUT, "no answer from the server within %d ms of a probe: "
                                                    "the link is dead" % self.heartbeat.probe_timeout_ms))
                return
        except Exception as error:  # noqa: BLE001 - the session refused: the link is gone
            self._fail(error)
            return
        self._send_due.set()

    # -- what arrives -----------------------------------------------------------------------------------

    def _received(self, session, data):
        """Bytes from the server (b"": closed) into the session, then its events."""
        if self.trace is not None:
            self.trace("recv", bytes(data))  # a copy: on MicroPython, data is a view of the read buffer
        if data:
            self.last_received_ms = ticks_ms()
        session.receive_data(data)
        while True:
            event = session.next_event()
            if event is None:
                return
            kind, value = event
            if kind == EVENT_MESSAGE:
                self._deliver(self.on_message, value)
            elif kind == EVENT_PRESENCE:
                self._deliver(self.on_presence, value)
            elif kind == EVENT_IQ:
                if self._ping_id is not None and value.get("id") == self._ping_id:
                    self._ping_id = None  # our probe's answer; the heartbeat saw the bytes
                else:
                    self._deliver(self.on_iq, value)
            elif kind == EVENT_STARTTLS:
                self._tls_due = True
            elif kind == EVENT_ONLINE or kind == EVENT_RESUMED:
                self.jid = value
                self._reached = kind
            elif kind == EVENT_HANDLER_ERROR:
                self.stats["handler_errors"] += 1
                print("xmpp_lite: an iq handler failed: %r" % (value[1],))
            elif kind == EVENT_ERROR:
                raise value
            elif kind == EVENT_SEE_OTHER_HOST:
                raise StreamError("see-other-host", "%s:%s (not followed)" % value)
            elif kind == EVENT_CLOSED:
                self.jid = None
                if not self._closing:
                    raise OSError(errno.ECONNRESET, value)

    def _deliver(self, callback, stanza):
        if callback is not None:
            try:
                callback(stanza)
            except Exception as error:  # noqa: BLE001 - the application's bug must not take the link down
                self.stats["handler_errors"] += 1
                print("xmpp_lite: a callback failed: %r" % (error,))
        elif self._inbox is not None:
            self._inbox.append(stanza)
            self._inbox_event.set()

    def _waiting(self, marker):
        for data in self.sm.unacked:
            if data.find(marker) >= 0:
                return True
        return False


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:  # CPython: no loop running
        return None

