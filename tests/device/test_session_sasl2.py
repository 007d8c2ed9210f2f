"""Tests of SASL2 logins in the session: XEP-0388 with XEP-0386 Bind2, against a scripted server.

No stream restart: what follows <success/> (a bind request, a <resume/>, the
initial presence) goes right behind the client's last SASL message. Every
transcript runs whole and byte by byte (and in random chunks where cheap).
"""

from support import raises
from test_sm import ENABLED, inbound, lost_link, message, sm_element
from xmpp_peer import (
    FULL_JID,
    HEADER,
    JID,
    MODES,
    PASSWORD,
    SCRAM_CLIENT_FINAL,
    SCRAM_CLIENT_FIRST,
    SCRAM_NONCE,
    SCRAM_SERVER_FINAL,
    SCRAM_SERVER_FIRST,
    SHORT_MODES,
    Peer,
    bind_result,
    mechanism_children,
    sasl_element,
)

from xmpp_lite import sasl
from xmpp_lite.sasl import NS_BIND2, NS_SASL, NS_SASL2, AuthError
from xmpp_lite.session import (
    EVENT_ERROR,
    EVENT_ONLINE,
    EVENT_RESUMED,
    ProtocolError,
    Session,
)
from xmpp_lite.sm import NS_SM, StreamManagement
from xmpp_lite.stanza import presence

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

# What Prosody with mod_sasl2 and mod_sasl2_bind2 offers (trimmed), the classic offer beside it.
BIND2_INLINE = (b"<inline><bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:sm:3'/>"
                b"</inline></bind></inline>")
# The features Prosody sends once more after a SASL2 success.
FEATURES_LOGGED_IN = (
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>"
    b"<sm xmlns='urn:xmpp:sm:3'><optional/></sm></stream:features>"
)
FEATURES_LOGGED_IN_NO_SM = b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
STATUS = "21.5 C"


def sasl2_features(*names, bind2=True):
    inner = mechanism_children(*names)
    classic = b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + inner + b"</mechanisms>"
    return (b"<stream:features><authentication xmlns='urn:xmpp:sasl:2'>" + inner
            + (BIND2_INLINE if bind2 else b"") + b"</authentication>" + classic + b"</stream:features>")


def sasl2_challenge(data):
    return b"<challenge xmlns='urn:xmpp:sasl:2'>" + sasl.b64encode(data).encode() + b"</challenge>"


def sasl2_success(additional=SCRAM_SERVER_FINAL, jid=FULL_JID, bound=True, extra=b""):
    out = b"<success xmlns='urn:xmpp:sasl:2'>"
    if additional is not None:
        out += b"<additional-data>" + sasl.b64encode(additional).encode() + b"</additional-data>"
    if bound:
        out += b"<bound xmlns='urn:xmpp:bind:0'/>"
    if jid is not None:
        out += b"<authorization-identifier>" + jid.encode() + b"</authorization-identifier>"
    return out + extra + b"</success>"


def scram_session(mode=0, cache=None, **options):
    """A direct-TLS session that has sent its <authenticate/>; returns (session, peer, that element)."""
    options.setdefault("tls", "direct")
    session = Session(JID, PASSWORD, client_nonce=SCRAM_NONCE, sasl_cache=cache, **options)
    peer = Peer(session, mode)
    items = peer.start()
    assert [item[0] for item in items] == ["stream"]  # nothing pinned: the offer decides
    assert peer.reply(HEADER + sasl2_features("SCRAM-SHA-1", "PLAIN")) == []
    sent = peer.elements()
    assert len(sent) == 1
    return session, peer, sent[0]


def test_scram_with_bind2_and_the_initial_presence_in_every_chunking():
    cache = {}
    for mode in range(MODES):
        session, peer, auth = scram_session(mode, cache, presence=presence(status=STATUS))
        assert (auth.local, auth.xmlns, auth.get("mechanism")) == ("authenticate", NS_SASL2, "SCRAM-SHA-1")
        assert sasl.b64decode(auth.find_text("initial-response")) == SCRAM_CLIENT_FIRST
        assert auth.find("bind", NS_BIND2) is not None and auth.find("bind", NS_BIND2).children == []
        assert session.sasl2_used and session.mechanism == "SCRAM-SHA-1"
        assert peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST)) == []
        # The last SASL message, and the presence right behind it: the server reads it once bound.
        items = peer.take()
        assert [item[0] for item in items] == ["el", "el"]  # no stream restart
        response, announced = items[0][1], items[1][1]
        assert (response.local, response.xmlns) == ("response", NS_SASL2)
        assert sasl.b64decode(response.text) == SCRAM_CLIENT_FINAL
        assert announced.local == "presence" and announced.find_text("status") == STATUS
        assert session.presence_sent and session.login_round_trips == 2
        events = peer.reply(sasl2_success() + FEATURES_LOGGED_IN)
        assert events == [(EVENT_ONLINE, FULL_JID)]
        assert session.online and session.jid == FULL_JID
        assert peer.take() == []  # no bind, no session, no second presence
        assert session.flights == 3
    assert "SCRAM-SHA-1,QSXCR+Q6sek8bf92,4096" in cache


def test_the_features_after_success_are_optional():
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    assert peer.reply(sasl2_success()) == [(EVENT_ONLINE, FULL_JID)]
    session.send(message(1))
    assert [elem.local for elem in peer.elements()] == ["message"]
    peer.reply(FEATURES_LOGGED_IN_NO_SM)  # later, or never: both are fine
    assert session.online


def test_features_twice_after_success_are_refused():
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    peer.reply(sasl2_success() + FEATURES_LOGGED_IN_NO_SM)
    events = peer.reply(FEATURES_LOGGED_IN_NO_SM)
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], ProtocolError)


def test_plain_with_bind2_needs_one_round_trip_after_the_features():
    for mode in range(SHORT_MODES):
        session = Session(JID, PASSWORD, tls="none", insecure_plain=True, presence=presence())
        peer = Peer(session, mode)
        peer.start()
        peer.reply(HEADER + sasl2_features("PLAIN"))
        sent = peer.elements()
        assert [elem.local for elem in sent] == ["authenticate", "presence"]
        assert sasl.b64decode(sent[0].find_text("initial-response")) == b"\0user\0pencil"
        assert session.login_round_trips == 1
        assert peer.reply(sasl2_success(additional=None)) == [(EVENT_ONLINE, FULL_JID)]


def test_plain_is_not_chosen_in_the_clear_without_insecure_plain():
    session = Session(JID, PASSWORD, tls="none")
    peer = Peer(session)
    peer.start()
    events = peer.reply(HEADER + sasl2_features("PLAIN"))
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], AuthError)
    assert b"authenticate" not in peer.sent and b"pencil" not in peer.sent


def test_a_chosen_resource_is_bound_by_iq_right_behind_the_response():
    for mode in range(SHORT_MODES):
        session, peer, auth = scram_session(mode, resource="sensor", presence=presence(status=STATUS))
        assert auth.find("bind", NS_BIND2) is None  # Bind2 picks its own resource name
        peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
        sent = peer.elements()
        assert [elem.local for elem in sent] == ["response", "iq", "presence"]
        bind = sent[1].find("bind", NS_BIND)
        assert bind is not None and bind.find_text("resource") == "sensor"
        # Prosody: the bare JID as the identifier, the features, then the bind result.
        events = peer.reply(sasl2_success(jid=JID, bound=False) + FEATURES_LOGGED_IN
                            + bind_result(sent[1].get("id")))
        assert events == [(EVENT_ONLINE, FULL_JID)]
        assert peer.take() == []


def test_without_bind2_on_offer_the_bind_request_goes_behind_the_response():
    session = Session(JID, PASSWORD, tls="direct", client_nonce=SCRAM_NONCE)
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + sasl2_features("SCRAM-SHA-1", bind2=False))
    assert peer.elements()[0].find("bind", NS_BIND2) is None
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    sent = peer.elements()
    assert [elem.local for elem in sent] == ["response", "iq"]  # no presence was given
    events = peer.reply(sasl2_success(jid=JID, bound=False) + bind_result(sent[1].get("id")))
    assert events == [(EVENT_ONLINE, FULL_JID)]


def test_stream_management_starts_with_the_features_after_success():
    for mode in range(SHORT_MODES):
        sm = StreamManagement()
        sm.queue_offline(b"<message to='controller@example.net' id='off1'/>")
        session, peer, _ = scram_session(mode, sm=sm)
        peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
        peer.take()
        assert peer.reply(sasl2_success()) == [(EVENT_ONLINE, FULL_JID)]
        assert peer.take() == [] and not sm.counting  # the server has not said it does XEP-0198 yet
        peer.reply(FEATURES_LOGGED_IN)
        sent = peer.elements()
        assert [(elem.local, elem.xmlns) for elem in sent] == [("enable", NS_SM), ("message", "jabber:client")]
        assert sent[1].get("id") == "off1"  # the stanza kept offline goes once XEP-0198 counts
        peer.reply(ENABLED)
        assert sm.enabled and sm.resumable and sm.jid == FULL_JID and len(sm.unacked) == 1
        peer.reply(sm_element("a", h=1) + inbound(1))
        assert sm.unacked == [] and sm.handled == 1


def test_without_stream_management_on_offer_kept_stanzas_go_uncounted():
    sm = StreamManagement()
    sm.queue_offline(b"<message to='controller@example.net' id='off1'/>")
    session, peer, _ = scram_session(sm=sm)
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    peer.reply(sasl2_success() + FEATURES_LOGGED_IN_NO_SM)
    assert [elem.get("id") for elem in peer.elements()] == ["off1"]
    assert not sm.counting and sm.unacked == []


def test_a_resumption_goes_behind_the_response_and_keeps_the_old_presence():
    for mode in range(SHORT_MODES):
        sm = lost_link(StreamManagement())
        session, peer, auth = scram_session(mode, sm=sm, presence=presence(status=STATUS))
        assert auth.find("bind", NS_BIND2) is None  # the old resource comes back
        peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
        sent = peer.elements()
        assert [elem.local for elem in sent] == ["response", "resume"]
        assert sent[1].get("previd") == "sm-1" and sent[1].get("h") == "2"
        events = peer.reply(sasl2_success(jid=JID, bound=False) + FEATURES_LOGGED_IN
                            + sm_element("resumed", previd="sm-1", h=1))
        assert events == [(EVENT_RESUMED, FULL_JID)]
        assert [elem.get("id") for elem in peer.elements()] == ["m1", "m2"]  # unacked, again, in order
        assert not session.presence_sent


def test_a_refused_resumption_binds_then_announces():
    sm = lost_link(StreamManagement())
    session, peer, _ = scram_session(sm=sm, presence=presence(status=STATUS))
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    peer.reply(sasl2_success(jid=JID, bound=False) + FEATURES_LOGGED_IN
               + sm_element("failed", h=1))  # as many as the old stream had acked
    bind = peer.elements()
    assert [elem.local for elem in bind] == ["iq"]
    peer.reply(bind_result(bind[0].get("id")))
    sent = peer.elements()
    assert [elem.local for elem in sent] == ["enable", "message", "message", "presence"]
    assert [elem.get("id") for elem in sent[1:3]] == ["m1", "m2"]  # not acked by the failed's h
    assert session.presence_sent


def test_failure_is_one_auth_error():
    for mode in range(SHORT_MODES):
        session, peer, _ = scram_session(mode)
        peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
        peer.take()
        events = peer.reply(b"<failure xmlns='urn:xmpp:sasl:2'><not-authorized "
                            b"xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>wrong</text></failure>")
        assert len(events) == 1 and events[0][0] == EVENT_ERROR
        assert isinstance(events[0][1], AuthError) and events[0][1].condition == "not-authorized"
        assert session.finished and peer.sent.count(b"<authenticate") == 1


def test_a_wrong_server_signature_is_an_auth_error():
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    events = peer.reply(sasl2_success(additional=b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
    assert events[-1][0] == EVENT_ERROR and events[-1][1].condition == sasl.SERVER_SIGNATURE_MISMATCH
    assert not session.online


def test_success_without_the_server_signature_is_an_auth_error():
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    events = peer.reply(sasl2_success(additional=None))
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], AuthError)


def test_tasks_are_refused():
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    events = peer.reply(b"<continue xmlns='urn:xmpp:sasl:2'><tasks><task>HOTP</task></tasks></continue>")
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], AuthError)


def test_success_that_binds_nothing_or_names_another_domain_is_refused():
    for success in (sasl2_success(bound=False), sasl2_success(jid="user@example.org/x"),
                    sasl2_success(jid=JID), sasl2_success(bound=False, extra=(
                        b"<failed xmlns='urn:xmpp:bind:0'><error type='cancel'>"
                        b"<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></failed>"))):
        session, peer, _ = scram_session()
        peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
        peer.take()
        events = peer.reply(success)
        assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], ProtocolError)
        assert not session.online


def test_classic_sasl_answers_in_a_sasl2_login_are_refused():
    session, peer, _ = scram_session()
    events = peer.reply(sasl_element(b"challenge", SCRAM_SERVER_FIRST))
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], ProtocolError)
    peer.take()
    assert b"unsupported-stanza-type" in peer.sent


def test_sasl2_answers_in_a_classic_login_are_refused():
    session = Session(JID, PASSWORD, tls="direct", client_nonce=SCRAM_NONCE, sasl2=False)
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + sasl2_features("SCRAM-SHA-1"))
    auth = peer.elements()[0]
    assert (auth.local, auth.xmlns) == ("auth", NS_SASL)  # sasl2=False: the classic offer
    events = peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    assert events[-1][0] == EVENT_ERROR and isinstance(events[-1][1], ProtocolError)


def test_presence_before_online_is_still_a_local_error():
    session, peer, _ = scram_session()
    raises(ProtocolError, session.send_presence, status=STATUS)


def test_a_sasl2_login_never_loads_the_bind_code():
    # A SASL2 login goes online in xmpp_lite.login, bound by Bind2 or by the bind request behind its
    # last message: xmpp_lite.bind stays out of the heap. A classic login loads it with the login.
    import sys

    from xmpp_lite import unload

    unload("xmpp_lite.bind")
    session, peer, _ = scram_session()
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    peer.take()
    assert peer.reply(sasl2_success() + FEATURES_LOGGED_IN) == [(EVENT_ONLINE, FULL_JID)]
    assert session.online and "xmpp_lite.bind" not in sys.modules
    session, peer, _ = scram_session(resource="sensor", sm=StreamManagement())  # a bind request: Bind2 cannot choose it
    peer.reply(sasl2_challenge(SCRAM_SERVER_FIRST))
    sent = peer.elements()
    assert [elem.local for elem in sent] == ["response", "iq"]
    events = peer.reply(sasl2_success(jid=JID, bound=False) + FEATURES_LOGGED_IN + bind_result(sent[1].get("id")))
    assert events == [(EVENT_ONLINE, FULL_JID)]
    assert [elem.local for elem in peer.elements()] == ["enable"]  # XEP-0198, offered by the features
    assert "xmpp_lite.bind" not in sys.modules
    Session(JID, PASSWORD, tls="direct", sasl2=False)
    assert "xmpp_lite.bind" in sys.modules
