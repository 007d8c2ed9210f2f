"""Tests of the heartbeat policy (xmpp_lite.keepalive) and the reconnection delays (xmpp_lite.backoff)."""

from support import Prng, raises

from xmpp_lite.backoff import Backoff
from xmpp_lite.keepalive import LINK_DEAD, NOTHING, SEND_PROBE, SEND_WHITESPACE, Heartbeat

# MicroPython's ticks_ms wraps at 2**30 on this port (TICKS_PERIOD); the
# policy only uses ticks_diff, so times near the wrap must behave alike.
try:
    from time import ticks_add
except ImportError:  # CPython: plain integers, no wrap
    def ticks_add(ticks, delta):
        return ticks + delta


def run(heartbeat, start, steps, answer_after=None):
    """Advance time 1 s per step from ``start``; the server answers a probe after ``answer_after`` ms.

    Nothing else is sent or received. Returns [(second, action)] for every action taken.
    """
    last_sent = last_received = start
    probe_at = None
    actions = []
    for second in range(1, steps + 1):
        now = ticks_add(start, second * 1000)
        if probe_at is not None and answer_after is not None and second * 1000 - probe_at >= answer_after:
            last_received = now
            probe_at = None
        action = heartbeat.check(now, last_sent, last_received)
        if action != NOTHING:
            actions.append((second, action))
        if action == SEND_WHITESPACE or action == SEND_PROBE:
            last_sent = now
        if action == SEND_PROBE:
            probe_at = second * 1000
        if action == LINK_DEAD:
            break
    return actions


def starts():
    yield 0
    yield 1000000
    try:
        from time import ticks_diff

        yield ticks_add(0, -30000)  # 30 s before the wrap
        assert ticks_diff(ticks_add(0, -30000), 0) < 0
    except ImportError:
        pass


def test_whitespace_keeps_a_quiet_link_busy():
    for start in starts():
        heartbeat = Heartbeat(ws_interval_ms=10000, probe_interval_ms=0)
        heartbeat.reset(start)
        actions = run(heartbeat, start, 60)
        assert actions == [(10, SEND_WHITESPACE), (20, SEND_WHITESPACE), (30, SEND_WHITESPACE),
                           (40, SEND_WHITESPACE), (50, SEND_WHITESPACE), (60, SEND_WHITESPACE)]


def test_answered_probes_keep_the_link_alive():
    for start in starts():
        heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=20000, probe_timeout_ms=5000)
        heartbeat.reset(start)
        actions = run(heartbeat, start, 100, answer_after=1000)
        # A probe every 20 s of silence; each answer starts the silence over.
        assert [action for second, action in actions] == [SEND_PROBE] * 4
        assert [second for second, action in actions] == [20, 41, 62, 83]


def test_an_unanswered_probe_means_the_link_is_dead():
    for start in starts():
        heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=20000, probe_timeout_ms=5000)
        heartbeat.reset(start)
        actions = run(heartbeat, start, 100)
        assert actions == [(20, SEND_PROBE), (25, LINK_DEAD)]


def test_inbound_traffic_means_no_probe():
    heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=20000, probe_timeout_ms=5000)
    heartbeat.reset(0)
    for second in range(1, 200):
        # The server talks every 10 s: never a probe.
        assert heartbeat.check(second * 1000, 0, (second // 10) * 10000) == NOTHING


def test_whitespace_and_probe_together():
    heartbeat = Heartbeat(ws_interval_ms=15000, probe_interval_ms=20000, probe_timeout_ms=5000)
    heartbeat.reset(0)
    actions = run(heartbeat, 0, 45, answer_after=1000)
    assert actions == [(15, SEND_WHITESPACE), (20, SEND_PROBE), (35, SEND_WHITESPACE), (41, SEND_PROBE)]


def test_next_due_tells_how_long_to_sleep():
    heartbeat = Heartbeat(ws_interval_ms=15000, probe_interval_ms=20000, probe_timeout_ms=5000)
    heartbeat.reset(0)
    assert heartbeat.next_due_ms(0, 0, 0) == 15000
    assert heartbeat.next_due_ms(14000, 10000, 0) == 6000
    assert heartbeat.check(20000, 19000, 0) == SEND_PROBE
    assert heartbeat.next_due_ms(21000, 20000, 0) == 4000
    assert heartbeat.next_due_ms(30000, 20000, 0) == 0
    off = Heartbeat(ws_interval_ms=0, probe_interval_ms=0)
    assert off.next_due_ms(0, 0, 0) > 60000 and off.check(10 ** 6, 0, 0) == NOTHING


def test_heartbeat_settings_are_checked():
    raises(ValueError, Heartbeat, ws_interval_ms=-1)
    raises(ValueError, Heartbeat, probe_interval_ms=1000, probe_timeout_ms=0)


def test_backoff_grows_to_the_cap_with_jitter():
    prng = Prng(7)
    backoff = Backoff(initial_ms=1000, max_ms=30000, factor=2, jitter=0.5, rand=lambda: prng.next() / 2 ** 32)
    ceilings = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    for ceiling in ceilings:
        delay = backoff.next_delay()
        assert ceiling // 2 <= delay <= ceiling, (delay, ceiling)


def test_backoff_jitter_spreads_a_fleet():
    prng = Prng(3)
    delays = set()
    for _ in range(50):
        backoff = Backoff(initial_ms=10000, jitter=0.5, rand=lambda: prng.next() / 2 ** 32)
        delays.add(backoff.next_delay() // 100)
    assert len(delays) > 25  # fifty boards do not come back in the same 100 ms


def test_backoff_without_jitter_is_exact():
    backoff = Backoff(initial_ms=100, max_ms=1000, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [100, 200, 400, 800, 1000, 1000]


def test_backoff_starts_over_after_a_stable_connection():
    backoff = Backoff(initial_ms=100, max_ms=1000, jitter=0, stable_ms=5000)
    for _ in range(4):
        backoff.next_delay()
    backoff.online(0)
    assert not backoff.check_stable(4999)
    assert backoff.next_delay() == 1000  # lost again too soon: still backing off
    backoff.online(10000)
    assert backoff.check_stable(15000)
    assert backoff.next_delay() == 100


def test_backoff_settings_are_checked():
    raises(ValueError, Backoff, initial_ms=0)
    raises(ValueError, Backoff, initial_ms=10, max_ms=5)
    raises(ValueError, Backoff, factor=0.5)
    raises(ValueError, Backoff, jitter=2)


def test_default_random_source_works():
    backoff = Backoff(initial_ms=1000)
    delay = backoff.next_delay()
    assert 500 <= delay <= 1000
