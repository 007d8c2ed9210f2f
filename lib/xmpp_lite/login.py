"""The login of a Session up to the SASL outcome (RFC 6120 4-6, XEP-0388, XEP-0077).

The stream header and features, STARTTLS, the hand-off to xmpp_lite.sasl
(the mechanisms and the SASL elements: loaded once the features are read),
in-band registration, and what SASL2 sends right behind our last SASL
message (a bind request, a ``<resume/>``, the initial presence). What runs
after ``<success/>`` (resource binding, the legacy session, the XEP-0198
resumption, going online) is xmpp_lite.bind; xmpp_lite.session keeps what a
device uses while online (stanzas, iq answers, acks, sending, closing).

A Session makes its ``Login`` when it is made. A SASL2 ``<success/>`` whose
Bind2 bound the resource (the usual login with a server that has SASL2) puts
the session online here. Any other login goes on in an ``xmpp_lite.bind.Login``
after ``<success/>``: that module is loaded as our first SASL message goes out,
while the heap is in fewer pieces. On MicroPython this module, xmpp_lite.sasl
and xmpp_lite.bind are unloaded once authenticated (xmpp_lite.unload): from
``<success/>`` to online the heap holds only the second half's code. The
classes are one state machine cut in two: each reads and writes its session's
private attributes (``_queue``, ``_fail``, ``_state``...).
"""

from xmpp_lite import sm as xsm
from xmpp_lite._compat import MICROPYTHON, const
from xmpp_lite.errors import AuthError
from xmpp_lite.session import _STATE_NAMES, EVENT_ONLINE, EVENT_STARTTLS
from xmpp_lite.stanza import NS_CLIENT, NS_STREAMS, Element, escape_attr, serialise
from xmpp_lite.stanza import iq as make_iq
from xmpp_lite.stream import ProtocolError, split_jid

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
# The same as in xmpp_lite.sasl, which is not loaded while the features are read.
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"

# The session's states: the same numbers as in xmpp_lite.session.
_IDLE = const(0)
_OPENING = const(1)
_STARTTLS = const(2)
_TLS = const(3)
_AUTH = const(4)
_BIND = const(5)
_ONLINE = const(7)
_REGISTER = const(8)
_RESUME = const(9)
_CLOSED = const(11)
_ERROR = const(12)

# Largest JID accepted from the server (RFC 7622: three parts of 1023 bytes), as in xmpp_lite.bind.
_MAX_JID_BYTES = const(3071)


class Login:
    """The login of one Session up to the SASL outcome; the session's constructor arguments are described there."""

    def __init__(self, session, jid, password, resource, tls, insecure_plain, sasl_cache, mechanisms,
                 registration, client_nonce, sasl2, presence):
        local, domain, jid_resource = split_jid(jid)
        if not local or not domain:
            raise ValueError("the JID needs a local part and a domain: " + jid)
        if tls not in ("required", "direct", "none"):  # xmpp_lite.session's TLS_REQUIRED, TLS_DIRECT, TLS_NONE
            raise ValueError("tls must be 'required', 'direct' or 'none'")
        session.username = local
        session.tls = tls
        session.secure = tls == "direct"
        self.session = session
        self.domain = domain
        self.resource = resource if resource is not None else (jid_resource or None)
        self.insecure_plain = insecure_plain
        self.mechanisms = tuple(mechanisms) if mechanisms is not None else None
        self.sasl2 = sasl2
        self.restart = False  # reset the parser after this chunk (after <proceed/>, <success/>)
        self.offered = None  # the mechanisms offered in the features: choose and authenticate after this chunk
        self.password = password
        self.sasl_cache = sasl_cache
        self.client_nonce = client_nonce
        self.registration = registration
        self.presence = presence
        self.mechanism = None  # the sasl.Mechanism under way
        # The state a SASL2 <success/> leads to: _BIND, _RESUME, or _ONLINE when Bind2 binds (what
        # our <authenticate/> asks for, and what went out behind our last message).
        self.after = _BIND
        session._builder.on_stream_start = self.on_stream_start
        sm = session.sm
        if not sasl2 or registration is None and sm is not None and sm.resumable:
            # The login goes on in xmpp_lite.bind after <success/> (a stream restart, or a stream to
            # resume): its code goes into the heap now, while the heap is in fewer pieces. Loaded after
            # <success/>, its larger functions need blocks that a heap cut up by TLS, SCRAM and the
            # features may not have (measured: the 1000-message session's smallest heap some 8 KB higher).
            import xmpp_lite.bind  # noqa: F401

    def unload(self):
        """Free the login's code and the mechanisms' (on MicroPython: see xmpp_lite.unload).

        Once authenticated, the xmpp_lite.bind.Login that takes the session over keeps its own code
        alive until the session drops it.
        """
        from xmpp_lite import unload

        for name in ("xmpp_lite.login", "xmpp_lite.sasl", "xmpp_lite.bind"):
            unload(name)

    def go(self, state):
        session = self.session
        old = session._state
        if old >= _CLOSED:
            raise ProtocolError("the session is over (%s)" % session.state)
        # Which state may follow which up to the SASL outcome, by state from _IDLE to _TLS: bit n set if
        # state n may follow (xmpp_lite.bind's from _AUTH on; the session goes to closing, closed, error).
        if old > _TLS or not (1 << _OPENING,
                              1 << _STARTTLS | 1 << _AUTH | 1 << _REGISTER,
                              1 << _TLS,
                              1 << _OPENING)[old] >> state & 1:
            session._state = _ERROR
            names = _STATE_NAMES.split()
            raise ProtocolError("no transition from %s to %s" % (names[old], names[state]))
        session._state = state

    def start(self):
        """Our stream header, and what may go with it (from _IDLE, or from _TLS once secure).

        Our bare JID in the header only where no one else can read it (RFC 6120 4.7.1). No XML
        declaration before it (RFC 6120 11.5: SHOULD, not MUST): it would only say XML 1.0 in
        UTF-8, which the stream is anyway (11.6), and costs 21 B.
        """
        self.go(_OPENING)
        session = self.session
        self._queue_header()
        if session.tls == "required" and not session.secure:
            # Nothing secret: it goes with the header.
            session._queue(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            self.go(_STARTTLS)
        else:
            self._send_auth()

    def _queue_header(self):
        session = self.session
        header = ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                  "version='1.0' to='%s'" % escape_attr(self.domain))
        if session.secure:
            header += " from='%s'>" % escape_attr(session.username + "@" + self.domain)
        else:
            header += ">"
        session._queue(header.encode())

    def tls_established(self):
        self.session.secure = True
        self.start()  # from _TLS: a new stream, as from _IDLE, now secure

    def after_chunk(self):
        """What waits until the server's chunk is parsed: a stream restart, or our authentication.

        After <proceed/> the server sends nothing before our new header, so
        the chunk ended there. The authentication waits until the features,
        a tree of a few KB, are freed: xmpp_lite.sasl and the mechanism need
        the room.
        """
        session = self.session
        if self.restart:
            self.restart = False
            session._parser.reset()
            session._builder.reset()
            session._features_seen = False
        offered = self.offered
        if offered is not None:
            self.offered = None
            if session._state == _OPENING:  # not failed or closed meanwhile
                self._send_auth(offered)

    def on_stream_start(self, name, attrs):
        """The server's stream header: one we talk to, or a stream error.

        xmpp_lite.bind has the same check for the stream after a SASL restart, when this module is
        unloaded: a copy there costs heap only while bind is loaded, one in xmpp_lite.stream would
        cost it on every device from import on.
        """
        colon = name.find(":")
        version = attrs.get("version", "")
        if (name[colon + 1:] != "stream" or attrs.get("xmlns") != NS_CLIENT
                or attrs.get("xmlns:" + name[:colon] if colon >= 0 else "xmlns") != NS_STREAMS):
            condition = "invalid-namespace"
        elif version.split(".")[0] != "1":
            condition = "unsupported-version"
        else:
            self.session.stream_id = attrs.get("id")
            return
        self.session._fail(ProtocolError("not an XMPP 1.0 stream in jabber:client: <%s xmlns='%s' version='%s'>"
                                         % (name, attrs.get("xmlns"), version)), condition)
        raise EOFError  # stops the parser: see Session.receive_data

    def on_element(self, elem):
        """A first-level element up to the SASL outcome (the session refused it already if it was cut).

        What each state takes: features once per stream in every state that waits for something (in
        _AUTH only when the initial response went out with the header); a stream error in every
        state; the rest only in the state that waits for it: <proceed/> or <failure/> of STARTTLS,
        the registration's iq, the SASL challenges and outcome in the namespace of our login.
        """
        session = self.session
        state = session._state
        xmlns = elem.xmlns
        local = elem.local
        if self.restart:
            session._fail(ProtocolError("<%s/> before the stream restart" % elem.name), "policy-violation")
        elif xmlns == NS_STREAMS and local == "error":
            session._on_stream_error(elem)
        elif xmlns == NS_STREAMS and local == "features" and _OPENING <= state <= _AUTH and state != _TLS:
            if session._features_seen:
                session._fail(ProtocolError("stream features twice"), "policy-violation")
                return
            session._features_seen = True
            starttls = elem.find("starttls", NS_TLS)
            if state == _STARTTLS:
                if starttls is None:
                    # Stripped STARTTLS (or a server without TLS): never log in in the clear.
                    session._fail(ProtocolError("the server offers no STARTTLS and tls='required': "
                                                "refusing to continue unencrypted"))
                return  # <proceed/> follows
            if state == _AUTH:
                return  # the pipelined initial response is out: its answer follows
            # _OPENING: TLS is settled; authenticate (or register).
            if not session.secure and starttls is not None and starttls.find("required") is not None:
                session._fail(ProtocolError("the server requires TLS and tls='none'"))
                return
            if self.registration is not None:  # in-band registration (XEP-0077) in place of a login
                if not session.secure and not self.insecure_plain:
                    session._fail(ProtocolError("in-band registration sends the password: refused without TLS "
                                                "unless insecure_plain=True"))
                    return
                session._queue_element(self.registration.request(elem, session.new_id()))
                self.go(_REGISTER)
                return
            offer = elem.find("authentication", NS_SASL2) if self.sasl2 else None  # XEP-0388
            if offer is not None:
                session.sasl2_used = True
                inline = offer.find("inline", NS_SASL2)
                sm = session.sm
                # Bind2 (XEP-0386) picks the resource itself; a resumption needs no new one.
                if (inline is not None and inline.find("bind", "urn:xmpp:bind:0") is not None
                        and self.resource is None and not (sm is not None and sm.resumable)):
                    self.after = _ONLINE
            else:
                offer = elem.find("mechanisms", NS_SASL)
            offered = []
            if offer is not None:
                for child in offer.children:
                    if child.local == "mechanism":
                        name = child.text.strip()
                        if self.mechanisms is None or name in self.mechanisms:
                            offered.append(name)
            self.offered = offered
        elif xmlns == NS_CLIENT and local == "iq" and state == _REGISTER:
            self.registration.on_iq(session, elem, self.password)  # in-band registration: xmpp_lite.register
        elif xmlns == NS_TLS and state == _STARTTLS and local == "proceed":
            self.go(_TLS)
            self.restart = True
            session._event(EVENT_STARTTLS, None)
        elif xmlns == NS_TLS and state == _STARTTLS and local == "failure":
            session._fail(ProtocolError("the server could not start TLS"))
        elif state == _AUTH and xmlns == (NS_SASL2 if session.sasl2_used else NS_SASL) and (
                local == "challenge" or local == "success" or local == "failure"):
            # A SASL <challenge/>, <success/> or <failure/> (RFC 6120 6.4, XEP-0388).
            from xmpp_lite import sasl

            sasl2 = session.sasl2_used
            mechanism = self.mechanism
            try:
                if local == "challenge":
                    answer = mechanism.challenge(sasl.b64decode(elem.text))
                    session._queue(sasl.response(answer, NS_SASL2 if sasl2 else NS_SASL))
                    if sasl2:
                        self._after_last_message()
                    return
                if local == "failure":
                    if mechanism is not None:
                        mechanism.discard_cache()
                    self.mechanism = None
                    session._fail(sasl.failure(elem))
                    return
                mechanism.success(sasl.b64decode((elem.find_text("additional-data") or "") if sasl2 else elem.text))
            except AuthError as error:
                session._fail(error)
                return
            # Authenticated: the mechanisms' code goes. With SASL2, online now if Bind2 bound us, or
            # once the bind request that went behind our last message is answered (on_element, _BIND);
            # anything else goes on in xmpp_lite.bind (loaded already: see __init__ and _send_auth).
            self.mechanism = mechanism = sasl = None
            if self.after == _ONLINE:
                if elem.find("bound", "urn:xmpp:bind:0") is not None and self._online(
                        elem.find_text("authorization-identifier")):
                    return
            elif sasl2 and self.after == _BIND:
                if MICROPYTHON:
                    from xmpp_lite import unload

                    unload("xmpp_lite.sasl")
                session._features_seen = False  # no restart: the logged-in features may come once
                session._state = _BIND  # from _AUTH, as xmpp_lite.bind's go allows
                return
            from xmpp_lite import bind

            if MICROPYTHON:
                self.unload()  # after the import: the Login made below keeps xmpp_lite.bind's code
            self.restart = not sasl2  # RFC 6120: a stream restart; SASL2 goes on on this stream
            if self.restart:
                self._queue_header()  # without waiting: the bind (or resume) request goes with it
            bind.Login(self, elem)  # takes the session over
        elif state == _BIND and xmlns == NS_STREAMS and local == "features":
            # SASL2, the bind request out: the logged-in stream's features, once (no restart).
            if session._features_seen:
                session._fail(ProtocolError("stream features twice"), "policy-violation")
                return
            session._features_seen = True
            session._sm_offered = elem.find("sm", "urn:xmpp:sm:3") is not None
        elif state == _BIND and xmlns == NS_CLIENT and local == "iq":
            # SASL2: the answer to the bind request that went behind our last message.
            kind = elem.get("type")
            if (kind != "result" and kind != "error") or elem.get("id") != "b":
                session._on_iq(elem)
            elif kind != "result":
                from xmpp_lite.bind import _condition  # a failed login: the heap has the room again

                session._fail(ProtocolError("resource binding failed: " + _condition(elem)))
            else:
                bound = elem.find("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                if not self._online(bound.find_text("jid") if bound is not None else None):
                    session._fail(ProtocolError("the server bound no valid full JID"))
        elif state == _AUTH and xmlns == NS_SASL2 and local == "continue" and session.sasl2_used:
            session._fail(AuthError("invalid-mechanism", "the server asks for SASL2 tasks; none is supported"))
        else:
            session._fail(ProtocolError("unexpected <%s xmlns='%s'/> in state %s"
                                        % (local, xmlns, session.state)), "unsupported-stanza-type")

    def _send_auth(self, offered=None):
        """Choose a mechanism and send our first SASL message; False if it waits for the features.

        ``offered``: the mechanisms of the features. None: the initial response goes with the header,
        if one mechanism is pinned and allowed here.
        """
        session = self.session
        allow_plain = session.secure or self.insecure_plain
        if offered is None:
            pinned = self.mechanisms
            if self.registration is not None or pinned is None or len(pinned) != 1:
                return False
        from xmpp_lite import sasl

        if offered is None:
            name = pinned[0]
            if name not in sasl.supported_mechanisms() or name == "PLAIN" and not allow_plain:
                return False
        else:
            try:
                name = sasl.choose_mechanism(offered, allow_plain=allow_plain)
            except AuthError as error:
                session._fail(error)
                return True
        try:
            mechanism = self.mechanism = sasl.Mechanism(name, session.username, self.password,
                                                        sasl_cache=self.sasl_cache, client_nonce=self.client_nonce)
            initial = mechanism.initial()
        except ValueError as error:  # e.g. a NUL in the password for PLAIN
            session._fail(AuthError(sasl.INVALID_MECHANISM, str(error)))
            return True
        session.mechanism = name
        self.password = None  # the mechanism holds what it needs
        if session.sasl2_used:
            session._queue(sasl.authenticate(name, initial, sasl.BIND2 if self.after == _ONLINE else b""))
            self.go(_AUTH)
            self._after_last_message()
        else:
            session._queue(sasl.auth(name, initial))
            self.go(_AUTH)
        if not session.sasl2_used or self.after == _RESUME:
            # A server without SASL2, or a resumption: xmpp_lite.bind follows <success/> (see __init__).
            import xmpp_lite.bind  # noqa: F401
        return True

    def _online(self, jid):
        """Online with ``jid``, bound by SASL2 (Bind2, or the bind request behind our last message): True.

        False if ``jid`` is not a full JID at our domain. The login of a server with SASL2, done here
        without loading xmpp_lite.bind.
        """
        if not jid or len(jid) > _MAX_JID_BYTES:
            return False
        local, domain, resource = split_jid(jid)
        if domain != self.domain or not resource:
            return False
        session = self.session
        session.jid = jid
        if session._state == _AUTH:  # Bind2: the <success/> itself; no restart
            session._features_seen = False  # the server may send the logged-in features once
        # XEP-0198 starts with the logged-in features: now if they came, else when they come
        # (Session._on_stanza).
        session._sm_waiting = not session._features_seen and session.sm is not None
        session._state = _ONLINE  # from _AUTH or _BIND, as xmpp_lite.bind's go allows
        if session._features_seen:
            session._start_sm()
        self._send_presence()  # out already, with our last SASL message, unless the server skipped ahead
        if session.login_round_trips is None:
            session.login_round_trips = session.flights
        session._event(EVENT_ONLINE, jid)
        session._drop_login()
        return True

    def _after_last_message(self):
        """SASL2: what must follow <success/> goes right behind our last SASL message.

        There is no stream restart, so the server reads it once it has
        authenticated us: a <resume/>, or a bind request when Bind2 does not
        bind, and the initial presence when the resource is sure to be bound
        by then. Nothing in it is secret: on TLS the server is already
        verified, and without TLS anyone on the path reads all of it anyway.
        """
        if not self.mechanism.client_done:
            return
        session = self.session
        sm = session.sm
        if sm is not None and sm.resumable:
            session._queue(xsm.resume(sm.handled, sm.id))
            self.after = _RESUME
            return  # a resumed stream keeps its presence; after <failed/> it goes once bound
        if self.after == _BIND:
            # One character: unique in the stream, as every IdSource id is longer (RFC 6120 8.1.3).
            bind = Element("bind", xmlns="urn:ietf:params:xml:ns:xmpp-bind")
            if self.resource:
                bind.append(Element("resource", text=self.resource))
            session._queue_element(make_iq("set", "b", payload=bind))
        self._send_presence()

    def _send_presence(self):
        """The initial presence, if one was given and is not out yet (as in xmpp_lite.bind)."""
        session = self.session
        presence = self.presence
        if presence is not None and not session.presence_sent:
            if session.login_round_trips is None:
                session.login_round_trips = session.flights  # the first stanza rides on the next flight
            session.presence_sent = True
            session._send_stanza(serialise(presence, NS_CLIENT))
