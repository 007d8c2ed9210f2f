"""What the sensor node (xmpp_lite.node) needs now and then: commands, subscription answers, reading reports back.

Node.handle imports this module for a command or a subscription request and unloads it once
answered: a board spends its RAM on the report path, not on code that runs a few times a day.
The readers of reports (``parse_readings``, ``report_readings``) are here for the same reason;
programs on a host (the monitor, the fleet simulator) import them from xmpp_lite.node as well.
"""

from xmpp_lite._compat import ticks_add, ticks_ms
from xmpp_lite.node import NS_COMMAND, NS_SENSOR, QueueFull, bare, status_text
from xmpp_lite.stanza import Element, error_reply

MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 86400
MAX_COMMAND_CHARS = 200  # longer bodies are not commands
REBOOT_DELAY_MS = 1000  # time for the reply to go out before the board resets

HELP = "commands: help, read, status, set <output> on|off, interval <seconds>, reboot"


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
        while end < len(rest) and rest[end] in "-0123456789.":
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
            parsed = parse_readings("v=" + reading.get("value", "?"))
            out.append((reading.get("name", ""), parsed[0][1] if parsed else None, reading.get("unit", "")))
        return out
    if stanza.name != "message" or stanza.get("type") in ("chat", "error", "groupchat"):
        return None
    return parse_readings(stanza.find_text("body"))


def handle(node, stanza):
    """Node.handle's work: a subscription request, or a chat command or command iq from an allowed JID
    (Node.handle turns strangers away); returns the iq's answer."""
    sender = stanza.get("from")
    if stanza.name == "presence":  # a subscription request (Node.handle passes the other presences over)
        allowed = bare(sender) in node.allowed
        if not allowed:
            node.ignored += 1
        try:
            node.link.send_presence(to=bare(sender), type="subscribed" if allowed else "unsubscribed")
        except QueueFull:
            pass  # the requester asks again
        return None
    if stanza.name == "message":
        body = stanza.find_text("body")
        if body is None or report_readings(stanza) is not None:
            return None  # reports (another board's) are not commands
        try:
            node.link.send_message(sender, command(node, body)[0])
        except QueueFull:
            print("node: no room to answer %s" % sender)
        return None
    request = stanza.find("command", NS_COMMAND)
    if request is None or stanza.get("type") != "set":
        return error_reply(stanza, "modify", "bad-request", "send <command name='...'/> in an iq set")
    name = request.get("name", "")
    text = name
    if request.text.strip():
        text += " " + request.text.strip()
    reply_text, readings = command(node, text)
    result = Element("iq", {"type": "result"})
    result.append(Element("command", {"name": name, "status": "ok" if readings is not False else "error"},
                          text=reply_text, xmlns=NS_COMMAND))
    if readings:
        result.append(node.readings_element(readings))
    return result


def command(node, text):
    """(reply text, readings or None, or False for an error) for a command line."""
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
        readings = node.report(ticks_ms())
        return status_text(readings), readings
    if verb == "status":
        return status(node), None
    outputs = node.outputs
    if verb == "set":
        names = ", ".join(sorted(output.name for output in outputs)) or "none"
        if len(args) != 2 or args[1].lower() not in ("on", "off"):
            return "usage: set <output> on|off (outputs: %s)" % names, False
        for output in outputs:
            if output.name == args[0]:
                output.set(args[1].lower() == "on")
                return "%s %s" % (output.name, "on" if output.state else "off"), None
        return "no output %r (outputs: %s)" % (args[0], names), False
    if verb == "interval":
        if len(args) != 1 or not args[0].isdigit() or not MIN_INTERVAL_S <= int(args[0]) <= MAX_INTERVAL_S:
            return "usage: interval <seconds>, from %d to %d" % (MIN_INTERVAL_S, MAX_INTERVAL_S), False
        node.interval_ms = int(args[0]) * 1000
        return "interval %d s" % (node.interval_ms // 1000), None
    if verb == "reboot":
        if node.on_reboot is None:
            return "this board cannot reboot itself", False
        node.reboot_at = ticks_add(ticks_ms(), REBOOT_DELAY_MS)
        return "rebooting in %d s" % (REBOOT_DELAY_MS // 1000), None
    return "unknown command %r; send help for the list" % verb, False


def status(node):
    """The "status" reply: reports, interval, the link's returns and queue, outputs, and the board's own extra."""
    link = node.link
    stats = getattr(link, "stats", {})
    parts = ["reports %d" % node.seq, "interval %d s" % (node.interval_ms // 1000)]
    if stats:
        parts.append("online %d times, %d resumed" % (stats.get("online", 0), stats.get("resumed", 0)))
    if hasattr(link, "unacked"):
        parts.append("unacked %d" % link.unacked)
    outputs = sorted((output.name, output.state) for output in node.outputs)
    if outputs:
        parts.append(" ".join("%s=%s" % (name, "on" if state else "off") for name, state in outputs))
    if node.status_extra is not None:
        parts.append(node.status_extra())
    return ", ".join(parts)
