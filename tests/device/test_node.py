"""Tests of the sensor node (xmpp_lite.node) and the sensor drivers (xmpp_lite.sensors), on fake ESP32 modules."""

from support import use_fake_board

from xmpp_lite.node import (NS_COMMAND, NS_SENSOR, HELP, REPORT_FULL, Node, format_value, parse_readings,
                             report_readings, status_text)
from xmpp_lite.sm import QueueFull
from xmpp_lite.stanza import NS_STANZAS, parse

CONTROLLER = "controller@example.net"


class Link:
    """Stands in for a RobustClient: records what the node sends."""

    def __init__(self, room=100):
        self.messages = []  # (to, body, payload)
        self.reports = []  # compact report stanzas (Element), sent with send()
        self.presences = []  # kwargs
        self.handlers = {}
        self.room = room
        self.on_message = None
        self.on_presence = None
        self.stats = {"online": 2, "resumed": 1}
        self.unacked = 0

    def send_message(self, to, body, type="chat", payload=None):
        if self.room <= 0:
            raise QueueFull("full")
        self.room -= 1
        self.messages.append((to, body, payload))
        return "id%d" % len(self.messages)

    def send(self, elem):
        if self.room <= 0:
            raise QueueFull("full")
        self.room -= 1
        self.reports.append(elem)

    def send_presence(self, **kwargs):
        self.presences.append(kwargs)

    def register_iq_handler(self, xmlns, fn):
        self.handlers[xmlns] = fn


class Fixed:
    """A sensor whose next values the test sets."""

    def __init__(self, name, values, unit="C", threshold=0):
        self.name = name
        self.values = list(values)
        self.unit = unit
        self.threshold = threshold

    def read(self):
        return [(self.name, self.values.pop(0) if len(self.values) > 1 else self.values[0], self.unit)]


def chat(body, sender=CONTROLLER + "/desk"):
    return parse(("<message from='%s' type='chat'><body>%s</body></message>" % (sender, body)).encode())


def node_with(sensors=None, outputs=(), **options):
    link = Link()
    node = Node(link, sensors or [Fixed("temp", [21.5])], outputs, controller=CONTROLLER,
                admins=("admin@example.net",), interval_ms=10000, **options)
    node.start(0)
    return node, link


def full_node(sensors=None, **options):
    return node_with(sensors, report_format=REPORT_FULL, **options)


def test_a_compact_report_is_one_message_with_the_readings_once():
    node, link = node_with([Fixed("temp", [21.5]), Fixed("hum", [40], unit="%"), Fixed("light", [-3.25], unit="")])
    assert link.messages == [] and len(link.reports) == 1
    report = link.reports[0]
    # No type (normal), no id, no payload: the body is all of it, and the readings are in it once.
    assert report.serialise() == (b'<message to="controller@example.net"><body>temp=21.5C hum=40% light=-3.25'
                                  b'</body></message>')
    assert report_readings(report) == [("temp", 21.5, "C"), ("hum", 40, "%"), ("light", -3.25, "")]
    # The first report also sets the status summary, with the readings element for programs.
    assert link.presences[0]["status"] == "temp=21.5C hum=40% light=-3.25"
    payload = link.presences[0]["payload"]
    assert payload.xmlns == NS_SENSOR and payload.get("seq") == "1" and payload.get("reconnects") == "1"
    assert report_readings(parse(("<presence>%s</presence>" % payload.serialise()).encode())) == [
        ("temp", 21.5, "C"), ("hum", 40, "%"), ("light", -3.25, "")]


def test_compact_presence_only_on_a_significant_change_or_the_slow_interval():
    node, link = node_with([Fixed("temp", [21.5, 21.6, 22.0, None, 22.0, 22.1, 22.1], threshold=0.3),
                            Fixed("light", [1, 2, 3, 4, 5, 6, 7], unit="")], presence_interval_ms=60000)
    for now in (10000, 20000, 30000, 40000, 50000, 60000):
        node.tick(now)
    assert [body.find_text("body") for body in link.reports] == [
        "temp=21.5C light=1", "temp=21.6C light=2", "temp=22C light=3", "temp=? light=4", "temp=22C light=5",
        "temp=22.1C light=6", "temp=22.1C light=7"]
    # Start; 22.0 moved beyond 0.3; the failure; the recovery; the slow interval (60 s after the last one
    # at 40 s is not yet due at 60 s). Light has no threshold: its changes alone are not significant.
    assert [p["status"] for p in link.presences] == ["temp=21.5C light=1", "temp=22C light=3", "temp=? light=4",
                                                     "temp=22C light=5"]
    node.tick(100000)
    assert link.presences[-1]["status"] == "temp=22.1C light=7"
    # The link came back: a summary with the new count of returns.
    link.stats["online"] += 1
    node.tick(110000)
    assert len(link.presences) == 6 and link.presences[-1]["payload"].get("reconnects") == "2"


def test_report_texts_parse_back_exactly():
    readings = [("temp", 21.5, "C"), ("hum", 40, "%"), ("t2", -0.05, "C"), ("big", 123456, "lx"), ("dead", None, "C"),
                ("ratio", 0.333333, "")]
    text = status_text(readings)
    assert text == "temp=21.5C hum=40% t2=-0.05C big=123456lx dead=? ratio=0.33"
    parsed = parse_readings(text)
    assert [name for name, _, _ in parsed] == ["temp", "hum", "t2", "big", "dead", "ratio"]
    assert status_text(parsed) == text  # what a program reads is what was sent, to the digit
    assert parsed[1] == ("hum", 40, "%") and isinstance(parsed[1][1], int) and parsed[3][1] == 123456
    assert [format_value(value) for _, value, _ in parsed] == ["21.5", "40", "-0.05", "123456", "?", "0.33"]
    for text in ("", "help", "set relay on", "=5", "temp=", "temp=abc", "a=1 b"):
        assert parse_readings(text) is None, text
    # Chat replies are not reports, whatever their body.
    assert report_readings(chat("temp=21.5C")) is None


def test_full_reports_are_a_status_a_payload_and_a_message():
    node, link = full_node([Fixed("temp", [21.5]), Fixed("hum", [40], unit="%")])
    assert link.presences[0]["status"] == "temp=21.5C hum=40%"
    payload = link.presences[0]["payload"]
    assert payload.xmlns == NS_SENSOR and payload.get("seq") == "1"
    assert payload.get("reconnects") == "1"  # the link says it came online twice
    assert [(r.get("name"), r.get("value"), r.get("unit")) for r in payload.find_all("reading")] == [
        ("temp", "21.5", "C"), ("hum", "40", "%")]
    to, body, message_payload = link.messages[0]
    assert to == CONTROLLER and body == "temp=21.5C hum=40%" and message_payload.find("reading") is not None
    assert link.reports == []


def test_reports_follow_the_interval():
    node, link = full_node()
    node.tick(9999)
    assert len(link.presences) == 1
    node.tick(10000)
    assert len(link.presences) == 2 and link.presences[1]["payload"].get("seq") == "2"
    node, link = node_with()
    node.tick(9999)
    assert len(link.reports) == 1
    node.tick(10000)
    assert len(link.reports) == 2 and node.seq == 2


def test_failed_sensors_show_a_question_mark():
    assert status_text([("temp", None, "C"), ("light", 7, "")]) == "temp=? light=7"


def test_change_mode_messages_only_on_a_change_beyond_the_threshold():
    node, link = full_node([Fixed("temp", [21.5, 21.6, 22.0, 22.0], threshold=0.3)], report_message="change")
    for now in (10000, 20000, 30000):
        node.tick(now)
    # Four reports (start + three), presence every time, messages for 21.5 and 22.0 only.
    assert len(link.presences) == 4
    assert [body for _, body, _ in link.messages] == ["temp=21.5C", "temp=22C"]
    node, link = node_with([Fixed("temp", [21.5, 21.6, 22.0, 22.0], threshold=0.3)], report_message="change")
    for now in (10000, 20000, 30000):
        node.tick(now)
    assert [elem.find_text("body") for elem in link.reports] == ["temp=21.5C", "temp=22C"]


def test_off_mode_sends_no_messages():
    node, link = full_node(report_message="off")
    node.tick(10000)
    assert link.messages == [] and len(link.presences) == 2
    node, link = node_with(report_message="off")
    node.tick(10000)
    assert link.reports == [] and len(link.presences) == 1  # the summary only


def test_a_node_tells_the_link_when_it_sends_next():
    node, link = node_with()
    link.next_send_ms = None
    node.tick(5000)
    assert link.next_send_ms == 10000


def test_an_unknown_report_format_is_refused():
    try:
        node_with(report_format="verbose")
    except ValueError as error:
        assert "compact, full" in str(error)
    else:
        raise AssertionError("no error")


def test_chat_commands():
    use_fake_board()
    from xmpp_lite.sensors import Output

    relay = Output({"name": "relay", "pin": 4})
    node, link = node_with(outputs=[relay])
    link.messages = []
    replies = []
    for body in ("help", "read", "status", "set relay on", "set relay off", "set pump on", "set relay",
                 "interval 30", "interval 0", "reboot", "dance", "  "):
        link.messages = []
        link.on_message(chat(body))
        replies.append(link.messages[-1][1])
    assert replies[0] == HELP
    assert replies[1] == "temp=21.5C" and link.reports[-1].find_text("body") == "temp=21.5C"  # read reports too
    assert replies[2].startswith("reports 2, interval 10 s, online 2 times, 1 resumed, unacked 0, relay=off")
    assert replies[3] == "relay on" and replies[4] == "relay off" and not relay.state
    assert replies[5] == "no output 'pump' (outputs: relay)"
    assert replies[6].startswith("usage: set <output> on|off")
    assert replies[7] == "interval 30 s" and node.interval_ms == 30000
    assert replies[8].startswith("usage: interval <seconds>")
    assert replies[9] == "this board cannot reboot itself"
    assert replies[10] == "unknown command 'dance'; send help for the list"
    assert replies[11] == HELP


def test_reboot_waits_for_the_reply():
    reboots = []
    node, link = node_with(on_reboot=lambda: reboots.append(True))
    link.on_message(chat("reboot"))
    assert link.messages[-1][1] == "rebooting in 1 s" and reboots == []
    node.tick(node.reboot_at)
    assert reboots == [True]


def test_strangers_are_ignored_and_admins_obeyed():
    node, link = node_with()
    count = len(link.messages)
    link.on_message(chat("read", "mallory@evil.example/x"))
    link.on_message(chat("read", "controller@example.net.evil.example/x"))
    assert len(link.messages) == count and node.ignored == 2
    link.on_message(chat("help", "Admin@EXAMPLE.NET/phone"))  # bare JIDs compare case-insensitively
    assert link.messages[-1] == ("Admin@EXAMPLE.NET/phone", HELP, None)
    # The board's own reports coming back, errors and bodiless messages are not commands.
    count = len(link.messages)
    link.on_message(parse(b"<message from='controller@example.net/d' type='error'><body>help</body></message>"))
    link.on_message(parse(b"<message from='controller@example.net/d'><subject>x</subject></message>"))
    link.on_message(parse(b"<message from='controller@example.net/d'><body>temp=2C</body></message>"))
    assert len(link.messages) == count


def test_iq_commands():
    node, link = node_with()
    handler = link.handlers[NS_COMMAND]

    def iq(name, args="", sender=CONTROLLER + "/prog", kind="set"):
        return parse(("<iq type='%s' id='c1' from='%s'><command xmlns='%s' name='%s'>%s</command></iq>"
                      % (kind, sender, NS_COMMAND, name, args)).encode())

    reply = handler(iq("read"))
    command = reply.find("command", NS_COMMAND)
    assert reply.get("type") == "result" and command.get("status") == "ok" and command.text == "temp=21.5C"
    assert reply.find("readings", NS_SENSOR).find("reading").get("value") == "21.5"
    reply = handler(iq("interval", "60"))
    assert reply.find("command", NS_COMMAND).text == "interval 60 s"
    reply = handler(iq("frobnicate"))
    assert reply.find("command", NS_COMMAND).get("status") == "error"
    forbidden = handler(iq("read", sender="mallory@evil.example/x"))
    assert forbidden.get("type") == "error" and forbidden.find("error").find("forbidden", NS_STANZAS) is not None
    bad = handler(iq("read", kind="get"))
    assert bad.find("error").find("bad-request", NS_STANZAS) is not None


def test_subscriptions_from_the_allowed_are_approved():
    node, link = node_with()
    link.on_presence(parse(b"<presence type='subscribe' from='controller@example.net'/>"))
    link.on_presence(parse(b"<presence type='subscribe' from='mallory@evil.example'/>"))
    link.on_presence(parse(b"<presence from='controller@example.net/desk'/>"))
    answers = [(p["to"], p["type"]) for p in link.presences if p.get("type")]
    assert answers == [("controller@example.net", "subscribed"), ("mallory@evil.example", "unsubscribed")]


def test_a_full_queue_does_not_break_a_report():
    node, link = node_with()
    link.room = 0
    node.tick(10000)
    assert len(link.reports) == 1  # the second report waits for the next one
    node, link = full_node()
    link.room = 0
    node.tick(10000)
    assert len(link.presences) == 2  # presence goes out; the message waits for the next report


def test_sensor_drivers_on_the_fake_board():
    settings = use_fake_board()
    from xmpp_lite.sensors import Output, make_sensor

    light = make_sensor({"name": "light", "kind": "adc", "pin": 34, "scale": 0.01})
    value = light.read()[0]
    assert value[0] == "light" and 0 <= value[1] <= 656 and value[2] == ""
    button = make_sensor({"name": "button", "kind": "digital", "pin": 0, "pull": "up"})
    assert button.read() == [("button", 1, "")]
    climate = make_sensor({"name": "temp", "kind": "dht22", "pin": 15})
    readings = climate.read()
    assert [(name, unit) for name, _, unit in readings] == [("temp", "C"), ("hum", "%")]
    settings["FAKE_DHT_FAIL"] = "1"
    assert climate.read() == [("temp", None, "C"), ("hum", None, "%")] and climate.failures == 1
    chip = make_sensor({"name": "chip", "kind": "internal_temp"})
    assert chip.read() == [("chip", 50.0, "C")]
    simulated = make_sensor({"name": "t", "kind": "simulated", "base": 20, "amplitude": 1})
    assert 19 <= simulated.read()[0][1] <= 21
    led = Output({"name": "led", "pin": 2, "active_low": True})
    led.set(True)
    assert led.state and led._pin.value() == 0


def test_commands_load_their_module_for_the_time_they_take():
    import sys

    node, link = node_with()
    link.on_presence(parse(b"<presence from='controller@example.net/desk'><status>x</status></presence>"))
    link.on_message(parse(b"<message from='controller@example.net/d' type='error'><body>help</body></message>"))
    assert "xmpp_lite.nodecmd" not in sys.modules  # presence updates and errors: passed over without it
    for _ in range(3):  # strangers, a flood maybe: turned away without it
        link.on_message(chat("status", "mallory@evil.example/x"))
        iq = parse(("<iq type='set' id='c1' from='mallory@evil.example/x'><command xmlns='%s' name='read'/></iq>"
                    % NS_COMMAND).encode())
        assert link.handlers[NS_COMMAND](iq).get("type") == "error"
    assert "xmpp_lite.nodecmd" not in sys.modules and node.ignored == 6 and link.messages == []
    link.on_message(chat("help"))
    assert link.messages[-1][1] == HELP
    assert "xmpp_lite.nodecmd" not in sys.modules  # answered, and unloaded again
    link.on_message(chat("status"))
    assert link.messages[-1][1].startswith("reports 1, ")


def test_the_readers_of_reports_are_reachable_from_node():
    from xmpp_lite import node, nodecmd

    assert node.parse_readings("t=1C") == [("t", 1, "C")]
    assert node.bare("Admin@example.net/phone") == "admin@example.net"
    assert node.MAX_COMMAND_CHARS == nodecmd.MAX_COMMAND_CHARS
    try:
        node.no_such_name
    except AttributeError:
        pass
    else:
        raise AssertionError("no AttributeError")
