"""A client that stays connected: heartbeats, dead-link detection, reconnection, XEP-0198 resumption.

    device = RobustClient("sensor1@example.net", "secret", ca="/ca.der")
    device.on_message = handle
    device.connect()                # first login; AuthError and other fatal errors raise
    while True:
        device.poll(100)            # I/O, callbacks, heartbeats, reconnection
        device.send_message(controller, "temp=21.5C")   # online or not

What it does, each piece in its own module:
  - heartbeats (xmpp_lite.keepalive): a whitespace byte keeps the carrier's
    NAT mapping; a probe (XEP-0198 <r/>, else an XEP-0199 ping) after a
    silence finds a link that died without a FIN;
  - reconnection (xmpp_lite.backoff): exponential backoff with jitter,
    reset once a connection stayed up;
  - no loss (xmpp_lite.sm): stanzas are kept until the server acks them;
    after a reconnection the stream is resumed and what did not arrive is
    sent again; if the server no longer knows the stream, a fresh one gets
    everything unacked and the last presence. Stanzas sent while offline
    wait in the same bounded queue (``QueueFull`` when it is full: nothing
    is dropped silently).

Out of memory. A MemoryError while connecting, in I/O or in the session
tears the connection down like a network error: the socket is closed, the
heap collected (gc.collect()), the error counted (``stats["memory_errors"]``,
``memory_errors_in_row``) and the link comes back after the backoff delay.
The stream is not resumed after one (the session may have stopped half way
through a stanza, so its counts are not trusted): a fresh stream gets what
was unacked. It never stops the client; a board's firmware decides when
too many in a row call for a reset.

Fatal errors stop it and surface, never a retry loop: an AuthError (bad
credentials: one attempt per ``connect()``; "temporary-auth-failure" and a
server's broken SCRAM answers, RETRY_AUTH_CONDITIONS, are retried) and the
stream errors in FATAL_STREAM_ERRORS ("conflict": another board logged in
with this JID and resource; two boards must not take turns kicking each
other off). Everything else (network errors, a dead link,
"system-shutdown", a broken stream) is retried.

Receivers. A resumed stream delivers each stanza exactly once. When a
resumption fails (the server forgot the stream, e.g. it restarted), the
stanzas the server had not acked are sent again and may arrive twice: a
receiver that must not act twice de-duplicates by stanza id (ids are unique
per RobustClient and survive reconnections).
"""

import errno
import gc

from xmpp_lite._compat import sleep_ms, ticks_add, ticks_diff, ticks_ms
from xmpp_lite.backoff import Backoff
from xmpp_lite.client import Client
from xmpp_lite.keepalive import LINK_DEAD, RIDE_PROBE, SEND_ACK, SEND_PROBE, SEND_WHITESPACE, Heartbeat
from xmpp_lite.linkstate import (  # noqa: F401 - part of this module's API
    CLOSE_ACK_TIMEOUT_MS,
    CONNECT_TIMEOUT_MS,
    RETRYABLE,
    STATE_OFFLINE,
    STATE_ONLINE,
    STATE_STOPPED,
    is_fatal,
)
from xmpp_lite.session import IdSource
from xmpp_lite.sm import MAX_UNACKED, QueueFull, StreamManagement
from xmpp_lite.stanza import NS_CLIENT, serialise
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stanza import presence as make_presence

# The states, the fatal errors and the timeouts are xmpp_lite.linkstate's, shared with xmpp_lite.aio.


def __getattr__(name):
    # FATAL_STREAM_ERRORS and RETRY_AUTH_CONDITIONS (xmpp_lite.linkstate loads them on demand).
    from xmpp_lite import linkstate

    return linkstate.__getattr__(name)


class RobustClient:
    """An XMPP link that comes back by itself; see the module docstring.

    ``heartbeat`` (xmpp_lite.keepalive.Heartbeat) and ``backoff``
    (xmpp_lite.backoff.Backoff) carry the timing policy; ``max_unacked``
    bounds the stanzas kept for resending; ``connect_timeout_ms`` bounds one
    connection attempt (DNS, TCP, TLS, login). Other keyword arguments go to
    xmpp_lite.client.Client (host, port, tls, ca, resource, ...).

    Callbacks: ``on_message``, ``on_presence``, ``on_iq`` as on Client, and
    ``on_state(state, detail)`` at every change: ("online", "resumed" or
    "fresh"), ("offline", the error), ("stopped", the error or None).
    ``stats`` counts what happened.
    """

    def __init__(self, jid, password, heartbeat=None, backoff=None, max_unacked=MAX_UNACKED,
                 connect_timeout_ms=CONNECT_TIMEOUT_MS, **options):
        self.sm = StreamManagement(max_unacked, hold_acks=True)  # acks ride on our next write (_beat)
        self.client = Client(jid, password, sm=self.sm, **options)
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat()
        self.backoff = backoff if backoff is not None else Backoff()
        self.connect_timeout_ms = connect_timeout_ms
        self.state = STATE_STOPPED
        self.error = None  # what stopped it, or what the last attempt failed with
        self.on_message = None
        self.on_presence = None
        self.on_iq = None
        self.on_state = None
        self.stats = {
            "attempts": 0,  # connection attempts
            "online": 0,  # times it came online: 1 + reconnections
            "resumed": 0,  # ... of which by resuming the stream
            "lost": 0,  # links lost while online (errors, closes, dead links)
            "dead_links": 0,  # ... of which found dead by a probe
            "probes": 0,
            "whitespace": 0,
            "memory_errors": 0,  # MemoryErrors that tore a connection (or an attempt) down
        }
        self.memory_errors_in_row = 0  # ... since the link last stayed up for the backoff's stable_ms
        self._online_at = None
        self._retry_at = None  # (ticks, delay) of the next attempt while offline
        self._presence = None  # the last broadcast presence (kwargs), re-announced on a fresh stream
        self._presence_due = False
        self._ping_id = None
        self._beat_ms = None  # when the last whitespace was handed to the socket
        self._ack_since = None  # when the session began to hold an ack the server asked for
        self._ride_until = None  # a probe rides on a stanza planned before this; else it goes alone
        # When the application plans its next stanza (ticks_ms), or None; xmpp_lite.node sets it.
        # The heartbeat sends no whitespace before it and lets a probe ride on it.
        self.next_send_ms = None
        self._ids = IdSource()  # not the session's: these ids survive reconnections
        self.client.on_message = self.client.on_presence = self.client.on_iq = self._stanza_in

    # -- public API ---------------------------------------------------------------------------------

    def __getattr__(self, name):
        # The computed attributes, in one function: on a board a property each costs more heap.
        if name == "online":  # True while the link is up
            return self.state == STATE_ONLINE and self.client.connected
        if name == "jid":  # the bound full JID while online, else None
            return self.client.jid
        if name == "unacked":  # how many stanzas wait for an ack or for the link
            return len(self.sm.unacked)
        raise AttributeError(name)

    def register_iq_handler(self, xmlns, fn):
        self.client.register_iq_handler(xmlns, fn)

    def connect(self):
        """Start (or restart after a stop): one connection attempt now.

        Returns True when online. On a network or server problem returns
        False and ``poll`` retries after a backoff delay. Raises the fatal
        errors (AuthError, conflict, ...), and then stays stopped.
        """
        if self.state == STATE_ONLINE and self.client.connected:
            return True
        self.error = None
        self.backoff.reset()
        return self._attempt()

    def poll(self, timeout_ms=0):
        """One round of work, returning within about ``timeout_ms``; the number of events handled.

        Online: I/O, callbacks and heartbeats; offline: a reconnection
        attempt once its delay is over (that attempt blocks for up to
        ``connect_timeout_ms``). Raises only fatal errors, once; afterwards
        the client is stopped and poll just waits.
        """
        if self.state == STATE_ONLINE:
            return self._poll_online(timeout_ms)
        if self.state == STATE_OFFLINE:
            start, delay = self._retry_at
            left = delay - ticks_diff(ticks_ms(), start)
            if left > 0:
                sleep_ms(min(left, max(timeout_ms, 0)))
                return 0
            self._attempt()
            return 0
        sleep_ms(max(timeout_ms, 0))
        return 0

    def new_id(self):
        """A stanza id unique for this client across reconnections."""
        return self._ids.next()

    def send(self, elem):
        """Send a stanza now, or keep it for the link; raises QueueFull (nothing kept) when full."""
        if self.state == STATE_STOPPED:
            raise OSError(errno.ENOTCONN, "the client is stopped: connect() first")
        if not self.client.connected:
            self.sm.queue_offline(serialise(elem, NS_CLIENT))
            return
        try:
            self.client.send(elem)  # kept in sm.unacked before the socket sees it; may raise QueueFull
        except RETRYABLE as error:
            self._lost(error)

    def send_message(self, to, body, type="chat", payload=None):
        """Send (or keep) a <message/>; returns its id."""
        stanza_id = self.new_id()
        self.send(make_message(to=to, body=body, type=type, id=stanza_id, payload=payload))
        return stanza_id

    def send_presence(self, status=None, show=None, priority=None, payload=None, to=None, type=None):
        """Send a presence; a broadcast one is remembered and announced again on every fresh stream."""
        if to is None and type is None:
            self._presence = {"status": status, "show": show, "priority": priority, "payload": payload}
            self._presence_due = True
            if self.client.connected:
                self._announce()
            return
        self.send(make_presence(to=to, type=type, show=show, status=status, priority=priority, payload=payload))

    def close(self, timeout_ms=CLOSE_ACK_TIMEOUT_MS):
        """Ask for an ack of what is unacked (waiting at most ``timeout_ms``), close the stream, stop.

        Returns how many stanzas were still unacked (0: the server has
        everything that was sent).
        """
        if self.state == STATE_ONLINE and self.client.connected:
            try:
                if self.sm.unacked and self.client.request_ack():
                    start = ticks_ms()
                    while self.sm.unacked and self.client.connected:
                        left = timeout_ms - ticks_diff(ticks_ms(), start)
                        if left <= 0:
                            break
                        self.client.poll(min(left, 100))
            except RETRYABLE:
                pass
            self.client.close()
        else:
            self.client.abort()
        left = len(self.sm.unacked)
        self._stop(None)
        return left

    def drop_for_memory(self, error):
        """After a MemoryError outside the client (e.g. in application code): as if it came from the link.

        The connection is torn down and its memory freed; the link comes
        back after the backoff delay. ``on_state`` hears of it.
        """
        if self.state == STATE_ONLINE:
            self._lost(error)
            return
        self.client.abort()
        self._out_of_memory(error)
        self._notify(self.state, error)
        self._free_connection(error)

    # -- connecting -----------------------------------------------------------------------------------

    def _attempt(self):
        self.stats["attempts"] += 1
        gc.collect()  # a login (TLS above all) needs the most contiguous heap: give it what the last link left
        try:
            # The last presence is the initial one of a fresh stream: it goes out with the login.
            announce = make_presence(**self._presence) if self._presence is not None else None
            self.client.connect(self.connect_timeout_ms, presence=announce)
        except Exception as error:  # noqa: BLE001 - sorted into fatal and retryable below
            self.client.abort()
            if is_fatal(error):
                self._stop(error)
                raise
            self._out_of_memory(error)
            self.error = error
            self._schedule(error)
            self._free_connection(error)
            return False
        self._went_online()
        return True

    def _went_online(self):
        now = ticks_ms()
        resumed = self.client.session.resumed
        self.state = STATE_ONLINE
        self.error = None
        self.stats["online"] += 1
        if resumed:
            self.stats["resumed"] += 1
        else:
            self._presence_due = self._presence is not None and not self.client.session.presence_sent
        self._ping_id = None
        self._beat_ms = None
        self._ack_since = None
        self._ride_until = None
        self._online_at = now
        self.heartbeat.reset(now)
        self.backoff.online(now)
        self._notify(STATE_ONLINE, "resumed" if resumed else "fresh")
        self._announce()

    def _announce(self):
        if not self._presence_due or not self.client.connected:
            return
        try:
            self.client.send_presence(**self._presence)
            self._presence_due = False
        except QueueFull:
            pass  # the queue is full of unacked stanzas: again at the next poll
        except RETRYABLE as error:
            self._lost(error)

    def _schedule(self, error):
        self.state = STATE_OFFLINE
        self._retry_at = (ticks_ms(), self.backoff.next_delay())
        self._notify(STATE_OFFLINE, error)

    def _out_of_memory(self, error):
        """After a MemoryError: count it (before on_state hears of it), resume nothing."""
        if isinstance(error, MemoryError):
            self.stats["memory_errors"] += 1
            self.memory_errors_in_row += 1
            self.sm.forget()  # the session may have stopped half way: its counts are not trusted

    def _free_connection(self, error):
        """After a MemoryError, once on_state has seen it: free what the dead connection held."""
        if isinstance(error, MemoryError):
            self.client.session = None  # the parser, the stanza under way, the output queue
            gc.collect()

    def _lost(self, error):
        """The link is gone (the stream stays resumable): close the socket, retry after a delay."""
        self.client.abort()
        self._out_of_memory(error)
        if self.state != STATE_ONLINE:
            self._free_connection(error)
            return
        self.stats["lost"] += 1
        self.error = error
        self._schedule(error)
        self._free_connection(error)

    def _stop(self, error):
        self.state = STATE_STOPPED
        self.error = error
        self._retry_at = None
        self._notify(STATE_STOPPED, error)

    def _notify(self, state, detail):
        if self.on_state is not None:
            self.on_state(state, detail)

    # -- online -----------------------------------------------------------------------------------------

    def _poll_online(self, timeout_ms):
        client = self.client
        wait = min(max(timeout_ms, 0), self.heartbeat.next_due_ms(ticks_ms(), self._last_sent(),
                                                                    client.last_received_ms, self.next_send_ms,
                                                                    self._ack_since))
        try:
            count = client.poll(wait)
            if self._presence_due:
                self._announce()
            if self.state == STATE_ONLINE:
                self._beat()
        except Exception as error:  # noqa: BLE001 - sorted into fatal and retryable below
            if is_fatal(error):
                self.client.abort()
                self._stop(error)
                raise
            if not isinstance(error, RETRYABLE):
                raise  # a callback's own exception: the link is fine, the application decides
            self._lost(error)
            return 0
        now = ticks_ms()
        self.backoff.check_stable(now)
        if self.memory_errors_in_row and ticks_diff(now, self._online_at) >= self.backoff.stable_ms:
            self.memory_errors_in_row = 0
        return count

    def _last_sent(self):
        # A space that the socket has not taken yet (a stalled link) counts as sent: one is enough.
        sent = self.client.last_sent_ms
        beat = self._beat_ms
        if sent is None or (beat is not None and ticks_diff(beat, sent) > 0):
            return beat
        return sent

    def _beat(self):
        client = self.client
        now = ticks_ms()
        session = client.session
        if not session.ack_owed:
            self._ack_since = None
        elif self._ack_since is None:
            self._ack_since = now
        if self._ride_until is not None and (not self.sm.ask_next or ticks_diff(now, self._ride_until) > 0):
            self._ride_until = None
            if self.sm.ask_next:  # the planned stanza did not come: the probe goes alone
                client.request_ack()
        action = self.heartbeat.check(now, self._last_sent(), client.last_received_ms, self.next_send_ms,
                                      self._ack_since)
        if action == SEND_WHITESPACE or action == SEND_ACK:
            # An ack that waits goes in the whitespace's place (Session.send_whitespace).
            if action == SEND_WHITESPACE:
                self.stats["whitespace"] += 1
            self._beat_ms = now
            self._ack_since = None
            client.send_whitespace()
        elif action == SEND_PROBE or action == RIDE_PROBE:
            self.stats["probes"] += 1
            planned = self.next_send_ms
            if action == RIDE_PROBE and planned is not None and self.sm.enabled:
                self.sm.ask_next = True  # the <r/> goes with the planned stanza
                self._ride_until = ticks_add(planned, self.heartbeat.ride_ms)
            elif not client.request_ack():
                self._ping_id = client.send_ping()
        elif action == LINK_DEAD:
            self.stats["dead_links"] += 1
            from xmpp_lite.streamerror import link_error

            self._lost(link_error(errno.ETIMEDOUT, self.heartbeat.probe_timeout_ms))

    # -- callbacks from the Client ------------------------------------------------------------------

    def _stanza_in(self, stanza):
        # One method for the three callbacks of the Client: a method each costs more heap on a board.
        local = stanza.local
        if local == "message":
            callback = self.on_message
        elif local == "presence":
            callback = self.on_presence
        else:
            if self._ping_id is not None and stanza.get("id") == self._ping_id:
                self._ping_id = None  # our probe's answer; the heartbeat saw the bytes
                return
            callback = self.on_iq
        if callback is not None:
            callback(stanza)
