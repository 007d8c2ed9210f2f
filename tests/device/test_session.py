"""Tests of xmpp_lite.session: login transcripts against a scripted server.

Each transcript runs in the chunkings of support.chunkings (the server's
bytes whole, byte by byte, in random pieces) and the session must behave the
same in all. xmpp_peer.Peer plays the server. Stanzas, iq answers, closing
and registration are in test_session_online.py.
"""

from support import raises
from xmpp_peer import (
    FEATURES_BIND,
    FEATURES_BIND_SESSION_REQUIRED,
    FEATURES_GLOOX,
    FEATURES_TLS,
    FULL_JID,
    HEADER,
    JID,
    MODES,
    PASSWORD,
    PROCEED,
    SCRAM_CLIENT_FINAL,
    SCRAM_CLIENT_FIRST,
    SCRAM_NONCE,
    SCRAM_SERVER_FINAL,
    SCRAM_SERVER_FIRST,
    SHORT_MODES,
    STREAM_END,
    Peer,
    bind_result,
    mechanisms,
    online_session,
    sasl_element,
    stream_error,
)

from xmpp_lite import sasl
from xmpp_lite.parser import XMLError
from xmpp_lite.sasl import NS_SASL, AuthError
from xmpp_lite.session import (
    EVENT_ERROR,
    EVENT_ONLINE,
    EVENT_SEE_OTHER_HOST,
    EVENT_STARTTLS,
    ProtocolError,
    Session,
    StreamError,
)
from xmpp_lite.stream import split_jid
from xmpp_lite.streamerror import split_host_port

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"


# -- login transcripts ------------------------------------------------------------------------------


def test_starttls_scram_sha1_bind_in_every_chunking():
    cache = {}  # PBKDF2 once, not once per chunking
    for mode in range(MODES):
        session = Session(JID, PASSWORD, sasl_cache=cache, client_nonce=SCRAM_NONCE)
        peer = Peer(session, mode)
        items = peer.start()
        assert [item[0] for item in items] == ["stream", "el"]
        assert items[0][1]["to"] == "example.net" and "from" not in items[0][1]  # no name in the clear
        assert items[1][1].local == "starttls"
        assert peer.reply(HEADER + FEATURES_TLS + PROCEED) == [(EVENT_STARTTLS, None)]
        assert peer.take() == []  # nothing until the transport is TLS
        session.tls_established()
        items = peer.take()
        assert [item[0] for item in items] == ["stream"]
        assert items[0][1]["from"] == JID
        assert peer.reply(HEADER + mechanisms("SCRAM-SHA-1", "PLAIN")) == []
        auth = peer.elements()
        assert len(auth) == 1 and auth[0].local == "auth" and auth[0].xmlns == NS_SASL
        assert auth[0].get("mechanism") == "SCRAM-SHA-1"
        assert sasl.b64decode(auth[0].text) == SCRAM_CLIENT_FIRST
        peer.reply(sasl_element(b"challenge", SCRAM_SERVER_FIRST))
        response = peer.elements()
        assert response[0].local == "response" and sasl.b64decode(response[0].text) == SCRAM_CLIENT_FINAL
        peer.reply(sasl_element(b"success", SCRAM_SERVER_FINAL))
        # Pipelined: the new header and the bind request without waiting for the features.
        items = peer.take()
        assert [item[0] for item in items] == ["stream", "el"]
        bind = items[1][1]
        assert bind.local == "iq" and bind.get("type") == "set"
        assert bind.find("bind", NS_BIND) is not None and bind.find("bind").children == []
        assert peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id"))) == [(EVENT_ONLINE, FULL_JID)]
        assert session.online and session.jid == FULL_JID and session.mechanism == "SCRAM-SHA-1"
        assert peer.take() == []  # session <optional/>: no session request
        assert session.flights == 5
        assert peer.sent.count(b"<auth") == 1
    assert "SCRAM-SHA-1,QSXCR+Q6sek8bf92,4096" in cache


def test_scram_wrong_server_signature_is_one_auth_error():
    session = Session(JID, PASSWORD, tls="direct", client_nonce=SCRAM_NONCE)
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + mechanisms("SCRAM-SHA-1"))
    peer.take()
    peer.reply(sasl_element(b"challenge", SCRAM_SERVER_FIRST))
    peer.take()
    events = peer.reply(sasl_element(b"success", b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
    assert len(events) == 1 and events[0][0] == EVENT_ERROR
    assert isinstance(events[0][1], AuthError)
    assert events[0][1].condition == sasl.SERVER_SIGNATURE_MISMATCH
    assert peer.names() == ["/stream"]  # no bind: the server did not prove itself
    assert session.finished


def test_plain_on_plaintext_with_insecure_plain_in_every_chunking():
    for mode in range(MODES):
        session = Session(JID + "/ignored", PASSWORD, resource="sensor", tls="none", insecure_plain=True)
        peer = Peer(session, mode)
        assert peer.start()[0][0] == "stream"
        peer.reply(HEADER + mechanisms("PLAIN"))
        auth = peer.elements()[0]
        assert auth.get("mechanism") == "PLAIN" and sasl.b64decode(auth.text) == b"\0user\0pencil"
        peer.reply(sasl_element(b"success"))
        items = peer.take()
        assert items[0][0] == "stream" and "from" not in items[0][1]
        bind = items[1][1]
        assert bind.find("bind").find_text("resource") == "sensor"
        assert peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id"))) == [(EVENT_ONLINE, FULL_JID)]


def test_plain_refused_on_plaintext_without_insecure_plain():
    for mode in range(SHORT_MODES):
        session = Session(JID, PASSWORD, tls="none")
        peer = Peer(session, mode)
        peer.start()
        events = peer.reply(HEADER + mechanisms("PLAIN"))
        assert len(events) == 1 and events[0][0] == EVENT_ERROR
        assert isinstance(events[0][1], AuthError) and events[0][1].condition == sasl.INVALID_MECHANISM
        peer.take()
        assert peer.sent.find(b"<auth") < 0 and peer.sent.find(b"pencil") < 0
        assert peer.sent.endswith(STREAM_END)


def test_stripped_starttls_is_refused_before_any_credential():
    for mode in range(MODES):
        session = Session(JID, PASSWORD, insecure_plain=True)  # even with PLAIN allowed
        peer = Peer(session, mode)
        peer.start()
        events = peer.reply(HEADER + mechanisms("SCRAM-SHA-1", "PLAIN"))
        assert len(events) == 1 and events[0][0] == EVENT_ERROR
        assert isinstance(events[0][1], ProtocolError) and str(events[0][1]).find("STARTTLS") >= 0
        peer.take()
        assert peer.sent.find(b"<auth") < 0 and peer.sent.find(b"<response") < 0
        assert peer.sent.endswith(STREAM_END)
        assert session.finished
        # A later <proceed/> (or anything) changes nothing.
        assert peer.reply(PROCEED + sasl_element(b"success")) == []


def test_starttls_failure_from_the_server():
    session = Session(JID, PASSWORD)
    peer = Peer(session)
    peer.start()
    events = peer.reply(HEADER + FEATURES_TLS + b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)


def test_tls_none_against_a_server_that_requires_tls():
    session = Session(JID, PASSWORD, tls="none", insecure_plain=True)
    peer = Peer(session)
    peer.start()
    features = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
                b"</mechanisms></stream:features>")
    events = peer.reply(HEADER + features)
    assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)
    peer.take()
    assert peer.sent.find(b"<auth") < 0


def test_sasl_failure_is_one_auth_error_and_no_retry():
    for mode in range(MODES):
        session = Session(JID, PASSWORD, tls="direct")
        peer = Peer(session, mode)
        peer.start()
        peer.reply(HEADER + mechanisms("PLAIN"))
        peer.take()
        failure = (b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"
                   b"<text>Invalid username or password</text></failure>")
        events = peer.reply(failure)
        assert len(events) == 1 and events[0][0] == EVENT_ERROR
        error = events[0][1]
        assert isinstance(error, AuthError) and error.condition == "not-authorized"
        assert error.text == "Invalid username or password"
        assert peer.names() == ["/stream"]
        # The server may go on talking; the session is over and says nothing more.
        assert peer.reply(failure + HEADER) == []
        assert peer.sent.count(b"<auth") == 1


def test_legacy_session_required_then_online():
    for mode in range(MODES):
        session = Session(JID, PASSWORD, resource="sensor", tls="direct")
        peer = Peer(session, mode)
        peer.start()
        peer.reply(HEADER + mechanisms("PLAIN"))
        peer.take()
        peer.reply(sasl_element(b"success"))
        bind = peer.elements()[0]
        assert peer.reply(HEADER + FEATURES_BIND_SESSION_REQUIRED + bind_result(bind.get("id"))) == []
        request = peer.elements()
        assert len(request) == 1 and request[0].get("type") == "set"
        assert request[0].find("session", NS_SESSION) is not None
        result = ("<iq type='result' id='%s'/>" % request[0].get("id")).encode()
        assert peer.reply(result) == [(EVENT_ONLINE, FULL_JID)]
        assert session.flights == 4


def test_legacy_session_optional_is_skipped():
    session, peer = online_session()
    assert peer.sent.find(b"xmpp-session") < 0


def test_gloox_style_features_choose_plain_over_tls():
    for mode in range(MODES):
        session = Session(JID, PASSWORD)
        peer = Peer(session, mode)
        peer.start()
        peer.reply(HEADER + FEATURES_TLS + PROCEED)
        session.tls_established()
        peer.take()
        assert peer.reply(HEADER + FEATURES_GLOOX) == []
        auth = peer.elements()
        assert len(auth) == 1 and auth[0].get("mechanism") == "PLAIN"
        assert sasl.b64decode(auth[0].text) == b"\0user\0pencil"


def test_bind_error_ends_the_session():
    session = Session(JID, PASSWORD, tls="direct")
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + mechanisms("PLAIN"))
    peer.take()
    peer.reply(sasl_element(b"success"))
    bind = peer.elements()[0]
    error = ("<iq type='error' id='%s'><error type='cancel'><not-allowed "
             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % bind.get("id")).encode()
    events = peer.reply(HEADER + FEATURES_BIND + error)
    assert events[0][0] == EVENT_ERROR and str(events[0][1]).find("not-allowed") >= 0


def test_features_without_bind_after_auth():
    session = Session(JID, PASSWORD, tls="direct")
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + mechanisms("PLAIN"))
    peer.take()
    peer.reply(sasl_element(b"success"))
    peer.take()
    events = peer.reply(HEADER + b"<stream:features/>")
    assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)


# -- round trips --------------------------------------------------------------------------------------


def test_plaintext_login_round_trips():
    # Pinned PLAIN on plaintext (allowed by insecure_plain): auth goes with the
    # first header, bind with the second: two round trips to online.
    session = Session(JID, PASSWORD, tls="none", insecure_plain=True, mechanisms=("PLAIN",))
    peer = Peer(session)
    items = peer.start()
    assert [item[0] for item in items] == ["stream", "el"] and items[1][1].local == "auth"
    first = peer.reply(HEADER + mechanisms("SCRAM-SHA-1", "PLAIN") + sasl_element(b"success"))
    assert first == []
    bind = peer.elements()[0]
    assert peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id"))) == [(EVENT_ONLINE, FULL_JID)]
    assert session.flights == 2
    # No XML declaration (RFC 6120 11.5: SHOULD); the bind request's id is one character.
    assert peer.sent.startswith(b"<stream:stream ") and peer.sent.count(b"<?xml") == 0
    assert peer.sent.count(b"<stream:stream ") == 2 and bind.get("id") == "b"
    # Without pinning, the strongest offered mechanism (SCRAM) costs two more.
    session = Session(JID, PASSWORD, tls="none", insecure_plain=True, client_nonce=SCRAM_NONCE)
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + mechanisms("SCRAM-SHA-1", "PLAIN"))
    peer.take()
    peer.reply(sasl_element(b"challenge", SCRAM_SERVER_FIRST))
    peer.take()
    peer.reply(sasl_element(b"success", SCRAM_SERVER_FINAL))
    bind = peer.elements()[0]
    assert peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id")))[0][0] == EVENT_ONLINE
    assert session.flights == 4


def test_pinned_scram_is_pipelined_even_in_the_clear():
    session = Session(JID, PASSWORD, tls="none", mechanisms=("SCRAM-SHA-1",), client_nonce=SCRAM_NONCE)
    peer = Peer(session)
    items = peer.start()
    assert items[1][1].get("mechanism") == "SCRAM-SHA-1"
    assert sasl.b64decode(items[1][1].text) == SCRAM_CLIENT_FIRST  # no secret in it


def test_pinned_plain_is_not_pipelined_in_the_clear_without_insecure_plain():
    session = Session(JID, PASSWORD, tls="none", mechanisms=("PLAIN",))
    peer = Peer(session)
    assert [item[0] for item in peer.start()] == ["stream"]
    events = peer.reply(HEADER + mechanisms("PLAIN"))
    assert events[0][0] == EVENT_ERROR and events[0][1].condition == sasl.INVALID_MECHANISM
    peer.take()
    assert peer.sent.find(b"<auth") < 0


def test_pinned_mechanism_not_offered_is_one_auth_error():
    session = Session(JID, PASSWORD, tls="direct", mechanisms=("PLAIN",))
    peer = Peer(session)
    peer.start()
    assert peer.reply(HEADER + mechanisms("SCRAM-SHA-1")) == []
    failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>"
    events = peer.reply(failure)
    assert len(events) == 1 and events[0][1].condition == "invalid-mechanism"


# -- stream errors ---------------------------------------------------------------------------------


def test_stream_error():
    for mode in range(MODES):
        session = Session(JID, PASSWORD)
        peer = Peer(session, mode)
        peer.start()
        events = peer.reply(HEADER + stream_error("host-unknown", "no such host"))
        assert len(events) == 1 and events[0][0] == EVENT_ERROR
        error = events[0][1]
        assert isinstance(error, StreamError)
        assert error.condition == "host-unknown" and error.text == "no such host"
        assert str(error) == "host-unknown: no such host"
        assert peer.names() == ["/stream"]


def test_stream_error_while_online():
    session, peer = online_session()
    events = peer.reply(stream_error("conflict", "replaced by a new connection"))
    assert events[0][0] == EVENT_ERROR and events[0][1].condition == "conflict"
    assert session.finished


def test_authentication_waits_for_the_end_of_the_chunk_and_not_after_a_stream_error():
    # The mechanism is made once the features are freed (the end of the server's chunk), unless the
    # session ended in between: nothing about the account goes out then. (Fed byte by byte, the
    # features end a chunk of their own, and the <auth/> goes before the stream error arrives.)
    session = Session(JID, PASSWORD, tls="none", insecure_plain=True)
    peer = Peer(session)
    peer.start()
    events = peer.reply(HEADER + mechanisms("PLAIN") + stream_error("conflict"))
    assert [event[0] for event in events] == [EVENT_ERROR] and events[0][1].condition == "conflict"
    assert peer.names() == ["/stream"] and session.mechanism is None


def test_see_other_host():
    for mode in range(MODES):
        session = Session(JID, PASSWORD)
        peer = Peer(session, mode)
        peer.start()
        events = peer.reply(HEADER + stream_error("see-other-host", content="other.example.net:5223"))
        assert events == [(EVENT_SEE_OTHER_HOST, ("other.example.net", 5223))]
        assert session.finished
        assert peer.take()[-1][0] == "/stream"


def test_split_host_port():
    assert split_host_port("example.net") == ("example.net", None)
    assert split_host_port(" example.net:5223 ") == ("example.net", 5223)
    assert split_host_port("[2001:db8::1]:5222") == ("2001:db8::1", 5222)
    assert split_host_port("[2001:db8::1]") == ("2001:db8::1", None)
    assert split_host_port("2001:db8::1") == ("2001:db8::1", None)
    assert split_host_port("example.net:99999") == ("example.net", None)
    assert split_host_port("example.net:x") == ("example.net", None)


def test_split_jid():
    assert split_jid("User@Example.NET/res/x") == ("User", "example.net", "res/x")
    assert split_jid("example.net") == ("", "example.net", "")
    raises(ValueError, Session, "example.net", "pw")
    raises(ValueError, Session, JID, "pw", tls="sometimes")


def test_not_well_formed_input_gets_a_stream_error():
    for mode in range(SHORT_MODES):
        session, peer = online_session(mode)
        events = peer.reply(b"<message><body>x</message>")
        assert len(events) == 1 and isinstance(events[0][1], XMLError)
        peer.take()
        assert peer.sent.find(b"<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") >= 0
        assert peer.sent.endswith(STREAM_END)
        assert peer.reply(b"<message/>") == []


def test_forbidden_xml_gets_restricted_xml():
    session, peer = online_session()
    events = peer.reply(b"<!-- a comment -->")
    assert events[0][0] == EVENT_ERROR
    peer.take()
    assert peer.sent.find(b"<restricted-xml") >= 0


def test_unexpected_element_gets_unsupported_stanza_type():
    session, peer = online_session()
    events = peer.reply(b"<foo xmlns='urn:example:foo'/>")
    assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)
    peer.take()
    assert peer.sent.find(b"<unsupported-stanza-type") >= 0


def test_not_a_jabber_client_stream():
    session = Session(JID, PASSWORD)
    peer = Peer(session)
    peer.start()
    events = peer.reply(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
                        b" version='1.0'>")
    assert events[0][0] == EVENT_ERROR
    peer.take()
    assert peer.sent.find(b"<invalid-namespace") >= 0


def test_pre_xmpp_1_server_is_refused():
    session = Session(JID, PASSWORD)
    peer = Peer(session)
    peer.start()
    events = peer.reply(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    peer.take()
    assert events[0][0] == EVENT_ERROR and peer.sent.find(b"<unsupported-version") >= 0


def test_the_header_after_the_sasl_restart_is_checked_as_well():
    # After <success/> the bind half of the login reads the new header: the same checks as the first.
    for header, condition in ((b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
                               b" version='1.0'>", b"<invalid-namespace"),
                              (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
                               b" version='0.9'>", b"<unsupported-version")):
        session = Session(JID, PASSWORD, tls="direct", sasl2=False)
        peer = Peer(session)
        peer.start()
        peer.reply(HEADER + mechanisms("PLAIN"))
        peer.take()
        peer.reply(sasl_element(b"success"))
        assert session.state == "bind"
        peer.take()
        events = peer.reply(header)
        assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)
        peer.take()
        assert peer.sent.find(condition) >= 0, peer.sent


def test_data_between_success_and_restart_is_refused():
    session = Session(JID, PASSWORD, tls="direct")
    peer = Peer(session)
    peer.start()
    peer.reply(HEADER + mechanisms("PLAIN"))
    peer.take()
    events = peer.reply(sasl_element(b"success") + b" <message/>")
    assert events[0][0] == EVENT_ERROR and isinstance(events[0][1], ProtocolError)


def test_the_login_code_is_unloaded_once_online_or_over_and_loads_again():
    # MicroPython unloads xmpp_lite.login, xmpp_lite.sasl and xmpp_lite.bind once a session is online
    # or over (the online part needs none); here on both runtimes, the flag set on CPython too.
    import sys

    from xmpp_lite import session as session_module

    login_modules = ("xmpp_lite.login", "xmpp_lite.sasl", "xmpp_lite.bind")
    on_micropython = session_module.MICROPYTHON
    session_module.MICROPYTHON = True
    try:
        for _ in range(2):  # the second login loads them again
            session, peer = online_session()
            assert [name for name in login_modules if name in sys.modules] == []
            session.send_message("controller@example.net", "online without the login's code")
            peer.reply(b"<iq type='get' id='p1' from='example.net'><ping xmlns='urn:xmpp:ping'/></iq>")
            assert [item[1].get("type") for item in peer.take()] == ["chat", "result"]
            peer.reply(stream_error("conflict", "replaced by a new connection"))
            assert session.finished and "xmpp_lite.login" not in sys.modules  # a stream error needs none
        # A login that fails unloads them as well.
        session = Session(JID, PASSWORD)
        peer = Peer(session)
        peer.start()
        # xmpp_lite.sasl waits for the features (the client loads it before the socket, see connecting),
        # xmpp_lite.bind for our first SASL message.
        assert [name for name in login_modules if name in sys.modules] == ["xmpp_lite.login"]
        events = peer.reply(HEADER + stream_error("host-unknown"))
        assert events[0][0] == EVENT_ERROR and events[0][1].condition == "host-unknown"
        assert [name for name in login_modules if name in sys.modules] == []
        raises(ProtocolError, session.start)  # over: no second login on the same session
    finally:
        session_module.MICROPYTHON = on_micropython


def test_sasl_is_loaded_once_the_features_are_read_and_unloaded_before_the_bind():
    # While the features are parsed the mechanisms' code is not needed; once authenticated, neither:
    # MicroPython unloads it and the first half of the login, and the bind's half lives on in the
    # session's Login alone (here the flag is set on CPython too).
    import sys

    from xmpp_lite import login as login_module
    from xmpp_lite import unload

    on_micropython = login_module.MICROPYTHON
    login_module.MICROPYTHON = True
    try:
        unload("xmpp_lite.sasl")
        session = Session(JID, PASSWORD, resource="sensor", tls="none", insecure_plain=True)
        peer = Peer(session)
        peer.start()
        assert "xmpp_lite.sasl" not in sys.modules
        peer.reply(HEADER + mechanisms("PLAIN"))
        assert "xmpp_lite.sasl" in sys.modules and [elem.local for elem in peer.elements()] == ["auth"]
        peer.reply(sasl_element(b"success"))
        assert "xmpp_lite.sasl" not in sys.modules and session.state == "bind"
        assert [name for name in ("xmpp_lite.login", "xmpp_lite.bind") if name in sys.modules] == []
        assert type(session._login).__module__ == "xmpp_lite.bind"
        bind = peer.elements()[0]
        peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id")))
        assert session.online
    finally:
        login_module.MICROPYTHON = on_micropython
