"""Tests of xmpp_lite.session once online: iq answers, stanzas both ways, closing; and XEP-0077 registration.

xmpp_peer.Peer plays the server; login transcripts are in test_session.py.
"""

from support import raises
from xmpp_peer import (
    FULL_JID,
    HEADER,
    JID,
    MODES,
    PASSWORD,
    PROCEED,
    FEATURES_TLS,
    SHORT_MODES,
    STREAM_END,
    Peer,
    iq_get,
    mechanisms,
    online_session,
    service_unavailable,
)

from xmpp_lite.register import Registration, RegistrationError
from xmpp_lite.responder import NS_DISCO_INFO, NS_PING, NS_VERSION
from xmpp_lite.session import (
    EVENT_CLOSED,
    EVENT_ERROR,
    EVENT_HANDLER_ERROR,
    EVENT_IQ,
    EVENT_MESSAGE,
    EVENT_PRESENCE,
    EVENT_REGISTERED,
    MAX_PENDING_EVENTS,
    MAX_REPLY_BACKLOG,
    OUTPUT_PAUSE_BYTES,
    ProtocolError,
    Session,
)
from xmpp_lite.stanza import MAX_STANZA_TEXT, NS_STANZAS, Element


# -- online: iq answers, stanzas ---------------------------------------------------------------------


def test_ping_is_answered():
    for mode in range(SHORT_MODES):
        session, peer = online_session(mode)
        assert peer.reply(iq_get("<ping xmlns='urn:xmpp:ping'/>")) == []
        reply = peer.elements()
        assert len(reply) == 1
        assert reply[0].get("type") == "result" and reply[0].get("id") == "q1"
        assert reply[0].get("to") == "controller@example.net/desk" and reply[0].children == []


def test_ping_from_the_server_without_from():
    session, peer = online_session()
    peer.reply(b"<iq type='get' id='s1'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = peer.elements()[0]
    assert reply.get("type") == "result" and reply.get("to") is None


def test_disco_info_lists_exactly_what_is_supported():
    session, peer = online_session()
    peer.reply(iq_get("<query xmlns='http://jabber.org/protocol/disco#info'/>"))
    reply = peer.elements()[0]
    assert reply.get("type") == "result"
    query = reply.find("query", NS_DISCO_INFO)
    identity = query.find("identity")
    assert identity.get("category") == "client" and identity.get("type") == "bot"
    assert identity.get("name") == "xmpp_lite"
    features = [feature.get("var") for feature in query.find_all("feature")]
    assert features == [NS_DISCO_INFO, "jabber:iq:version", NS_PING]
    # A registered handler adds its namespace.
    session.register_iq_handler("urn:example:sensor", lambda iq: None)
    peer.reply(iq_get("<query xmlns='http://jabber.org/protocol/disco#info'/>", "q2"))
    features = [f.get("var") for f in peer.elements()[0].find("query").find_all("feature")]
    assert features == [NS_DISCO_INFO, "jabber:iq:version", "urn:example:sensor", NS_PING]
    # A node we do not have.
    peer.reply(iq_get("<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>", "q3"))
    error = peer.elements()[0]
    assert error.get("type") == "error" and error.find("error").find("item-not-found", NS_STANZAS) is not None


def test_version_is_answered():
    session, peer = online_session(software=("probe", "1.2"))
    peer.reply(iq_get("<query xmlns='jabber:iq:version'/>"))
    reply = peer.elements()[0]
    query = reply.find("query", NS_VERSION)
    assert reply.get("type") == "result"
    assert query.find_text("name") == "probe" and query.find_text("version") == "1.2"

def test_unknown_iq_gets_service_unavailable():
    for mode in range(SHORT_MODES):
        session, peer = online_session(mode)
        peer.reply(iq_get("<query xmlns='urn:example:unknown'/>", "u1"))
        peer.reply(b"<iq type='set' id='u2' from='controller@example.net/desk'><x xmlns='urn:example:x'/></iq>")
        # A get of a known namespace with the wrong element is unknown too.
        peer.reply(iq_get("<pong xmlns='urn:xmpp:ping'/>", "u3"))
        replies = peer.elements()
        assert [reply.get("id") for reply in replies] == ["u1", "u2", "u3"]
        for reply in replies:
            assert service_unavailable(reply)
            assert reply.get("to") == "controller@example.net/desk"


def test_iq_without_payload_is_a_bad_request():
    session, peer = online_session()
    peer.reply(b"<iq type='get' id='b1' from='a@example.net/x'/>")
    reply = peer.elements()[0]
    assert reply.get("type") == "error" and reply.find("error").find("bad-request", NS_STANZAS) is not None


def test_result_and_error_are_never_answered():
    for mode in range(SHORT_MODES):
        session, peer = online_session(mode)
        result = b"<iq type='result' id='r1' from='a@example.net/x'/>"
        error = (b"<iq type='error' id='r2' from='a@example.net/x'><error type='cancel'>"
                 b"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        events = peer.reply(result + error)
        assert [event[0] for event in events] == [EVENT_IQ, EVENT_IQ]
        assert events[0][1].get("id") == "r1" and events[1][1].get("id") == "r2"
        assert peer.take() == []


def test_iq_handlers():
    session, peer = online_session()

    def answer(iq):
        reply = Element("iq", {"type": "result"})
        reply.append(Element("reading", {"value": "21.5"}, xmlns="urn:example:sensor"))
        return reply

    def broken(iq):
        raise RuntimeError("sensor offline")

    session.register_iq_handler("urn:example:sensor", answer)
    session.register_iq_handler("urn:example:broken", broken)
    session.register_iq_handler("urn:example:none", lambda iq: None)
    peer.reply(iq_get("<query xmlns='urn:example:sensor'/>", "h1"))
    reply = peer.elements()[0]
    assert reply.get("id") == "h1" and reply.get("to") == "controller@example.net/desk"
    assert reply.find("reading", "urn:example:sensor").get("value") == "21.5"
    events = peer.reply(iq_get("<query xmlns='urn:example:broken'/>", "h2"))
    assert len(events) == 1 and events[0][0] == EVENT_HANDLER_ERROR
    assert events[0][1][0].get("id") == "h2" and isinstance(events[0][1][1], RuntimeError)
    reply = peer.elements()[0]
    assert reply.get("type") == "error" and reply.find("error").find("internal-server-error") is not None
    assert session.online  # a handler's bug does not end the session
    peer.reply(iq_get("<query xmlns='urn:example:none'/>", "h3"))
    assert service_unavailable(peer.elements()[0])


def test_message_and_presence_events():
    body = "<&'\"> caf\u00e9 \u6e29\u5ea6 \U0001f321"
    escaped = "&lt;&amp;&apos;&quot;&gt; caf\u00e9 \u6e29\u5ea6 \U0001f321"
    data = ("<message from='controller@example.net/desk' to='%s' type='chat' id='m1'><body>%s</body></message>"
            "<presence from='controller@example.net/desk'><status>here</status></presence>" % (FULL_JID, escaped)
            ).encode("utf-8")
    for mode in range(MODES):
        session, peer = online_session(mode)
        events = peer.reply(data)
        assert [event[0] for event in events] == [EVENT_MESSAGE, EVENT_PRESENCE]
        assert events[0][1].find_text("body") == body
        assert events[0][1].get("from") == "controller@example.net/desk"
        assert events[1][1].find_text("status") == "here"
        assert peer.take() == []


def test_sending_stanzas():
    session, peer = online_session()
    body = "<&'\"> caf\u00e9"
    message_id = session.send_message("controller@example.net", body)
    session.send_presence(status="21.5 C", show="chat", priority=5)
    iq_id = session.send_iq("get", Element("query", xmlns=NS_DISCO_INFO), to="example.net")
    sent = peer.elements()
    assert [elem.local for elem in sent] == ["message", "presence", "iq"]
    assert sent[0].get("id") == message_id and sent[0].get("type") == "chat"
    assert sent[0].find_text("body") == body and sent[0].get("to") == "controller@example.net"
    assert sent[1].find_text("status") == "21.5 C" and sent[1].find_text("priority") == "5"
    assert sent[2].get("id") == iq_id and sent[2].get("type") == "get"
    raises(ValueError, session.send_iq, "result")


def test_send_before_online_is_a_local_error():
    session = Session(JID, PASSWORD)
    raises(ProtocolError, session.send_message, "a@example.net", "x")
    session.start()
    raises(ProtocolError, session.send_presence)
    raises(ProtocolError, session.tls_established)  # no STARTTLS pending


def test_ids_are_short_and_unique():
    session = Session(JID, PASSWORD)
    other = Session(JID, PASSWORD)
    ids = [session.new_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert max(len(i) for i in ids) <= 9
    assert other.new_id() != ids[0]  # random prefix per session


def test_event_queue_is_capped():
    session, peer = online_session()
    flood = b"<presence from='a@example.net/x'/>" * (MAX_PENDING_EVENTS + 1)
    session.receive_data(flood)
    kinds = []
    while True:
        event = session.next_event()
        if event is None:
            break
        kinds.append(event[0])
    assert kinds[-1] == EVENT_ERROR and len(kinds) == MAX_PENDING_EVENTS + 1
    assert session.data_to_send().find(b"<resource-constraint") >= 0


# -- output: a buffer at a time, backpressure, refusals ------------------------------------------------


def unknown_iqs(count, start=0):
    return b"".join(iq_get("<x xmlns='urn:example:unknown'/>", "f%d" % n) for n in range(start, start + count))


def test_write_into_copies_in_order_and_keeps_the_rest():
    session, peer = online_session()
    session.receive_data(unknown_iqs(3))
    expected = session.output_pending
    buf = bytearray(50)
    pieces = []
    while True:
        count = session.write_into(buf)
        if not count:
            break
        assert count <= len(buf)
        pieces.append(bytes(buf[:count]))
    data = b"".join(pieces)
    assert len(data) == expected and session.output_pending == 0
    assert data.count(b"<service-unavailable") == 3 and 0 < data.find(b'id="f0"') < data.find(b'id="f2"')
    assert session.data_to_send() == b""
    session.receive_data(unknown_iqs(1))
    first = session.data_to_send(10)
    assert len(first) == 10 and first.startswith(b"<iq ") and session.output_pending > 0
    rest = session.data_to_send()
    assert rest.endswith(b"</iq>") and session.output_pending == 0


def test_a_flood_pauses_input_then_refuses_what_cannot_be_sent():
    session, peer = online_session()
    session.receive_data(unknown_iqs(4))
    assert session.accepting_input and 0 < session.output_pending < OUTPUT_PAUSE_BYTES
    session.receive_data(unknown_iqs(10, 4))
    assert not session.accepting_input  # a driver feeds nothing more until the output drains
    # A driver that feeds regardless: no reply past MAX_REPLY_BACKLOG is built; each refusal is counted.
    for start in range(14, 214, 20):
        session.receive_data(unknown_iqs(20, start))
    assert session.online and session.refused_iqs > 0
    assert session.output_pending < MAX_REPLY_BACKLOG + 512
    answered = session.data_to_send().count(b"<service-unavailable")
    assert answered + session.refused_iqs == 214
    assert session.accepting_input
    session.receive_data(unknown_iqs(1, 214))
    assert session.data_to_send().count(b'id="f214"') == 1  # answered again once drained


def test_alive_signs_count_stanzas_and_whitespace_not_bytes():
    session, peer = online_session()
    before = session.alive_signs
    session.receive_data(b"  ")
    assert session.alive_signs == before + 1
    session.receive_data(b"<message from='a@example.net/x'><body>half")
    assert session.alive_signs == before + 1  # a stanza trickled in is not a sign yet
    session.receive_data(b" way</body></message>")
    assert session.alive_signs == before + 2 and session.next_event()[0] == EVENT_MESSAGE


def test_a_stanza_with_more_text_than_the_device_keeps_is_refused_whole():
    session, peer = online_session()
    # At the cap: delivered whole, in pieces as the parser passes them on.
    keep = "k" * MAX_STANZA_TEXT
    session.receive_data(b"<message from='a@example.net/x'><body>" + keep.encode() + b"</body></message>")
    kind, msg = session.next_event()
    assert kind == EVENT_MESSAGE and msg.find_text("body") == keep and session.refused_stanzas == 0
    # One over, in a body or spread over several elements: nothing reaches the application.
    over = ("t" * (MAX_STANZA_TEXT // 2)).encode()
    session.receive_data(b"<message from='a@example.net/x'><body>" + over + b"</body><subject>" + over
                         + b"x</subject></message>")
    session.receive_data(b"<presence from='a@example.net/x'><status>" + over + over + b"x</status></presence>")
    assert session.next_event() is None and session.refused_stanzas == 2
    # An iq get/set is answered: resource-constraint, type wait. The stream stays up.
    session.receive_data(b"<iq type='set' id='big' from='a@example.net/x'><q xmlns='urn:example'>" + over + over
                         + b"x</q></iq>")
    reply = peer.elements()[-1]
    assert reply.get("id") == "big" and reply.get("type") == "error"
    assert reply.find("error").get("type") == "wait" and reply.find("error").children[0].local == "resource-constraint"
    assert session.online and session.refused_stanzas == 3
    # The next stanza is whole again.
    session.receive_data(b"<message from='a@example.net/x'><body>small</body></message>")
    assert session.next_event()[1].find_text("body") == "small"


def test_a_login_element_with_more_text_than_the_device_keeps_ends_the_stream():
    peer = Peer(Session(JID, PASSWORD, tls="none", insecure_plain=True, sasl2=False))
    peer.start()
    events = peer.reply(HEADER + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                        b"<mechanism>" + b"P" * (MAX_STANZA_TEXT + 1) + b"</mechanism></mechanisms></stream:features>")
    peer.take()
    assert [kind for kind, _ in events] == [EVENT_ERROR] and isinstance(events[0][1], ProtocolError)
    assert peer.session.finished and b"resource-constraint" in peer.sent


# -- closing -------------------------------------------------------------------------------------------


def test_close_and_the_server_closes_too():
    session, peer = online_session()
    session.close()
    assert peer.names() == ["/stream"]
    session.close()  # twice is harmless
    assert peer.take() == []
    # Stanzas that cross our stream end are dropped, not answered.
    events = peer.reply(iq_get("<ping xmlns='urn:xmpp:ping'/>") + STREAM_END)
    assert events == [(EVENT_CLOSED, "stream closed by the server")]
    assert peer.take() == [] and session.finished


def test_server_closes_the_stream():
    session, peer = online_session()
    events = peer.reply(STREAM_END)
    assert events[0][0] == EVENT_CLOSED
    assert peer.names() == ["/stream"]  # answered with our own stream end


def test_connection_closed_during_login():
    session = Session(JID, PASSWORD)
    peer = Peer(session)
    peer.start()
    session.receive_data(b"")
    event = session.next_event()
    assert event[0] == EVENT_CLOSED and event[1].find("during starttls") >= 0
    assert session.finished


def test_data_during_tls_handshake_is_refused():
    session = Session(JID, PASSWORD)
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + FEATURES_TLS + PROCEED)
    events = peer.reply(b"\x16\x03\x01")
    assert events[0][0] == EVENT_ERROR


# -- in-band registration (XEP-0077) ----------------------------------------------------------------

REGISTER_FORM = (
    b"<query xmlns='jabber:iq:register'><instructions>Choose a username and password.</instructions>"
    b"<username/><password/>"
    b"<x type='form' xmlns='jabber:x:data'><field type='hidden' var='FORM_TYPE'><value>jabber:iq:register"
    b"</value></field><field type='text-single' var='username'><required/></field></x></query>"
)


def registering(mode=0, fields=None):
    session = Session("newdevice@example.net", "s3cret", tls="direct", registration=Registration(fields))
    peer = Peer(session, mode)
    peer.start()
    register = b"<register xmlns='http://jabber.org/features/iq-register'/>"
    assert peer.reply(HEADER + mechanisms("PLAIN", extra=register)) == []
    request = peer.elements()
    assert len(request) == 1 and request[0].get("type") == "get"
    assert request[0].find("query", "jabber:iq:register") is not None
    return session, peer, request[0].get("id")


def test_registration_creates_the_account():
    for mode in range(MODES):
        session, peer, form_id = registering(mode)
        form = b"<iq type='result' id='" + form_id.encode() + b"'>" + REGISTER_FORM + b"</iq>"
        assert peer.reply(form) == []
        submit = peer.elements()
        assert len(submit) == 1 and submit[0].get("type") == "set"
        query = submit[0].find("query", "jabber:iq:register")
        assert query.find_text("username") == "newdevice" and query.find_text("password") == "s3cret"
        events = peer.reply(("<iq type='result' id='%s'/>" % submit[0].get("id")).encode())
        assert events == [(EVENT_REGISTERED, "newdevice")]
        assert peer.names() == ["/stream"]
        assert peer.sent.find(b"<auth") < 0


def test_registration_conflict():
    session, peer, form_id = registering()
    peer.reply(b"<iq type='result' id='" + form_id.encode() + b"'>" + REGISTER_FORM + b"</iq>")
    submit_id = peer.elements()[0].get("id")
    events = peer.reply(("<iq type='error' id='%s'><error type='cancel'><conflict "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The requested username already exists."
                         "</text></error></iq>" % submit_id).encode())
    assert len(events) == 1 and events[0][0] == EVENT_ERROR
    error = events[0][1]
    assert isinstance(error, RegistrationError) and error.condition == "conflict"
    assert str(error).find("already taken") >= 0 and str(error).find("already exists") >= 0


def test_registration_not_acceptable():
    session, peer, form_id = registering()
    peer.reply(b"<iq type='result' id='" + form_id.encode() + b"'>" + REGISTER_FORM + b"</iq>")
    submit_id = peer.elements()[0].get("id")
    events = peer.reply(("<iq type='error' id='%s'><error type='modify'><not-acceptable "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % submit_id).encode())
    assert events[0][1].condition == "not-acceptable" and str(events[0][1]).find("required field") >= 0


def test_registration_with_a_field_nobody_gave_fails_before_submitting():
    session, peer, form_id = registering()
    form = b"<query xmlns='jabber:iq:register'><username/><password/><email/></query>"
    events = peer.reply(b"<iq type='result' id='" + form_id.encode() + b"'>" + form + b"</iq>")
    assert events[0][0] == EVENT_ERROR and events[0][1].condition == "missing-fields"
    assert str(events[0][1]).find("email") >= 0
    assert peer.sent.find(b"s3cret") < 0


def test_registration_extra_fields_and_data_forms():
    session, peer, form_id = registering(fields={"email": "ops@example.net"})
    form = (b"<query xmlns='jabber:iq:register'><x type='form' xmlns='jabber:x:data'>"
            b"<field type='hidden' var='FORM_TYPE'><value>jabber:iq:register</value></field>"
            b"<field type='text-single' var='username'><required/></field>"
            b"<field type='text-private' var='password'><required/></field>"
            b"<field type='text-single' var='email'/><field type='text-single' var='nick'/></x></query>")
    peer.reply(b"<iq type='result' id='" + form_id.encode() + b"'>" + form + b"</iq>")
    submit = peer.elements()[0].find("query").find("x", "jabber:x:data")
    assert submit.get("type") == "submit"
    values = {}
    for field in submit.find_all("field"):
        values[field.get("var")] = field.find_text("value")
    assert values == {"FORM_TYPE": "jabber:iq:register", "username": "newdevice", "password": "s3cret",
                      "email": "ops@example.net"}


def test_registration_refused_in_the_clear():
    session = Session("newdevice@example.net", "s3cret", tls="none", registration=Registration())
    peer = Peer(session)
    peer.start()
    events = peer.reply(HEADER + mechanisms("PLAIN"))
    assert events[0][0] == EVENT_ERROR
    peer.take()
    assert peer.sent.find(b"s3cret") < 0 and peer.sent.find(b"jabber:iq:register") < 0
