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
"""

from xmpp_lite._compat import ticks_add, ticks_diff, ticks_ms
from xmpp_lite.sm import QueueFull
from xmpp_lite.stanza import Element, error_reply
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stream import split_jid

NS_SENSOR = "urn:xmpp-lite:sensor:0"
NS_COMMAND = "urn:xmpp-lite:command:0"

MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 86400
MAX_COMMAND_CHARS = 200  # longer bodies are not commands
REBOOT_DELAY_MS = 1000  # time for the reply to go out before the board resets

REPORT_COMPACT = "compact"
REPORT_FULL = "full"
REPORT_FORMATS = (REPORT_COMPACT, REPORT_FULL)
# The compact report's status summary in presence goes at least this often (and on a significant change).
PRESENCE_INTERVAL_MS = 3600000
_NUMBER_CHARS = "-0123456789."

HELP = ("commands: help, read, status, set <output> on|off, interval <seconds>, reboot")


def bare(jid):
    local, domain, _ = split_jid(jid or "")
    return (local.lower() + "@" + domain) if local else domain


def format_value(value):
    if value is None:
        return "?"
    if isinstance(value, float):
        text = "%.2f" % value
        text = text.rstrip("0").rstrip(".") if text.find(".") >= 0 else text
        return text
    return str(value)


def status_text(readings):
    """"temp=21.5C hum=40%": what a person sees as the board's presence status."""
    return " ".join("%s=%s%s" % (name, format_value(value), unit if value is not None else "")
                    for name, value, unit in readings)


def parse_readings(text):
    """[(name, value, unit)] from a report text (see ``status_text``), or None if ``text`` is not one.

    The value is an int, a float or None (``?``: the sensor failed);
    ``format_value`` of it gives back the text, so the readings are exact.
    """
    if not text:
        return None
    out = []
    for token in text.split(" "):
        equals = token.find("=")
        if equals <= 0:
            return None
        name = token[:equals]
        rest = token[equals + 1:]
        if rest == "?":
            out.append((name, None, ""))
            continue
        end = 0
        while end < len(rest) and rest[end] in _NUMBER_CHARS:
            end += 1
        number = rest[:end]
        try:
            value = float(number) if "." in number else int(number)
        except ValueError:
            return None
        out.append((name, value, rest[end:]))
    return out


def report_readings(stanza):
    """The readings a report stanza (either format: message or presence) carries, or None."""
    elem = stanza.find("readings", NS_SENSOR)
    if elem is not None:
        out = []
        for reading in elem.find_all("reading"):
            value = reading.get("value", "?")
            parsed = parse_readings("v=" + value)
            out.append((reading.get("name", ""), parsed[0][1] if parsed else None, reading.get("unit", "")))
        return out
    if stanza.name != "message" or stanza.get("type") in ("chat", "error", "groupchat"):
        return None
    return parse_readings(stanza.find_text("body"))


def readings_element(readings, seq, reconnects=None):
    attrs = {"seq": str(seq)}
    if reconnects is not None:
        attrs["reconnects"] = str(reconnects)
    elem = Element("readings", attrs, xmlns=NS_SENSOR)
    for name, value, unit in readings:
        attrs = {"name": name, "value": format_value(value)}
        if unit:
            attrs["unit"] = unit
        elem.append(Element("reading", attrs))
    return elem


class Node:
    """See the module docstring. ``on_reboot()`` is called for the reboot command (machine.reset on a board)."""

    def __init__(self, link, sensors, outputs=(), controller=None, admins=(), interval_ms=60000,
                 report_message="every", on_reboot=None, status_extra=None, report_format=REPORT_COMPACT,
                 presence_interval_ms=PRESENCE_INTERVAL_MS):
        if report_format not in REPORT_FORMATS:
            raise ValueError("report_format must be one of " + ", ".join(REPORT_FORMATS))
        self.link = link
        self.sensors = list(sensors)
        self.outputs = {}
        for output in outputs:
            self.outputs[output.name] = output
        self.controller = controller
        self.allowed = [bare(jid) for jid in ((controller,) if controller else ()) + tuple(admins)]
        self.interval_ms = interval_ms
        self.report_message = report_message
        self.report_format = report_format
        self.presence_interval_ms = presence_interval_ms
        self.on_reboot = on_reboot
        self.status_extra = status_extra  # a callable returning more text for "status"
        self.seq = 0  # reports made
        self.ignored = 0  # commands from JIDs not on the allow-list
        self.commands = 0
        self.reboot_at = None
        self._last_report = None
        self._last_sent = None  # the readings of the last report message, for "change"
        self._started = None
        self._last_presence = None  # (ticks, readings, link's online count) of the last status summary

    def start(self, now):
        """Register the command handler and report at once."""
        self._started = now
        self.link.on_message = self.on_message
        self.link.on_presence = self.on_presence
        self.link.register_iq_handler(NS_COMMAND, self.on_iq)
        self.report(now)

    def tick(self, now):
        """Report when the interval is over; run a pending reboot."""
        if self._last_report is None or ticks_diff(now, self._last_report) >= self.interval_ms:
            self.report(now)
        last = self._last_report
        if last is not None and hasattr(self.link, "next_send_ms"):  # no keepalive needed before it
            self.link.next_send_ms = ticks_add(last, self.interval_ms)
        if self.reboot_at is not None and ticks_diff(now, self.reboot_at) >= 0:
            self.reboot_at = None
            if self.on_reboot is not None:
                self.on_reboot()

    # -- reports ---------------------------------------------------------------------------------------

    def readings(self):
        out = []
        for sensor in self.sensors:
            out += sensor.read()
        return out

    def report(self, now, readings=None):
        """Report the readings (see the module docstring for the formats); returns them."""
        if readings is None:
            readings = self.readings()
        self._last_report = now
        self.seq += 1
        text = status_text(readings)
        full = self.report_format == REPORT_FULL
        if full:
            self.link.send_presence(status=text, payload=self._payload(readings))
        if self.controller and self._message_due(readings):
            try:
                if full:
                    self.link.send_message(self.controller, text, payload=self._payload(readings))
                else:
                    self.link.send(make_message(to=self.controller, body=text))
                self._last_sent = readings
            except QueueFull:
                pass  # the link is down and the queue full: the next report tries again
        if not full and self._presence_due(now, readings):
            self._last_presence = (now, readings, self._online_count())
            self.link.send_presence(status=text, payload=self._payload(readings))  # kept while offline
        return readings

    def _presence_due(self, now, readings):
        """The compact format's status summary: first, slow interval, failure/recovery, beyond a threshold."""
        if self._last_presence is None:
            return True
        then, last, online = self._last_presence
        if ticks_diff(now, then) >= self.presence_interval_ms or online != self._online_count():
            return True
        return self._moved(last, readings, True)

    def _online_count(self):
        stats = getattr(self.link, "stats", None)
        return stats["online"] if stats else 0

    def _payload(self, readings):
        stats = getattr(self.link, "stats", None)
        return readings_element(readings, self.seq, max(stats["online"] - 1, 0) if stats else None)

    def _message_due(self, readings):
        if self.report_message == "every":
            return True
        if self.report_message == "off":
            return False
        return self._last_sent is None or self._moved(self._last_sent, readings, False)

    def _moved(self, last, readings, significant):
        """True if ``readings`` differ from ``last`` beyond the thresholds (``significant``: zero counts as none)."""
        if len(last) != len(readings):
            return True
        thresholds = {}
        for sensor in self.sensors:
            thresholds[sensor.name] = sensor.threshold
        for index in range(len(readings)):
            name, value, _ = readings[index]
            old = last[index][1]
            if (value is None) != (old is None):
                return True
            threshold = thresholds.get(name, 0)
            if significant and not threshold:
                continue
            if value is not None and abs(value - old) > threshold:
                return True
        return False

    # -- commands ----------------------------------------------------------------------------------------

    def allowed_sender(self, jid):
        return bare(jid) in self.allowed

    def on_message(self, msg):
        body = msg.find_text("body")
        if body is None or msg.get("type") == "error" or report_readings(msg) is not None:
            return  # errors and reports (another board's) are not commands
        sender = msg.get("from")
        if not self.allowed_sender(sender):
            self.ignored += 1
            print("node: ignored a command from %s" % sender)
            return
        reply, _ = self.command(body)
        try:
            self.link.send_message(sender, reply)
        except QueueFull:
            print("node: no room to answer %s" % sender)

    def on_presence(self, presence):
        if presence.get("type") != "subscribe":
            return
        sender = presence.get("from")
        allowed = self.allowed_sender(sender)
        if not allowed:
            self.ignored += 1
        try:
            self.link.send_presence(to=bare(sender), type="subscribed" if allowed else "unsubscribed")
        except QueueFull:
            pass  # the requester asks again

    def on_iq(self, iq):
        if not self.allowed_sender(iq.get("from")):
            self.ignored += 1
            return error_reply(iq, "auth", "forbidden")
        request = iq.find("command", NS_COMMAND)
        if request is None or iq.get("type") != "set":
            return error_reply(iq, "modify", "bad-request", "send <command name='...'/> in an iq set")
        text = request.get("name", "")
        if request.text.strip():
            text += " " + request.text.strip()
        reply_text, readings = self.command(text)
        result = Element("iq", {"type": "result"})
        answer = Element("command", {"name": request.get("name", ""), "status": "ok" if readings is not False
                                     else "error"}, text=reply_text, xmlns=NS_COMMAND)
        result.append(answer)
        if readings:
            result.append(self._payload(readings))
        return result

    def command(self, text):
        """(reply text, readings or None, or False for an error) for a command line."""
        self.commands += 1
        if len(text) > MAX_COMMAND_CHARS:
            return "that is too long for a command; send help for the list", False
        words = text.strip().split()
        if not words:
            return HELP, None
        verb = words[0].lower()
        args = words[1:]
        if verb == "help":
            return HELP, None
        if verb == "read":
            readings = self.report(ticks_ms())
            return status_text(readings), readings
        if verb == "status":
            return self._status(), None
        if verb == "set":
            return self._set(args)
        if verb == "interval":
            return self._interval(args)
        if verb == "reboot":
            if self.on_reboot is None:
                return "this board cannot reboot itself", False
            self.reboot_at = ticks_add(ticks_ms(), REBOOT_DELAY_MS)
            return "rebooting in %d s" % (REBOOT_DELAY_MS // 1000), None
        return "unknown command %r; send help for the list" % verb, False

    def _set(self, args):
        names = ", ".join(sorted(self.outputs)) or "none"
        if len(args) != 2 or args[1].lower() not in ("on", "off"):
            return "usage: set <output> on|off (outputs: %s)" % names, False
        output = self.outputs.get(args[0])
        if output is None:
            return "no output %r (outputs: %s)" % (args[0], names), False
        output.set(args[1].lower() == "on")
        return "%s %s" % (output.name, "on" if output.state else "off"), None

    def _interval(self, args):
        if len(args) != 1 or not args[0].isdigit() or not MIN_INTERVAL_S <= int(args[0]) <= MAX_INTERVAL_S:
            return "usage: interval <seconds>, from %d to %d" % (MIN_INTERVAL_S, MAX_INTERVAL_S), False
        self.interval_ms = int(args[0]) * 1000
        return "interval %d s" % (self.interval_ms // 1000), None

    def _status(self):
        link = self.link
        stats = getattr(link, "stats", {})
        parts = ["reports %d" % self.seq, "interval %d s" % (self.interval_ms // 1000)]
        if stats:
            parts.append("online %d times, %d resumed" % (stats.get("online", 0), stats.get("resumed", 0)))
        if hasattr(link, "unacked"):
            parts.append("unacked %d" % link.unacked)
        if self.outputs:
            parts.append(" ".join("%s=%s" % (name, "on" if self.outputs[name].state else "off")
                                  for name in sorted(self.outputs)))
        if self.status_extra is not None:
            parts.append(self.status_extra())
        return ", ".join(parts)
