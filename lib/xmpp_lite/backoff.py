"""Reconnection delays: exponential backoff with jitter and a cap. No I/O, no clock.

    backoff = Backoff()
    delay = backoff.next_delay()   # after a failed attempt or a lost link
    backoff.online(now)            # a connection is up ...
    backoff.check_stable(now)      # ... and once it stayed up ``stable_ms``, delays start small again

Delay n (from 0) is drawn uniformly from [(1 - jitter) * d, d] with
d = min(cap, initial * factor ** n): a fleet that lost its server at the
same moment does not come back in lockstep, and no delay exceeds the cap.
The reset waits for a stable connection, so a server that accepts and then
drops every login still sees growing delays.
"""

import os

from xmpp_lite._compat import const, ticks_diff

_INITIAL_DELAY_MS = const(1000)
_MAX_DELAY_MS = const(300000)  # 5 minutes: a board off the network for a day still tries 12 times an hour
_FACTOR = const(2)
_STABLE_MS = const(60000)  # online this long and the next loss starts over at _INITIAL_DELAY_MS


class Backoff:
    """Delays for successive reconnection attempts; ``rand()`` gives floats in [0, 1)."""

    # jitter: the fraction of each delay that is random.
    def __init__(self, initial_ms=_INITIAL_DELAY_MS, max_ms=_MAX_DELAY_MS, factor=_FACTOR, jitter=0.5,
                 stable_ms=_STABLE_MS, rand=None):
        from xmpp_lite.checks import check_backoff  # loaded for the check only

        check_backoff(initial_ms, max_ms, factor, jitter)
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.factor = factor
        self.jitter = jitter
        self.stable_ms = stable_ms
        self.attempts = 0  # delays handed out since the last reset
        self._rand = rand  # None: os.urandom
        self._online_since = None

    def next_delay(self):
        """Milliseconds to wait before the next attempt."""
        self._online_since = None
        ceiling = self.initial_ms
        for _ in range(self.attempts):
            ceiling *= self.factor
            if ceiling >= self.max_ms:
                break
        ceiling = min(ceiling, self.max_ms)
        self.attempts += 1
        if self._rand is None:
            data = os.urandom(2)
            fraction = (data[0] << 8 | data[1]) / 65536
        else:
            fraction = self._rand()
        return int(ceiling - self.jitter * ceiling * fraction)

    def online(self, now):
        self._online_since = now

    def check_stable(self, now):
        """Start over once the connection has been up ``stable_ms``; True when it did."""
        since = self._online_since
        if since is not None and self.attempts and ticks_diff(now, since) >= self.stable_ms:
            self.attempts = 0
            return True
        return False

    def reset(self):
        self.attempts = 0
        self._online_since = None
