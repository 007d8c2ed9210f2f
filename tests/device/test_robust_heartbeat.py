"""RobustClient's heartbeat wiring, without a server or a clock: whitespace, probes, dead links.

xmpp_lite.keepalive decides (tests/device/test_keepalive.py); these tests check
that RobustClient acts on it: that poll() sleeps until the next heartbeat is
due, sends what is due through the client, and drops a link whose probe gets
no answer. The client is a stand-in (QuietLink) on which nothing arrives
unless a test says so, and time moves only when RobustClient waits: it is
read through robust.ticks_ms and robust.sleep_ms, which the tests replace.

The assertions use only the intervals given to Heartbeat, so a change of the
default policy changes no test here; a change of what an interval means
changes the expected times.
"""

import errno

import xmpp_lite.robust as robust
from xmpp_lite.backoff import Backoff
from xmpp_lite.keepalive import Heartbeat
from xmpp_lite.robust import STATE_OFFLINE, STATE_ONLINE, RobustClient
from xmpp_lite.stanza import Element

START_MS = 100000
# What one device.poll() may wait; how late a heartbeat may be.
POLL_MS = 100
PROBE_ANSWER_MS = 300  # the server's round trip


class Clock:
    """Milliseconds that pass only when the code under test sleeps or waits for the link."""

    def __init__(self):
        self.now = START_MS

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        self.now += max(ms, 0)


class _Session:
    resumed = False
    presence_sent = False
    ack_owed = False  # the server asked for no ack


class QuietLink:
    """Stands in for xmpp_lite.client.Client: an open link on which the server says nothing.

    ``answer_probes``: the server answers a probe PROBE_ANSWER_MS later; else never.
    ``sm``: a probe is an XEP-0198 <r/>; else an XEP-0199 ping, answered by an iq result.
    ``sent`` lists (time, what) for every heartbeat and stanza written.
    """

    def __init__(self, clock, answer_probes=True, sm=True):
        self.clock = clock
        self.answer_probes = answer_probes
        self.sm = sm
        self.on_message = self.on_presence = self.on_iq = None
        self.session = None
        self.sock = None
        self.last_sent_ms = None
        self.last_received_ms = None
        self.sent = []
        self.polls = 0
        self._answer = None  # (time, iq id or None) of the server's answer to the probe that is out

    @property
    def connected(self):
        return self.session is not None

    def connect(self, timeout_ms, presence=None):
        self.session = _Session()
        self.last_sent_ms = self.last_received_ms = self.clock.now  # the login's traffic
        return "sensor1@example.net/r1"

    def poll(self, timeout_ms):
        """Wait ``timeout_ms`` for input: the clock moves on, to the server's answer if one is due first."""
        if self.session is None:
            raise OSError(errno.ENOTCONN, "not connected")
        self.polls += 1
        now = self.clock.now
        if self._answer is not None and self._answer[0] - now <= timeout_ms:
            at, ping_id = self._answer
            self._answer = None
            self.clock.now = max(now, at)
            self.last_received_ms = self.clock.now
            if ping_id is not None:
                self.on_iq(Element("iq", {"type": "result", "id": ping_id, "from": "example.net"}))
            return 1
        self.clock.now = now + max(timeout_ms, 0)
        return 0

    def _write(self, what):
        self.sent.append((self.clock.now, what))
        self.last_sent_ms = self.clock.now

    def _expect_answer(self, ping_id):
        if self.answer_probes:
            self._answer = (self.clock.now + PROBE_ANSWER_MS, ping_id)

    def send(self, elem):
        self._write(elem.name)

    def send_presence(self, **kwargs):
        self._write("presence")

    def send_whitespace(self):
        self._write("whitespace")

    def request_ack(self):
        if not self.sm:
            return False
        self._write("r")
        self._expect_answer(None)
        return True

    def send_ping(self):
        self._write("ping")
        self._expect_answer("ping-1")
        return "ping-1"

    def abort(self):
        self.session = None
        self._answer = None

    close = abort


class Rig:
    """A RobustClient online over a QuietLink, on a Clock; restore() puts the real clock back."""

    def __init__(self, heartbeat, **link_options):
        self.clock = Clock()
        self._real = (robust.ticks_ms, robust.sleep_ms)
        robust.ticks_ms = self.clock.ticks_ms
        robust.sleep_ms = self.clock.sleep_ms
        try:
            self._start(heartbeat, link_options)
        except BaseException:
            self.restore()
            raise

    def _start(self, heartbeat, link_options):
        self.device = RobustClient("sensor1@example.net", "secret", heartbeat=heartbeat,
                                   backoff=Backoff(initial_ms=60000, jitter=0))
        self.link = QuietLink(self.clock, **link_options)
        real = self.device.client
        self.link.on_message, self.link.on_presence, self.link.on_iq = real.on_message, real.on_presence, real.on_iq
        self.device.client = self.link
        self.states = []
        self.device.on_state = lambda state, detail: self.states.append((self.clock.now, state, detail))
        self.app_iqs = []
        self.device.on_iq = self.app_iqs.append
        assert self.device.connect() is True and self.device.state == STATE_ONLINE

    def restore(self):
        robust.ticks_ms, robust.sleep_ms = self._real

    def run_until(self, end_ms, stop_offline=True, poll_ms=POLL_MS):
        """poll(poll_ms) until the clock reaches ``end_ms`` (or the link is lost); fails if poll spins."""
        for _ in range(100000):
            if self.clock.now >= end_ms or (stop_offline and self.device.state != STATE_ONLINE):
                return
            before = self.clock.now
            self.device.poll(poll_ms)
            if self.clock.now == before:
                self.device.poll(poll_ms)  # one due action may take a round without waiting, not two
                assert self.clock.now > before or self.device.state != STATE_ONLINE, "poll() spins at %d" % before
        raise AssertionError("poll() never got to %d" % end_ms)

    def times(self, what):
        return [at - START_MS for at, sent in self.link.sent if sent == what]


def gaps(times, start=0):
    return [b - a for a, b in zip([start] + times[:-1], times)]


def test_whitespace_goes_out_after_each_interval_of_silence():
    rig = Rig(Heartbeat(ws_interval_ms=1000, probe_interval_ms=0))
    try:
        # poll() may wait a minute: it returns when the next whitespace is due, not later.
        rig.run_until(START_MS + 10000, poll_ms=60000)
        spaces = rig.times("whitespace")
        assert len(spaces) == 10, spaces
        for gap in gaps(spaces):
            assert 1000 <= gap < 1000 + POLL_MS, spaces
        assert rig.device.stats["whitespace"] == 10 and rig.device.state == STATE_ONLINE
        # ... and not much sooner either: about one wait per whitespace.
        assert rig.link.polls <= 2 * len(spaces) + 2, rig.link.polls
    finally:
        rig.restore()


def test_no_whitespace_while_stanzas_go_out():
    rig = Rig(Heartbeat(ws_interval_ms=1000, probe_interval_ms=0))
    try:
        for step in range(1, 6):  # a reading every 700 ms: the link is never idle for 1000 ms
            rig.run_until(START_MS + step * 700)
            rig.device.send_message("controller@example.net", "reading %d" % step)
        last = rig.times("message")[-1]
        rig.run_until(START_MS + last + 1000 + POLL_MS)
        assert len(rig.times("message")) == 5
        space, = rig.times("whitespace")
        assert last + 1000 <= space < last + 1000 + POLL_MS, (last, space)
    finally:
        rig.restore()


def test_a_probe_goes_out_after_the_probe_interval_and_an_answer_keeps_the_link():
    rig = Rig(Heartbeat(ws_interval_ms=0, probe_interval_ms=5000, probe_timeout_ms=2000))
    try:
        rig.run_until(START_MS + 18000)
        probes = rig.times("r")
        assert 5000 <= probes[0] < 5000 + POLL_MS, probes
        # Each answer arrives PROBE_ANSWER_MS after its probe; the next probe after another silence.
        for gap in gaps(probes)[1:]:
            assert 5000 + PROBE_ANSWER_MS <= gap < 5000 + PROBE_ANSWER_MS + POLL_MS, probes
        assert len(probes) == 3 and rig.device.stats["probes"] == 3
        assert rig.device.state == STATE_ONLINE and rig.device.stats["dead_links"] == 0
        assert rig.states == [(START_MS, STATE_ONLINE, "fresh")]
    finally:
        rig.restore()


def test_without_stream_management_the_probe_is_a_ping_and_its_answer_is_not_the_apps():
    rig = Rig(Heartbeat(ws_interval_ms=0, probe_interval_ms=5000, probe_timeout_ms=2000), sm=False)
    try:
        rig.run_until(START_MS + 12000)
        pings = rig.times("ping")
        assert len(pings) == 2 and 5000 <= pings[0] < 5000 + POLL_MS, pings
        assert rig.times("r") == [] and rig.app_iqs == []
        assert rig.device.state == STATE_ONLINE and rig.device.stats["dead_links"] == 0
    finally:
        rig.restore()


def test_a_probe_without_an_answer_is_a_dead_link_within_the_timeout():
    rig = Rig(Heartbeat(ws_interval_ms=1000, probe_interval_ms=5000, probe_timeout_ms=2000),
              answer_probes=False)
    try:
        rig.run_until(START_MS + 60000)
        probe, = rig.times("r")
        at, state, error = rig.states[-1]
        assert state == STATE_OFFLINE and rig.device.state == STATE_OFFLINE
        assert probe + 2000 <= at - START_MS < probe + 2000 + POLL_MS, (probe, at - START_MS)
        assert isinstance(error, OSError) and error.args[0] == errno.ETIMEDOUT
        assert rig.device.stats["dead_links"] == 1 and rig.device.stats["lost"] == 1
        assert not rig.link.connected  # the socket of a dead link is closed, not left open
        # Whitespace kept going while the probe was out: a silent server does not stop the NAT keepalive.
        assert len([t for t in rig.times("whitespace") if t > probe]) >= 1
    finally:
        rig.restore()
