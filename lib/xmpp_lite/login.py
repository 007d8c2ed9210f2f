"""The login half of a Session: what only runs until it is online (RFC 6120 4-7, XEP-0388, XEP-0198, XEP-0077).

The stream header and features, STARTTLS, the hand-off to xmpp_lite.sasl
(the mechanisms and the SASL elements: loaded once the features are read and
freed, unloaded on MicroPython right after the SASL outcome), resource binding, the legacy session, SASL2 with Bind2, the XEP-0198
``<resume/>`` and in-band registration: the vocabulary of these elements and
the negotiation that sends them. xmpp_lite.session keeps what a device uses
while online (stanzas, iq answers, acks, sending, closing).

A Session makes its ``Login`` when it is made and drops it once online, or
once over; on MicroPython it then unloads this module and xmpp_lite.sasl
(xmpp_lite.unload), so that their code takes no RAM between logins. The two
classes are one state machine split in two: a Login reads and writes its
session's private attributes (``_queue``, ``_fail``, ``_state``...).
"""

from xmpp_lite import sm as xsm
from xmpp_lite._compat import MICROPYTHON, const
from xmpp_lite.errors import AuthError
from xmpp_lite.sm import NS_SM
from xmpp_lite.stanza import NS_CLIENT, NS_STANZAS, NS_STREAMS, Element, escape_attr, serialise
from xmpp_lite.stanza import iq as make_iq
from xmpp_lite.stream import ProtocolError, split_jid
from xmpp_lite.session import (
    _STATE_NAMES,
    EVENT_ONLINE,
    EVENT_REGISTERED,
    EVENT_RESUMED,
    EVENT_STARTTLS,
    TLS_DIRECT,
    TLS_NONE,
    TLS_REQUIRED,
)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
# The same as in xmpp_lite.sasl, which is not loaded while the features are read.
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"

# Largest JID accepted in a bind result (RFC 7622: three parts of 1023 bytes).
MAX_JID_BYTES = 3071

STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

# No XML declaration before a header (RFC 6120 11.5: SHOULD, not MUST): it would
# only say XML 1.0 in UTF-8, which the stream is anyway (11.6), and costs 21 B.
_HEADER = (
    "<stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s'%s>"
)

_TLS_NOT_OFFERED = const(0)
_TLS_OFFERED = const(1)
_TLS_MANDATORY = const(2)

# The session's states: the same numbers as in xmpp_lite.session.
_IDLE = const(0)
_OPENING = const(1)
_STARTTLS = const(2)
_TLS = const(3)
_AUTH = const(4)
_BIND = const(5)
_SESSION = const(6)
_ONLINE = const(7)
_REGISTER = const(8)
_RESUME = const(9)
_CLOSED = const(11)
_ERROR = const(12)

# Which state may follow which while logging in, by state: bit n set if state n may follow (the
# session itself goes to closing, closed or error).
_NEXT = (
    1 << _OPENING,  # _IDLE
    1 << _STARTTLS | 1 << _AUTH | 1 << _REGISTER,  # _OPENING
    1 << _TLS,  # _STARTTLS
    1 << _OPENING | 1 << _AUTH,  # _TLS
    1 << _BIND | 1 << _RESUME | 1 << _ONLINE,  # _AUTH (_ONLINE: bound inline by SASL2 with Bind2)
    1 << _SESSION | 1 << _ONLINE,  # _BIND
    1 << _ONLINE,  # _SESSION
    0,  # _ONLINE
    0,  # _REGISTER
    1 << _BIND | 1 << _ONLINE,  # _RESUME
)


# -- the vocabulary -----------------------------------------------------------------------------------


def stream_header(domain, sender=None):
    """Our stream header; ``sender`` (our bare JID) only where no one else can read it (RFC 6120 4.7.1)."""
    return (_HEADER % (escape_attr(domain), "" if sender is None else " from='%s'" % escape_attr(sender))).encode()


def _tls_offer(features):
    """_TLS_NOT_OFFERED, _TLS_OFFERED or _TLS_MANDATORY (<starttls><required/>)."""
    starttls = features.find("starttls", NS_TLS)
    if starttls is None:
        return _TLS_NOT_OFFERED
    return _TLS_MANDATORY if starttls.find("required") is not None else _TLS_OFFERED


def bind_request(stanza_id, resource=None):
    bind = Element("bind", xmlns=NS_BIND)
    if resource:
        bind.append(Element("resource", text=resource))
    return make_iq("set", stanza_id, payload=bind)


def valid_full_jid(jid, domain):
    """``jid`` if it is a full JID at ``domain``, else None."""
    if not jid or len(jid) > MAX_JID_BYTES:
        return None
    local, jid_domain, resource = split_jid(jid)
    if jid_domain != domain or not resource:
        return None
    return jid


def error_condition(stanza):
    """The defined condition of an error stanza (RFC 6120 8.3.3), or "undefined-condition"."""
    error = stanza.find("error")
    if error is not None:
        for child in error.children:
            if child.xmlns == NS_STANZAS and child.local != "text":
                return child.local
    return "undefined-condition"


# -- the negotiation ----------------------------------------------------------------------------------


class Login:
    """The login of one Session; the session's constructor arguments are described there."""

    def __init__(self, session, jid, password, resource, tls, insecure_plain, sasl_cache, mechanisms,
                 registration, client_nonce, sasl2, presence):
        local, domain, jid_resource = split_jid(jid)
        if not local or not domain:
            raise ValueError("the JID needs a local part and a domain: " + jid)
        if tls not in (TLS_REQUIRED, TLS_DIRECT, TLS_NONE):
            raise ValueError("tls must be 'required', 'direct' or 'none'")
        session.username = local
        session.tls = tls
        session.secure = tls == TLS_DIRECT
        self.session = session
        self.domain = domain
        self.resource = resource if resource is not None else (jid_resource or None)
        self.insecure_plain = insecure_plain
        self.mechanisms = tuple(mechanisms) if mechanisms is not None else None
        self.sasl2 = sasl2
        self.restart = False  # reset the parser after this chunk (after <proceed/>, <success/>)
        self._auth_due = None  # the mechanisms offered in the features: choose and authenticate after this chunk
        self.password = password
        self.sasl_cache = sasl_cache
        self.client_nonce = client_nonce
        self.registration = registration
        self.presence = presence
        self._mech = None
        self._session_needed = False
        self._pending_id = None  # id of our bind, session or registration request
        self._bind2 = False  # our <authenticate/> asks for a Bind2 resource
        self._after_auth = _BIND  # the state a SASL2 <success/> leads to: what went out behind our last message
        session._builder.on_stream_start = self.on_stream_start

    def go(self, new):
        session = self.session
        old = session._state
        if old >= _CLOSED:
            raise ProtocolError("the session is over (%s)" % session.state)
        if not _NEXT[old] >> new & 1:
            session._state = _ERROR
            names = _STATE_NAMES.split()
            raise ProtocolError("no transition from %s to %s" % (names[old], names[new]))
        session._state = new

    def start(self):
        self.go(_OPENING)
        self._open_stream()
        if self.session.tls == TLS_REQUIRED and not self.session.secure:
            self.session._queue(STARTTLS)  # carries nothing secret: it goes with the header
            self.go(_STARTTLS)
        else:
            self._pipeline_auth()

    def tls_established(self):
        self.session.secure = True
        self._open_stream()
        if not self._pipeline_auth():
            self.go(_OPENING)

    def after_chunk(self):
        """What waits until the server's chunk is parsed: a stream restart, or our authentication.

        After <proceed/> or <success/> the server sends nothing before our new
        header, so the chunk ended there. The authentication waits until the
        features, a tree of a few KB, are freed: xmpp_lite.sasl and the
        mechanism need the room.
        """
        session = self.session
        if self.restart:
            self.restart = False
            session._parser.reset()
            session._builder.reset()
            session._features_seen = False
        offered = self._auth_due
        if offered is not None:
            self._auth_due = None
            if session._state == _OPENING:  # not failed or closed meanwhile
                from xmpp_lite import sasl

                try:
                    name = sasl.choose_mechanism(offered, allow_plain=session.secure or self.insecure_plain)
                except AuthError as error:
                    session._fail(error)
                    return
                self._send_auth(name)

    def _open_stream(self):
        self.session._queue(stream_header(self.domain, self.session.username + "@" + self.domain
                                          if self.session.secure else None))

    def on_stream_start(self, name, attrs):
        """The server's stream header: one we talk to, or a stream error."""
        colon = name.find(":")
        namespace = attrs.get("xmlns:" + name[:colon]) if colon >= 0 else attrs.get("xmlns")
        version = attrs.get("version", "")
        condition = "invalid-namespace"
        if name[colon + 1:] != "stream" or namespace != NS_STREAMS:
            problem = "not an XMPP stream: <" + name + ">"
        elif attrs.get("xmlns") != NS_CLIENT:
            problem = "the stream is not in jabber:client"
        elif version.split(".")[0] != "1":
            problem = "the server does not speak XMPP 1.0 (version '" + version + "')"
            condition = "unsupported-version"
        else:
            self.session.stream_id = attrs.get("id")
            return
        self.session._fail(ProtocolError(problem), condition)
        raise EOFError  # stops the parser: see Session.receive_data

    def on_element(self, elem):
        """A first-level element while logging in (the session refused it already if it was cut).

        What each state takes: features once per stream in every state that waits for something (in
        _AUTH only when the initial response went out with the header; after a SASL2 success, with
        no restart, the server may send them once more); a stream error in every state; the rest
        only in the state that waits for it.
        """
        session = self.session
        state = session._state
        xmlns = elem.xmlns
        local = elem.local
        if self.restart:
            session._fail(ProtocolError("<%s/> before the stream restart" % elem.name), "policy-violation")
        elif xmlns == NS_STREAMS and local == "error":
            session._on_stream_error(elem)
        elif xmlns == NS_STREAMS and local == "features" and state != _IDLE and state != _TLS and state != _REGISTER:
            self._on_features(elem)
        elif xmlns == NS_CLIENT and local == "iq" and (state == _BIND or state == _SESSION or state == _REGISTER):
            self._on_iq(elem)
        elif xmlns == NS_SM and state == _RESUME and local == "resumed":
            sm = session.sm
            h = xsm.parse_h(elem)
            if elem.get("previd") != sm.id or h is None or not sm.ack(h):
                session._fail(ProtocolError("a <resumed/> that does not fit the stream (previd %s, h %s)"
                                            % (elem.get("previd"), elem.get("h"))), "undefined-condition")
                return
            sm.resumed()
            session.jid = sm.jid
            session.resumed = True
            for data in sm.unacked:  # the server did not get these: again, in order
                session._queue(data)
            self.go(_ONLINE)
            session.login_round_trips = session.flights
            session._event(EVENT_RESUMED, session.jid)
            session._drop_login()
        elif xmlns == NS_SM and state == _RESUME and local == "failed":  # the server no longer knows the stream
            sm = session.sm
            h = xsm.parse_h(elem)
            if h is not None:
                sm.ack(h)  # XEP-0198 1.6: what the old stream delivered need not go again
            sm.forget()
            self._send_bind()
        elif xmlns == NS_TLS and state == _STARTTLS and local == "proceed":
            self.go(_TLS)
            self.restart = True
            session._event(EVENT_STARTTLS, None)
        elif xmlns == NS_TLS and state == _STARTTLS and local == "failure":
            session._fail(ProtocolError("the server could not start TLS"))
        elif state != _AUTH or not (
                (xmlns == NS_SASL or xmlns == NS_SASL2)
                and (local == "challenge" or local == "success" or local == "failure")
                or xmlns == NS_SASL2 and local == "continue"):
            session._fail(ProtocolError("unexpected <%s/> in state %s" % (elem.name, session.state)),
                          "unsupported-stanza-type")
        elif (xmlns == NS_SASL2) != session.sasl2_used:
            session._fail(ProtocolError("<%s xmlns='%s'/> in a %s login" % (
                local, xmlns, "SASL2" if session.sasl2_used else "SASL")), "unsupported-stanza-type")
        elif local == "challenge":
            from xmpp_lite import sasl

            try:
                answer = self._mech.challenge(sasl.b64decode(elem.text))
            except AuthError as error:
                session._fail(error)
                return
            session._queue(sasl.response(answer, NS_SASL2 if session.sasl2_used else NS_SASL))
            if session.sasl2_used:
                self._after_last_message()
        elif local == "success":
            self._on_success(elem)
        elif local == "continue":
            session._fail(AuthError("invalid-mechanism", "the server asks for SASL2 tasks; none is supported"))
        else:  # <failure/>
            from xmpp_lite import sasl

            if self._mech is not None:
                self._mech.discard_cache()
            self._mech = None
            session._fail(sasl.failure(elem))

    def _on_iq(self, iq):
        session = self.session
        kind = iq.get("type")
        if (kind != "result" and kind != "error") or iq.get("id") != self._pending_id:
            session._on_iq(iq)
            return
        state = session._state
        if state == _BIND:
            if kind != "result":
                session._fail(ProtocolError("resource binding failed: " + error_condition(iq)))
                return
            bind = iq.find("bind", NS_BIND)
            session.jid = valid_full_jid(bind.find_text("jid") if bind is not None else None, self.domain)
            if session.jid is None:
                session._fail(ProtocolError("the bind result has no valid JID"))
            elif self._session_needed:
                self._pending_id = session.new_id()
                session._queue_element(make_iq("set", self._pending_id, payload=Element("session", xmlns=NS_SESSION)))
                self.go(_SESSION)
            else:
                self._go_online()
        elif state == _SESSION:
            if kind == "result":
                self._go_online()
            else:
                session._fail(ProtocolError("session establishment failed: " + error_condition(iq)))
        else:  # _REGISTER: the protocol itself is in xmpp_lite.register
            try:
                reply = self.registration.receive(iq, session.username, self.password)
            except Exception as error:  # RegistrationError, or a form this client cannot fill in
                session._fail(error)
                return
            if reply is None:
                self.password = None
                session._event(EVENT_REGISTERED, session.username)
                session.close()
                return
            self._pending_id = session.new_id()
            reply.set("id", self._pending_id)
            session._queue_element(reply)

    # -- negotiation ----------------------------------------------------------------------------

    def _on_features(self, features):
        session = self.session
        if session._features_seen:
            session._fail(ProtocolError("stream features twice"), "policy-violation")
            return
        session._features_seen = True
        state = session._state
        if state == _STARTTLS:
            if _tls_offer(features) == _TLS_NOT_OFFERED:
                # Stripped STARTTLS (or a server without TLS): never log in in the clear.
                session._fail(ProtocolError("the server offers no STARTTLS and tls='required': "
                                            "refusing to continue unencrypted"))
            return  # <proceed/> follows
        if state == _AUTH:
            return  # the pipelined initial response is out: its answer follows
        if state != _OPENING:
            # The features of the logged-in stream: after the restart, or once after a SASL2 success.
            session._sm_offered = features.find("sm", NS_SM) is not None
            if state == _BIND and not session.sasl2_used:  # with SASL2 the bind request is already out
                if features.find("bind", NS_BIND) is None:
                    session._fail(ProtocolError("the server offers no resource binding"))
                    return
                # The legacy session (RFC 3921), when offered and not marked <optional/>.
                session_offer = features.find("session", NS_SESSION)
                self._session_needed = session_offer is not None and session_offer.find("optional") is None
            return  # _RESUME: <resumed/> or <failed/> follows; _BIND, _SESSION: their result
        # _OPENING: TLS is settled; authenticate (or register).
        if not session.secure and _tls_offer(features) == _TLS_MANDATORY:
            session._fail(ProtocolError("the server requires TLS and tls='none'"))
            return
        if self.registration is not None:  # in-band registration (XEP-0077) in place of a login
            if not session.secure and not self.insecure_plain:
                session._fail(ProtocolError("in-band registration sends the password: refused without TLS "
                                            "unless insecure_plain=True"))
                return
            self._pending_id = session.new_id()
            session._queue_element(self.registration.request(features, self._pending_id))
            self.go(_REGISTER)
            return
        offer = features.find("authentication", NS_SASL2) if self.sasl2 else None  # XEP-0388
        if offer is not None:
            session.sasl2_used = True
            inline = offer.find("inline", NS_SASL2)
            sm = session.sm
            # Bind2 (XEP-0386) picks the resource itself; a resumption needs no new one.
            self._bind2 = (inline is not None and inline.find("bind", NS_BIND2) is not None
                           and self.resource is None and not (sm is not None and sm.resumable))
        else:
            offer = features.find("mechanisms", NS_SASL)
        offered = []
        if offer is not None:
            for child in offer.children:
                if child.local == "mechanism":
                    name = child.text.strip()
                    if self.mechanisms is None or name in self.mechanisms:
                        offered.append(name)
        self._auth_due = offered

    def _pipeline_auth(self):
        """Send the initial response with the header if one mechanism is pinned and allowed here."""
        if self.registration is not None or self.mechanisms is None or len(self.mechanisms) != 1:
            return False
        from xmpp_lite import sasl

        name = self.mechanisms[0]
        if name not in sasl.supported_mechanisms():
            return False
        if name == "PLAIN" and not self.session.secure and not self.insecure_plain:
            return False
        self._send_auth(name)
        return True

    def _send_auth(self, name):
        from xmpp_lite import sasl

        session = self.session
        try:
            self._mech = sasl.Mechanism(name, session.username, self.password, sasl_cache=self.sasl_cache,
                                        client_nonce=self.client_nonce)
            initial = self._mech.initial()
        except ValueError as error:  # e.g. a NUL in the password for PLAIN
            session._fail(AuthError(sasl.INVALID_MECHANISM, str(error)))
            return
        session.mechanism = name
        self.password = None  # the mechanism holds what it needs
        if session.sasl2_used:
            session._queue(sasl.authenticate(name, initial, sasl.BIND2 if self._bind2 else b""))
            self.go(_AUTH)
            self._after_last_message()
            return
        session._queue(sasl.auth(name, initial))
        self.go(_AUTH)

    def _after_last_message(self):
        """SASL2: what must follow <success/> goes right behind our last SASL message.

        There is no stream restart, so the server reads it once it has
        authenticated us: a <resume/>, or a bind request when Bind2 does not
        bind, and the initial presence when the resource is sure to be bound
        by then. Nothing in it is secret: on TLS the server is already
        verified, and without TLS anyone on the path reads all of it anyway.
        """
        if not self._mech.client_done:
            return
        sm = self.session.sm
        if sm is not None and sm.resumable:
            self.session._queue(xsm.resume(sm.handled, sm.id))
            self._after_auth = _RESUME
            return  # a resumed stream keeps its presence; after <failed/> it goes once bound
        if not self._bind2:
            self._request_bind()
            self._after_auth = _BIND
        else:
            self._after_auth = _ONLINE
        self._send_initial_presence()

    def _send_initial_presence(self):
        session = self.session
        if self.presence is not None and not session.presence_sent:
            if session.login_round_trips is None:
                session.login_round_trips = session.flights  # the first stanza rides on the next flight
            session.presence_sent = True
            session._send_stanza(serialise(self.presence, NS_CLIENT))

    def _on_success(self, elem):
        from xmpp_lite import sasl

        session = self.session
        sasl2 = session.sasl2_used
        try:
            self._mech.success(sasl.b64decode((elem.find_text("additional-data") or "") if sasl2 else elem.text))
        except AuthError as error:
            session._fail(error)
            return
        self._mech = None
        if MICROPYTHON:
            # Authenticated: the mechanisms' code goes before the bind (as in Session._drop_login).
            from xmpp_lite import unload

            unload("xmpp_lite.sasl")
        if sasl2:
            session._features_seen = False  # no restart; the server may send the logged-in features once
            after = self._after_auth
            if after != _ONLINE:
                self.go(after)  # the <resume/> or bind request is out: its answer follows
                return
            failed = elem.find("failed", NS_BIND2)
            if elem.find("bound", NS_BIND2) is None:
                reason = error_condition(failed) if failed is not None else "no <bound/> in <success/>"
                session._fail(ProtocolError("resource binding failed: " + reason))
                return
            session.jid = valid_full_jid(elem.find_text("authorization-identifier"), self.domain)
            if session.jid is None:
                session._fail(ProtocolError("the SASL2 success has no valid full JID"))
                return
            # XEP-0198 goes on with the logged-in features, if the server sends them.
            self._go_online(session.sm is not None)
            return
        # Restart without waiting: the new header and the bind (or resume) request go together.
        self.restart = True
        self._open_stream()
        sm = session.sm
        if sm is not None and sm.resumable:
            session._queue(xsm.resume(sm.handled, sm.id))
            self.go(_RESUME)
            return
        self._send_bind()

    def _send_bind(self):
        self._request_bind()
        self.go(_BIND)

    def _request_bind(self):
        # One character: unique in the stream, as every IdSource id is longer (RFC 6120 8.1.3).
        self._pending_id = "b"
        self.session._queue_element(bind_request(self._pending_id, self.resource))

    def _go_online(self, sm_later=False):
        session = self.session
        self.go(_ONLINE)
        if sm_later:
            session._sm_waiting = True
        else:
            session._start_sm()
        self._send_initial_presence()
        if session.login_round_trips is None:
            session.login_round_trips = session.flights
        session._event(EVENT_ONLINE, session.jid)
        session._drop_login()
