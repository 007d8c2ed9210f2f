"""Tests of XEP-0198 stream management in the session: enable, acks, resumption, fallback, bounds.

xmpp_peer.Peer plays the server. Every exchange runs whole and byte by byte.
"""

from support import raises
from xmpp_peer import (
    FEATURES_BIND,
    FULL_JID,
    HEADER,
    JID,
    PASSWORD,
    SHORT_MODES,
    Peer,
    bind_result,
    mechanisms,
    sasl_element,
)

from xmpp_lite.session import (
    EVENT_CLOSED,
    EVENT_ERROR,
    EVENT_MESSAGE,
    EVENT_ONLINE,
    EVENT_RESUMED,
    ProtocolError,
    QueueFull,
    Session,
)
from xmpp_lite.sm import ACK_REQUEST_EVERY, MAX_UNACKED, NS_SM, StreamManagement, parse_h
from xmpp_lite.stanza import Element

FEATURES_BIND_NO_SM = (
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind></stream:features>"
)
ENABLED = b"<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='300'/>"


def sm_element(name, **attrs):
    text = "".join(" %s='%s'" % (key, attrs[key]) for key in attrs)
    return ("<%s xmlns='urn:xmpp:sm:3'%s/>" % (name, text)).encode()


def logged_in(sm, mode=0):
    """A session with ``sm`` through a plaintext PLAIN login up to <success/>; returns (session, peer, items)."""
    session = Session(JID, PASSWORD, resource="sensor", tls="none", insecure_plain=True, sm=sm)
    peer = Peer(session, mode)
    peer.start()
    peer.reply(HEADER + mechanisms("PLAIN"))
    peer.take()
    peer.reply(sasl_element(b"success"))
    return session, peer, peer.take()


def bound(sm, mode=0, features=FEATURES_BIND, enabled=ENABLED):
    """Logged in and bound; <enable/> answered with ``enabled`` (when not None)."""
    session, peer, items = logged_in(sm, mode)
    bind = [item[1] for item in items if item[0] == "el"][0]
    assert bind.local == "iq"
    peer.reply(HEADER + features + bind_result(bind.get("id")))
    assert session.online
    sent = peer.elements()
    if enabled is not None:
        peer.reply(enabled)
    return session, peer, sent


def message(n):
    return Element("message", {"to": "controller@example.net", "id": "m%d" % n})


def inbound(n):
    return ("<message from='controller@example.net/desk' id='c%d'><body>%d</body></message>" % (n, n)).encode()


def test_enable_goes_out_once_bound_before_any_stanza():
    for mode in range(SHORT_MODES):
        sm = StreamManagement()
        session, peer, sent = bound(sm, mode)
        assert [(elem.local, elem.xmlns) for elem in sent] == [("enable", NS_SM)]
        assert session.login_round_trips == 3  # <enable/> rides on the flight after online
        assert sent[0].get("resume") == "true"
        assert sm.enabled and sm.resumable and sm.id == "sm-1" and sm.jid == FULL_JID


def test_no_enable_when_the_server_does_not_offer_it():
    sm = StreamManagement()
    session, peer, sent = bound(sm, features=FEATURES_BIND_NO_SM, enabled=None)
    assert sent == []
    session.send(message(1))
    assert not sm.counting and sm.unacked == []
    assert [elem.local for elem in peer.elements()] == ["message"]


def test_no_stream_management_without_an_sm():
    session, peer, sent = bound(None, enabled=None)
    assert sent == []
    assert session.request_ack() is False


def test_sent_stanzas_are_kept_until_acked():
    for mode in range(SHORT_MODES):
        sm = StreamManagement()
        session, peer, _ = bound(sm, mode)
        for n in range(3):
            session.send(message(n))
        assert len(sm.unacked) == 3 and sm.unacked[0].find(b"m0") > 0
        assert session.request_ack()
        assert [elem.local for elem in peer.elements()] == ["message"] * 3 + ["r"]
        peer.reply(sm_element("a", h=2))
        assert len(sm.unacked) == 1 and sm.unacked[0].find(b"m2") > 0 and sm.acked == 2
        peer.reply(sm_element("a", h=3))
        assert sm.unacked == [] and session.online


def test_an_ack_request_goes_out_every_few_stanzas():
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    for n in range(2 * ACK_REQUEST_EVERY):
        session.send(message(n))
    names = [elem.local for elem in peer.elements()]
    assert names.count("r") == 2
    assert names.index("r") == ACK_REQUEST_EVERY  # right after the ACK_REQUEST_EVERY-th stanza


def test_requests_from_the_server_are_answered_with_the_handled_count():
    for mode in range(SHORT_MODES):
        sm = StreamManagement()
        session, peer, _ = bound(sm, mode)
        events = peer.reply(inbound(1) + inbound(2) + sm_element("r"))
        assert [event[0] for event in events] == [EVENT_MESSAGE, EVENT_MESSAGE]
        answer = peer.elements()
        assert len(answer) == 1 and answer[0].local == "a" and answer[0].get("h") == "2"
        # An iq request counts too, and its reply is one of our stanzas.
        peer.reply(b"<iq type='get' id='p1' from='example.net'><ping xmlns='urn:xmpp:ping'/></iq>"
                   + sm_element("r"))
        replies = peer.elements()
        assert [elem.local for elem in replies] == ["iq", "a"] and replies[1].get("h") == "3"
        assert len(sm.unacked) == 1


def test_a_held_ack_rides_with_our_next_output():
    for mode in range(SHORT_MODES):
        sm = StreamManagement(hold_acks=True)
        session, peer, _ = bound(sm, mode)
        peer.reply(inbound(1) + sm_element("r"))
        assert peer.elements() == [] and session.ack_owed  # nothing of its own
        session.send(message(1))
        data = session.data_to_send()  # one write: the ack first, then the stanza
        assert data.startswith(b"<a xmlns='urn:xmpp:sm:3' h='1'/><message") and not session.ack_owed
        # Held again, then the driver's delay is over: it goes in a whitespace's place.
        peer.reply(inbound(2) + sm_element("r"))
        session.send_whitespace()
        assert session.data_to_send() == b"<a xmlns='urn:xmpp:sm:3' h='2'/>"
        session.send_whitespace()
        assert session.data_to_send() == b" "
        # With an <r/> of ours, and before our stream end: the server must not think our stanzas lost.
        peer.reply(inbound(3) + sm_element("r"))
        assert session.request_ack()
        assert session.data_to_send() == b"<a xmlns='urn:xmpp:sm:3' h='3'/><r xmlns='urn:xmpp:sm:3'/>"
        peer.reply(inbound(4) + sm_element("r"))
        session.close()
        assert session.data_to_send() == b"<a xmlns='urn:xmpp:sm:3' h='4'/></stream:stream>"


def test_without_hold_acks_the_answer_goes_at_once():
    sm = StreamManagement()
    assert not sm.hold_acks
    session, peer, _ = bound(sm)
    peer.reply(inbound(1) + sm_element("r"))
    assert session.data_to_send() == b"<a xmlns='urn:xmpp:sm:3' h='1'/>" and not session.ack_owed


def test_a_probe_rides_on_the_next_stanza():
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    session.send(message(1))
    assert [elem.local for elem in peer.elements()] == ["message"]
    sm.ask_next = True
    session.send(message(2))
    assert [elem.local for elem in peer.elements()] == ["message", "r"] and not sm.ask_next
    session.send(message(3))
    assert [elem.local for elem in peer.elements()] == ["message"]  # once


def test_acks_are_asked_for_when_half_the_queue_waits():
    assert StreamManagement().ack_request_every == MAX_UNACKED // 2 == ACK_REQUEST_EVERY
    assert StreamManagement(max_unacked=1).ack_request_every == 1
    assert StreamManagement(max_unacked=10, ack_request_every=3).ack_request_every == 3


def test_inbound_before_enabled_is_not_counted():
    sm = StreamManagement()
    session, peer, _ = bound(sm, enabled=None)
    peer.reply(inbound(1))
    peer.reply(ENABLED + inbound(2) + sm_element("r"))
    assert peer.elements()[0].get("h") == "1"


def test_an_ack_for_more_than_was_sent_ends_the_stream():
    for h in ("2", "x", "99999999999"):
        sm = StreamManagement()
        session, peer, _ = bound(sm)
        session.send(message(1))
        peer.take()
        events = peer.reply(sm_element("a", h=h))
        assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], ProtocolError)
        peer.take()
        assert peer.sent.find(b"<undefined-condition") > 0
        assert not sm.resumable  # the stream error ended the server's session too


def test_counters_wrap_at_2_to_the_32():
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    sm.acked = sm.handled = 0xFFFFFFFF
    session.send(message(1))
    session.send(message(2))
    peer.take()
    peer.reply(sm_element("a", h=1))  # 0xFFFFFFFF + 2, modulo 2**32
    assert sm.unacked == [] and sm.acked == 1
    peer.reply(inbound(1) + sm_element("r"))
    assert peer.elements()[0].get("h") == "0"
    assert parse_h(Element("a", {"h": "4294967296"})) is None


def test_queue_full_sends_nothing():
    sm = StreamManagement(max_unacked=4)
    session, peer, _ = bound(sm)
    for n in range(4):
        session.send(message(n))
    before = peer.sent + peer.session.data_to_send()
    raises(QueueFull, session.send, message(4))
    assert len(sm.unacked) == 4 and session.data_to_send() == b""
    assert before.count(b"<message") == 4
    # An ack makes room again.
    session.receive_data(sm_element("a", h=4))
    session.send(message(4))
    assert len(sm.unacked) == 1


def test_a_server_that_never_acks_cannot_grow_the_queue():
    sm = StreamManagement(max_unacked=2)
    session, peer, _ = bound(sm)
    ping = b"<iq type='get' id='p%d' from='example.net'><ping xmlns='urn:xmpp:ping'/></iq>"
    events = []
    for n in range(10):
        events += peer.reply(ping % n)
        if session.finished:
            break
    assert events[-1][0] == EVENT_ERROR and len(sm.unacked) <= 4


def lost_link(sm):
    """An sm with a resumable stream: 3 sent, 1 acked, 2 inbound handled, then the connection dropped."""
    session, peer, _ = bound(sm)
    for n in range(3):
        session.send(message(n))
    peer.take()
    peer.reply(sm_element("a", h=1) + inbound(1) + inbound(2))
    events = peer.reply(b"")
    assert events[-1][0] == EVENT_CLOSED
    assert sm.resumable and len(sm.unacked) == 2 and sm.handled == 2
    return sm


def test_a_lost_connection_is_resumed_and_unacked_stanzas_go_again():
    for mode in range(SHORT_MODES):
        sm = lost_link(StreamManagement())
        sm.queue_offline(b"<message to='controller@example.net' id='off1'/>")
        session, peer, items = logged_in(sm, mode)
        # The resumption replaces the bind request, with our h.
        assert [item[0] for item in items] == ["stream", "el"]
        resume = items[1][1]
        assert resume.local == "resume" and resume.get("h") == "2" and resume.get("previd") == "sm-1"
        # The server got one more of ours before the link died.
        events = peer.reply(HEADER + FEATURES_BIND + sm_element("resumed", h=2, previd="sm-1"))
        assert events == [(EVENT_RESUMED, FULL_JID)]
        assert session.online and session.resumed and session.jid == FULL_JID
        # header, auth, header+resume: as many as header, auth, header+bind (3 unpinned, 2 pinned)
        assert session.login_round_trips == 3
        resent = peer.elements()
        assert [elem.get("id") for elem in resent] == ["m2", "off1"]
        assert len(sm.unacked) == 2
        # Counting goes on from the old stream.
        peer.reply(inbound(3) + sm_element("r"))
        assert peer.elements()[0].get("h") == "3"
        peer.reply(sm_element("a", h=4))
        assert sm.unacked == []


def test_a_refused_resumption_falls_back_to_a_fresh_stream():
    for mode in range(SHORT_MODES):
        sm = lost_link(StreamManagement())
        session, peer, items = logged_in(sm, mode)
        # The server forgot the stream but says it had handled 2 of ours (XEP-0198 1.6).
        failed = (b"<failed xmlns='urn:xmpp:sm:3' h='2'>"
                  b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")
        events = peer.reply(HEADER + FEATURES_BIND + failed)
        assert events == []
        bind = peer.elements()
        assert [elem.local for elem in bind] == ["iq"]
        events = peer.reply(bind_result(bind[0].get("id")))
        assert events == [(EVENT_ONLINE, FULL_JID)] and not session.resumed
        sent = peer.elements()
        assert [elem.local for elem in sent] == ["enable", "message"]
        assert sent[1].get("id") == "m2"
        # The fresh stream counts from zero.
        peer.reply(ENABLED + sm_element("a", h=1))
        assert sm.unacked == [] and sm.handled == 0


def test_offline_stanzas_go_out_on_a_fresh_stream_in_order():
    sm = StreamManagement()
    for n in range(3):
        sm.queue_offline(b"<message id='q%d'/>" % n)
    session, peer, sent = bound(sm)
    assert [elem.local for elem in sent] == ["enable", "message", "message", "message"]
    assert [elem.get("id") for elem in sent[1:]] == ["q0", "q1", "q2"]
    assert len(sm.unacked) == 3
    # Without stream management on the server they are sent and let go.
    sm = StreamManagement()
    sm.queue_offline(b"<message id='q9'/>")
    session, peer, sent = bound(sm, features=FEATURES_BIND_NO_SM, enabled=None)
    assert [elem.get("id") for elem in sent] == ["q9"] and sm.unacked == []


def test_offline_queue_is_bounded():
    sm = StreamManagement(max_unacked=2)
    sm.queue_offline(b"<message/>")
    sm.queue_offline(b"<message/>")
    raises(QueueFull, sm.queue_offline, b"<message/>")
    assert len(sm.unacked) == 2


def test_close_and_stream_errors_end_resumability():
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    session.close()
    assert not sm.resumable
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    peer.reply(b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
    assert not sm.resumable
    # The server's own stream end, too.
    sm = StreamManagement()
    session, peer, _ = bound(sm)
    peer.reply(b"</stream:stream>")
    assert not sm.resumable


def test_enable_refused_means_no_counting():
    sm = StreamManagement()
    session, peer, _ = bound(sm, enabled=b"<failed xmlns='urn:xmpp:sm:3'/>")
    assert not sm.counting and not sm.resumable and session.online
    session.send(message(1))
    assert sm.unacked == []


def test_enabled_without_resume_is_not_resumable():
    sm = StreamManagement()
    bound(sm, enabled=b"<enabled xmlns='urn:xmpp:sm:3'/>")
    assert sm.enabled and not sm.resumable


def test_unasked_stream_management_is_an_error():
    session, peer, _ = bound(None, enabled=None)
    events = peer.reply(ENABLED)
    assert events[-1][0] == EVENT_ERROR


def test_a_resumed_answer_for_another_stream_is_an_error():
    sm = lost_link(StreamManagement())
    session, peer, items = logged_in(sm)
    events = peer.reply(HEADER + FEATURES_BIND + sm_element("resumed", h=1, previd="other"))
    assert events[-1][0] == EVENT_ERROR
