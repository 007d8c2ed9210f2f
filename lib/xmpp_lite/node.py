"""The sensor node: periodic reports, and commands from people (chat) and programs (iq).

    node = Node(link, sensors, outputs, controller="controller@example.net", interval_ms=60000)
    node.start(ticks_ms())
    loop: link.poll(100); node.tick(ticks_ms())

``link`` is an xmpp_lite.robust.RobustClient (or anything with its
send / send_message / send_presence / register_iq_handler / on_message).

Reports (``report_format``, see docs/wire.md for what each byte costs):

- "compact" (the default): one ``<message/>`` to the controller per report,
  no type, no id, the readings once as its body: ``temp=21.5C hum=40%``
  (``name=value`` then the unit, space-separated; a failed sensor shows
  ``temp=?``; ``parse_readings`` reads it back). Presence carries state:
  available at login (the link sends it), and a status summary (the same
  text, with the ``<readings>`` element below) at start, when a reading
  fails or recovers or moves by more than its sensor's ``threshold`` (when
  that is above 0) since the last summary, after the link came back (its
  ``reconnects`` changed), and at least every ``presence_interval_ms``. The server echoes a presence back to the board
  and to every subscriber, so it stays rare.
- "full" (the old behaviour): presence status text with the readings as an
  element, ``<readings xmlns='urn:xmpp-lite:sensor:0' seq='7'
  reconnects='1'><reading name='temp' value='21.5' unit='C'/>...
  </readings>`` (``seq`` counts reports since boot, ``reconnects`` the
  link's returns), at every report, and a chat message with that text and
  element to the controller.

``report_message`` says when the message goes: at every report ("every"),
only when a reading moved by more than its sensor's ``threshold`` since the
last message ("change"), or never ("off").

Commands, by chat message (the reply is a chat message) or by
``<iq type='set'><command xmlns='urn:xmpp-lite:command:0' name='read'>args
</command></iq>`` (the result carries ``<command name=... status='ok'|
'error'>reply text</command>``, and for "read" the readings element):
help, read, status, ``set <output> on|off``, ``interval <seconds>``,
reboot. Only the controller and the configured admins (bare JIDs) may
command the board: messages from anyone else are ignored, iqs from them get
<forbidden/>. Presence subscription requests from them are approved (so
their clients show the board's status), from anyone else refused.

RAM: this module is the report path, which runs all the time. Commands and
subscription answers are rare: xmpp_lite.nodecmd answers them, loaded for
the time it takes and unloaded again; strangers are turned away here, without
loading it (a flood of their messages costs no more than a look at the
sender). Its public names (``parse_readings``, ``report_readings``, ``HELP``,
the limits) are reachable from here too, for the programs that read reports.
"""

from xmpp_lite._compat import const, ticks_add, ticks_diff
from xmpp_lite.sm import QueueFull
from xmpp_lite.stanza import Element, error_reply
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stream import split_jid

NS_SENSOR = "urn:xmpp-lite:sensor:0"
NS_COMMAND = "urn:xmpp-lite:command:0"
REPORT_COMPACT = "compact"
REPORT_FULL = "full"
# The compact report's status summary in presence goes at least this often (and on a significant change).
PRESENCE_INTERVAL_MS = const(3600000)


def __getattr__(name):
    # The readers of reports and the command limits live in xmpp_lite.nodecmd (loaded on demand).
    from xmpp_lite import nodecmd

    return getattr(nodecmd, name)


def bare(jid):
    """The bare JID, its local part in lower case: what the allow-list compares."""
    local, domain, _ = split_jid(jid or "")
    return (local.lower() + "@" + domain) if local else domain


def format_value(value):
    """The text of one reading's value: "?" for a failed sensor, a float to at most 2 decimals."""
    if value is None:
        return "?"
    if isinstance(value, float):
        return ("%.2f" % value).rstrip("0").rstrip(".")
    return str(value)


def status_text(readings):
    """"temp=21.5C hum=40%": what a person sees as the board's presence status."""
    parts = []
    for name, value, unit in readings:
        parts.append(name + "=" + format_value(value) + (unit if value is not None else ""))
    return " ".join(parts)


class Node:
    """See the module docstring. ``on_reboot()`` is called for the reboot command (machine.reset on a board)."""

    def __init__(self, link, sensors, outputs=(), controller=None, admins=(), interval_ms=60000,
                 report_message="every", on_reboot=None, status_extra=None, report_format=REPORT_COMPACT,
                 presence_interval_ms=PRESENCE_INTERVAL_MS):
        if report_format != REPORT_COMPACT and report_format != REPORT_FULL:
            raise ValueError("report_format must be one of compact, full")
        self.link = link
        self.sensors = list(sensors)
        self.outputs = list(outputs)
        self.controller = controller
        self.allowed = []  # bare JIDs that may command the board
        for jid in ((controller,) if controller else ()) + tuple(admins):
            self.allowed.append(bare(jid))
        self.interval_ms = interval_ms
        self.report_message = report_message
        self.report_format = report_format
        self.presence_interval_ms = presence_interval_ms
        self.on_reboot = on_reboot
        self.status_extra = status_extra  # a callable returning more text for "status"
        self.seq = 0  # reports made
        self.ignored = 0  # commands from JIDs not on the allow-list
        self.reboot_at = None
        self._last_report = None
        self._last_sent = None  # the readings of the last report message, for "change"
        self._last_presence = None  # (ticks, readings, link's online count) of the last status summary

    def start(self, now):
        """Take the link's messages, presences and command iqs, and report at once."""
        link = self.link
        handle = self.handle
        link.on_message = handle
        link.on_presence = handle
        link.register_iq_handler(NS_COMMAND, handle)
        self.report(now)

    def tick(self, now):
        """Report when the interval is over; run a pending reboot."""
        last = self._last_report
        if last is None or ticks_diff(now, last) >= self.interval_ms:
            self.report(now)
            last = now
        if hasattr(self.link, "next_send_ms"):  # no keepalive needed before the next report
            self.link.next_send_ms = ticks_add(last, self.interval_ms)
        if self.reboot_at is not None and ticks_diff(now, self.reboot_at) >= 0:
            self.reboot_at = None
            if self.on_reboot is not None:
                self.on_reboot()

    def report(self, now, readings=None):
        """Report the readings (see the module docstring for the formats); returns them."""
        if readings is None:
            readings = []
            for sensor in self.sensors:
                readings += sensor.read()
        link = self.link
        self._last_report = now
        self.seq += 1
        text = status_text(readings)
        full = self.report_format == REPORT_FULL
        if full:
            link.send_presence(status=text, payload=self.readings_element(readings))
        mode = self.report_message
        last = self._last_sent
        if self.controller and (mode == "every" or mode != "off" and (last is None or self._moved(last, readings, 0))):
            try:
                if full:
                    link.send_message(self.controller, text, payload=self.readings_element(readings))
                else:
                    link.send(make_message(to=self.controller, body=text))
                self._last_sent = readings
            except QueueFull:
                pass  # the link is down and the queue full: the next report tries again
        if not full:
            # The status summary: first, slow interval, the link came back, failure/recovery, beyond a threshold.
            stats = getattr(link, "stats", None)
            online = stats["online"] if stats else 0
            last = self._last_presence
            if (last is None or ticks_diff(now, last[0]) >= self.presence_interval_ms or last[2] != online
                    or self._moved(last[1], readings, 1)):
                self._last_presence = (now, readings, online)
                link.send_presence(status=text, payload=self.readings_element(readings))  # kept while offline
        return readings

    def readings_element(self, readings):
        """<readings seq= reconnects=><reading name= value= unit=/>...</readings> (reconnects if the link counts)."""
        stats = getattr(self.link, "stats", None)
        attrs = {"seq": str(self.seq)}
        if stats:
            attrs["reconnects"] = str(max(stats["online"] - 1, 0))
        elem = Element("readings", attrs, xmlns=NS_SENSOR)
        for name, value, unit in readings:
            attrs = {"name": name, "value": format_value(value)}
            if unit:
                attrs["unit"] = unit
            elem.append(Element("reading", attrs))
        return elem

    def _moved(self, last, readings, significant):
        """True if ``readings`` differ from ``last`` beyond the thresholds (``significant``: zero counts as none)."""
        if len(last) != len(readings):
            return True
        for index in range(len(readings)):
            name, value, _ = readings[index]
            old = last[index][1]
            if (value is None) != (old is None):
                return True
            threshold = 0
            for sensor in self.sensors:
                if sensor.name == name:
                    threshold = sensor.threshold
            if (threshold or not significant) and value is not None and abs(value - old) > threshold:
                return True
        return False

    def handle(self, stanza):
        """A message, presence or command iq from the link: xmpp_lite.nodecmd answers, loaded for the time it takes.

        Returns the iq's answer (None for the others). Presences other than subscription requests and
        error messages (most of what arrives) are passed over here, without loading it, and messages and
        iqs from JIDs not on the allow-list are turned away.
        """
        kind = stanza.get("type")
        name = stanza.name
        if kind == "error" or name == "presence" and kind != "subscribe":
            return None
        sender = stanza.get("from")
        if name != "presence" and bare(sender) not in self.allowed:
            # A stranger, maybe one of a flood: turned away here, without loading the commands' code.
            if name == "iq":
                self.ignored += 1
                return error_reply(stanza, "auth", "forbidden")
            if stanza.find_text("body") is not None:
                self.ignored += 1
                print("node: ignored a command from %s" % sender)
            return None
        from xmpp_lite import nodecmd, unload

        try:
            return nodecmd.handle(self, stanza)
        finally:
            unload("xmpp_lite.nodecmd")
