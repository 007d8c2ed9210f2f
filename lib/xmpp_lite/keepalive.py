"""Heartbeats for links that die silently (GPRS, carrier NAT): when to send what. No I/O, no clock.

Two needs, two mechanisms:
  - keep the NAT mapping alive: one whitespace byte when nothing was *sent*
    for ``ws_interval_ms`` (RFC 6120 4.6.1);
  - prove the link is alive: a probe (XEP-0198 <r/>, else an XEP-0199 ping)
    when nothing was *received* for ``probe_interval_ms``; if still nothing
    arrives within ``probe_timeout_ms``, the link is dead.

Any byte from the server answers a probe: the point is to learn that the
path works, and an ack, a ping result or a message all prove it.

Bytes are paid for (GPRS), so each mechanism stays quiet when it can:
  - no whitespace when something was sent within ``ws_interval_ms``, or
    when the caller says a stanza will go out (``next_send``) before
    ``nat_timeout_ms`` has passed since the last write;
  - at most one probe per ``probe_interval_ms`` of silence; when a stanza
    is planned within ``ride_ms``, the probe rides on it (RIDE_PROBE: ask for
    an ack with the next stanza) instead of taking a TLS record of its own,
    up to ``ride_ms`` early (never late);
  - an XEP-0198 ack the server asked for waits up to ``ack_delay_ms``
    (``ack_since``: when it began to wait) for a stanza to ride on (SEND_ACK
    once that is over).

    heartbeat = Heartbeat()
    heartbeat.reset(now)                       # connection up
    action = heartbeat.check(now, last_sent, last_received)   # optional: next_send, ack_since
    SEND_WHITESPACE / SEND_PROBE / RIDE_PROBE / SEND_ACK / LINK_DEAD / NOTHING

Times are ``ticks_ms`` values and are only compared with ``ticks_diff``, so
they may wrap. ``next_due_ms`` tells a poll loop how long it may sleep.
"""

from xmpp_lite._compat import const, ticks_diff

# GPRS carriers drop idle NAT mappings after 60-150 s (seen in the field);
# 50 s stays under the shortest of them with room for a slow poll loop.
WS_INTERVAL_MS = 50000
# Silence for this long and we ask the server to prove the link. Each probe costs
# ~116 B over TLS (an <r/> up, an <a/> down, a record each): with a whitespace
# every 50 s between them, idle costs ~3540 B/h, under MQTT's 3720 B/h at
# keepalive 60 (docs/wire.md).
PROBE_INTERVAL_MS = 240000
# A GPRS round trip can take 1.5 s, longer after a radio wake-up; 20 s is
# generous and still finds a dead link within 260 s of the last byte.
PROBE_TIMEOUT_MS = 20000
# The shortest idle timeout of carrier NATs assumed: a stanza planned within
# this long of the last write keeps the mapping, so no whitespace before it.
NAT_TIMEOUT_MS = 60000
# A probe that falls due this close before a planned stanza rides on it.
RIDE_MS = 5000
# How long an ack the server asked for may wait for a stanza to ride on (XEP-0198:
# "SHOULD be sent as soon as possible", "MUST NOT be withheld" but for a timeout: this one).
# ejabberd closes a stream whose acks are 60 s late (ack_timeout); Prosody
# only notes it (smacks_max_ack_delay, 30 s).
ACK_DELAY_MS = 10000

NOTHING = const(0)
SEND_WHITESPACE = const(1)
SEND_PROBE = const(2)
LINK_DEAD = const(3)
RIDE_PROBE = const(4)  # ask for an ack with the next stanza (due within ride_ms); the probe counts as out
SEND_ACK = const(5)  # the ack the server asked for waited long enough: send it alone

_FAR = const(3600000)  # "not due": an hour, well inside the ticks_diff range


class Heartbeat:
    """Decides heartbeats from the times of the last write and read; 0 or None turns a mechanism off."""

    def __init__(self, ws_interval_ms=WS_INTERVAL_MS, probe_interval_ms=PROBE_INTERVAL_MS,
                 probe_timeout_ms=PROBE_TIMEOUT_MS, nat_timeout_ms=NAT_TIMEOUT_MS, ride_ms=RIDE_MS,
                 ack_delay_ms=ACK_DELAY_MS):
        from xmpp_lite.checks import check_heartbeat  # loaded for the check only

        check_heartbeat(ws_interval_ms, probe_interval_ms, probe_timeout_ms, nat_timeout_ms, ride_ms, ack_delay_ms)
        self.ws_interval_ms = ws_interval_ms or 0
        self.probe_interval_ms = probe_interval_ms or 0
        self.probe_timeout_ms = probe_timeout_ms or 0
        self.nat_timeout_ms = nat_timeout_ms or 0
        self.ride_ms = ride_ms or 0
        self.ack_delay_ms = ack_delay_ms or 0
        self.probe_sent_ms = None  # ticks of the unanswered probe, if one is out
        self._start_ms = None

    def reset(self, now):
        """A new connection is up at ``now``: no probe is out."""
        self.probe_sent_ms = None
        self._start_ms = now

    def check(self, now, last_sent, last_received, next_send=None, ack_since=None):
        """The one thing to do now. ``last_sent``/``last_received`` may be None (nothing yet).

        ``next_send``: when the caller plans its next stanza (None: unknown);
        ``ack_since``: since when an ack the server asked for waits (None: none waits).
        """
        if last_sent is None:
            last_sent = self._start_ms if self._start_ms is not None else now
        if last_received is None:
            last_received = self._start_ms if self._start_ms is not None else now
        probe = self.probe_sent_ms
        if probe is not None:
            if ticks_diff(last_received, probe) >= 0:
                self.probe_sent_ms = probe = None  # something arrived after the probe: alive
            elif ticks_diff(now, probe) >= self.probe_timeout_ms:
                return LINK_DEAD
        if probe is None and self.probe_interval_ms:
            due_in = self.probe_interval_ms - ticks_diff(now, last_received)
            # A stanza planned within ride_ms takes the probe along, even one that falls due just
            # after it (the last answer came a round trip after the last report): early, never late.
            ride = next_send is not None and 0 <= ticks_diff(next_send, now) <= self.ride_ms
            if due_in <= 0 or (ride and due_in <= self.ride_ms):
                self.probe_sent_ms = now
                return RIDE_PROBE if ride else SEND_PROBE
        if ack_since is not None and ticks_diff(now, ack_since) >= self.ack_delay_ms:
            return SEND_ACK
        if self.ws_interval_ms and ticks_diff(now, last_sent) >= self.ws_interval_ms:
            if (next_send is not None and self.nat_timeout_ms and ticks_diff(next_send, now) >= 0
                    and ticks_diff(next_send, last_sent) <= self.nat_timeout_ms):
                return NOTHING  # the planned stanza keeps the mapping
            return SEND_WHITESPACE
        return NOTHING

    def next_due_ms(self, now, last_sent, last_received, next_send=None, ack_since=None):
        """Milliseconds until ``check`` may have something to do (0: now)."""
        due = _FAR
        if last_sent is None:
            last_sent = now
        if last_received is None:
            last_received = now
        if self.probe_sent_ms is not None:
            due = min(due, self.probe_timeout_ms - ticks_diff(now, self.probe_sent_ms))
        elif self.probe_interval_ms:
            due = min(due, self.probe_interval_ms - ticks_diff(now, last_received)
                      - (self.ride_ms if next_send is not None else 0))
        if ack_since is not None:
            due = min(due, self.ack_delay_ms - ticks_diff(now, ack_since))
        if self.ws_interval_ms:
            ws_due = self.ws_interval_ms - ticks_diff(now, last_sent)
            if (next_send is not None and self.nat_timeout_ms and ticks_diff(next_send, now) >= 0
                    and ticks_diff(next_send, last_sent) <= self.nat_timeout_ms):
                ws_due = max(ws_due, ticks_diff(next_send, now))  # the stanza comes first
            due = min(due, ws_due)
        return max(due, 0)
