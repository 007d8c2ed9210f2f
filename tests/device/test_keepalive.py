"""Tests of the heartbeat policy (xmpp_lite.keepalive) and the reconnection delays (xmpp_lite.backoff)."""

from support import Prng, raises

from xmpp_lite.backoff import Backoff
from xmpp_lite.keepalive import (LINK_DEAD, NOTHING, RIDE_PROBE, SEND_ACK, SEND_PROBE, SEND_WHITESPACE,
                                 Heartbeat)

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


def test_no_whitespace_before_a_stanza_that_keeps_the_mapping():
    for start in starts():
        heartbeat = Heartbeat(ws_interval_ms=50000, probe_interval_ms=0, nat_timeout_ms=60000)
        heartbeat.reset(start)
        at = lambda seconds: ticks_add(start, seconds * 1000)  # noqa: E731
        # A report went out at 0 and the next is planned at 60 s: no whitespace at 50 s.
        assert heartbeat.check(at(50), start, start, next_send=at(60)) == NOTHING
        assert heartbeat.next_due_ms(at(50), start, start, next_send=at(60)) == 10000
        # Planned after the NAT timeout, or already late, or unknown: the whitespace goes.
        assert heartbeat.check(at(50), start, start, next_send=at(61)) == SEND_WHITESPACE
        assert heartbeat.check(at(62), start, start, next_send=at(60)) == SEND_WHITESPACE
        assert heartbeat.check(at(50), start, start) == SEND_WHITESPACE


def test_idle_defaults_cost_one_probe_per_four_minutes_and_find_a_dead_link_in_260_s():
    heartbeat = Heartbeat()
    heartbeat.reset(0)
    actions = run(heartbeat, 0, 3600, answer_after=1000)
    probes = [second for second, action in actions if action == SEND_PROBE]
    spaces = [second for second, action in actions if action == SEND_WHITESPACE]
    assert probes[:3] == [240, 481, 722] and len(probes) == 14
    assert spaces[:5] == [50, 100, 150, 200, 290] and len(spaces) == 60
    heartbeat = Heartbeat()
    heartbeat.reset(0)
    assert run(heartbeat, 0, 3600)[-2:] == [(240, SEND_PROBE), (260, LINK_DEAD)]


def test_a_probe_due_just_before_a_stanza_rides_on_it():
    heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=20000, probe_timeout_ms=5000, ride_ms=3000)
    heartbeat.reset(0)
    assert heartbeat.check(20000, 0, 0, next_send=22000) == RIDE_PROBE
    assert heartbeat.check(24000, 0, 0, next_send=22000) == NOTHING  # the probe is out
    assert heartbeat.check(25000, 0, 0) == LINK_DEAD
    heartbeat.reset(0)
    assert heartbeat.check(20000, 0, 0, next_send=24000) == SEND_PROBE  # too far off: alone
    # The last answer came a little after the last report: the probe falls due just after the next
    # report, and rides on it, early.
    heartbeat.reset(0)
    assert heartbeat.check(17000, 0, 500, next_send=19000) == NOTHING
    assert heartbeat.next_due_ms(17000, 0, 500, next_send=19000) == 500
    assert heartbeat.check(19000, 0, 500, next_send=19000) == RIDE_PROBE
    heartbeat.reset(0)
    assert heartbeat.check(19000, 0, 500) == NOTHING  # no stanza planned: the probe waits for its time


def test_a_held_ack_goes_alone_after_its_delay():
    heartbeat = Heartbeat(ws_interval_ms=50000, probe_interval_ms=0, ack_delay_ms=10000)
    heartbeat.reset(0)
    assert heartbeat.check(9999, 0, 0, ack_since=0) == NOTHING
    assert heartbeat.next_due_ms(9999, 0, 0, ack_since=0) == 1
    assert heartbeat.check(10000, 0, 0, ack_since=0) == SEND_ACK
    assert raises(ValueError, Heartbeat, ack_delay_ms=-1)
