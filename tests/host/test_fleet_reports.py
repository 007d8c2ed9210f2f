"""The controller's reading of reports (host_tools.fleet.Observer): both report formats of xmpp_lite.node, exactly."""

from host_tools.fleet import Observer
from xmpp_lite.node import NS_SENSOR
from xmpp_lite.stanza import parse

DEVICE = "sensor-1@localhost"


def observer():
    return Observer("controller@localhost", "secret", tls="none")  # never connected: the callbacks alone


def test_a_compact_report_is_read_exactly():
    watcher = observer()
    watcher._on_message(parse(b"<message from='sensor-1@localhost/board'><body>temp=21.5C light=206 dead=?"
                              b"</body></message>"))
    watcher._on_message(parse(b"<message from='sensor-1@localhost/board'><body>temp=-0.25C light=7</body>"
                              b"</message>"))
    entry = watcher.devices[DEVICE]
    assert entry["reports"] == 2 and watcher.messages == 2 and entry["available"] is True
    assert entry["reading"] == "temp=-0.25C light=7" and entry["history"] == [21.5, -0.25]
    # The count of returns comes with the status summary in presence.
    watcher._on_presence(parse(("<presence from='sensor-1@localhost/board'><status>temp=21.5C</status>"
                                "<readings xmlns='%s' seq='9' reconnects='3'><reading name='temp' value='21.5' "
                                "unit='C'/></readings></presence>" % NS_SENSOR).encode()))
    assert entry["reconnects"] == 3 and entry["status"] == "temp=21.5C"


def test_a_full_report_is_read_as_before():
    watcher = observer()
    watcher._on_message(parse(("<message from='sensor-1@localhost/board' type='chat'><body>temp=21.5C</body>"
                               "<readings xmlns='%s' seq='2' reconnects='1'><reading name='temp' value='21.5' "
                               "unit='C'/></readings></message>" % NS_SENSOR).encode()))
    entry = watcher.devices[DEVICE]
    assert entry["reports"] == 1 and entry["reconnects"] == 1 and entry["history"] == [21.5]


def test_replies_and_chat_are_not_reports():
    watcher = observer()
    for body in (b"relay on", b"temp=21.5C"):  # a reply to "read" is a chat message
        watcher._on_message(parse(b"<message from='sensor-1@localhost/board' type='chat'><body>" + body
                                  + b"</body></message>"))
    watcher._on_message(parse(b"<message from='sensor-1@localhost/board'><body>rebooting in 1 s</body></message>"))
    assert watcher.messages == 0 and [body for _, _, body in watcher.replies] == [
        "relay on", "temp=21.5C", "rebooting in 1 s"]
