"""The login of a Session after authentication (RFC 6120 7, RFC 3921 3, XEP-0198, XEP-0386).

Resource binding, the legacy session, the result of a XEP-0198 ``<resume/>``,
a SASL2 ``<success/>`` whose Bind2 failed, the initial presence and going
online. (A SASL2 success that bound the resource goes online in
xmpp_lite.login, without this module.) xmpp_lite.login loads this module when
our first SASL message goes out, if the login will need it, and its Login
makes this ``Login`` once the SASL outcome is a success, after unloading both
modules and xmpp_lite.sasl on MicroPython (xmpp_lite.unload): from then on
this object alone keeps this code, until the session drops it, online or over.
"""

from xmpp_lite import sm as xsm
from xmpp_lite._compat import const
from xmpp_lite.session import _STATE_NAMES, EVENT_ONLINE, EVENT_RESUMED
from xmpp_lite.sm import NS_SM
from xmpp_lite.stanza import NS_CLIENT, NS_STANZAS, NS_STREAMS, Element, serialise
from xmpp_lite.stanza import iq as make_iq
from xmpp_lite.stream import ProtocolError, split_jid

NS_BIND2 = "urn:xmpp:bind:0"  # the same as in xmpp_lite.sasl (the other namespaces are written inline)

# Largest JID accepted in a bind result (RFC 7622: three parts of 1023 bytes).
_MAX_JID_BYTES = const(3071)

# The session's states: the same numbers as in xmpp_lite.session.
_AUTH = const(4)
_BIND = const(5)
_SESSION = const(6)
_ONLINE = const(7)
_RESUME = const(9)
_CLOSED = const(11)
_ERROR = const(12)


def _condition(stanza):
    """The defined condition of an error stanza (RFC 6120 8.3.3), or "undefined-condition"."""
    error = stanza.find("error")
    if error is not None:
        for child in error.children:
            if child.xmlns == NS_STANZAS and child.local != "text":
                return child.local
    return "undefined-condition"


class Login:
    """The login of one Session from its SASL ``success`` on; ``login`` is the xmpp_lite.login.Login it follows.

    The same class name as the first half's: the session holds one or the other, and the name is interned already.
    """

    def __init__(self, login, success):
        session = self.session = login.session
        session._login = self
        session._builder.on_stream_start = self.on_stream_start
        self.domain = login.domain
        self.resource = login.resource
        self.presence = login.presence
        self.restart = login.restart  # reset the parser after this chunk (after <success/> of RFC 6120)
        self.after = _ONLINE  # what the bind result leads to: _SESSION where the legacy session is needed
        sm = session.sm
        if not session.sasl2_used:
            # The restart: our new header is out (xmpp_lite.login's), the bind (or resume) request
            # goes with it.
            if sm is not None and sm.resumable:
                session._queue(xsm.resume(sm.handled, sm.id))
                self.go(_RESUME)
            else:
                self._send_bind()
            return
        session._features_seen = False  # no restart; the server may send the logged-in features once
        if login.after != _ONLINE:
            self.go(login.after)  # _RESUME: the <resume/> is out, its answer follows
            return
        # Bind2 bound no valid full JID: xmpp_lite.login puts a session bound by Bind2 online itself.
        failed = success.find("failed", NS_BIND2)
        if success.find("bound", NS_BIND2) is None:
            reason = _condition(failed) if failed is not None else "no <bound/> in <success/>"
            session._fail(ProtocolError("resource binding failed: " + reason))
        else:
            self._bound(success.find_text("authorization-identifier"))  # fails the session

    def unload(self):
        """Called by the session on MicroPython once online or over: the login's code goes (xmpp_lite.unload).

        xmpp_lite.login unloads these once authenticated already (this code lives on while the
        session holds this object); again costs nothing.
        """
        from xmpp_lite import unload

        for name in ("xmpp_lite.login", "xmpp_lite.sasl", "xmpp_lite.bind"):
            unload(name)

    def go(self, state):
        session = self.session
        old = session._state
        if old >= _CLOSED:
            raise ProtocolError("the session is over (%s)" % session.state)
        # Which state may follow which after authentication, by state from _AUTH to _RESUME: bit n set
        # if state n may follow (xmpp_lite.login's before; the session goes to closing, closed, error).
        if not _AUTH <= old <= _RESUME or not (1 << _BIND | 1 << _RESUME | 1 << _ONLINE,  # _ONLINE: Bind2
                                               1 << _SESSION | 1 << _ONLINE,
                                               1 << _ONLINE,
                                               0,  # _ONLINE
                                               0,  # _REGISTER
                                               1 << _BIND | 1 << _ONLINE)[old - _AUTH] >> state & 1:
            session._state = _ERROR
            names = _STATE_NAMES.split()
            raise ProtocolError("no transition from %s to %s" % (names[old], names[state]))
        session._state = state

    def after_chunk(self):
        """After <success/> the server sends nothing before our new header: the chunk ended there."""
        if self.restart:
            self.restart = False
            session = self.session
            session._parser.reset()
            session._builder.reset()
            session._features_seen = False

    def on_stream_start(self, name, attrs):
        """The server's stream header after the restart: as xmpp_lite.login's, which is unloaded by then."""
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
        """A first-level element from the SASL outcome until online (the session refused it already if it was cut).

        Features once per stream (after the restart, or once after a SASL2 success, with no restart),
        a stream error in every state; the rest only in the state that waits for it.
        """
        session = self.session
        state = session._state
        xmlns = elem.xmlns
        local = elem.local
        if self.restart:
            session._fail(ProtocolError("<%s/> before the stream restart" % elem.name), "policy-violation")
        elif xmlns == NS_STREAMS and local == "error":
            session._on_stream_error(elem)
        elif xmlns == NS_STREAMS and local == "features":
            if session._features_seen:
                session._fail(ProtocolError("stream features twice"), "policy-violation")
                return
            session._features_seen = True
            session._sm_offered = elem.find("sm", NS_SM) is not None
            if state == _BIND and not session.sasl2_used:  # with SASL2 the bind request is already out
                if elem.find("bind", "urn:ietf:params:xml:ns:xmpp-bind") is None:
                    session._fail(ProtocolError("the server offers no resource binding"))
                    return
                # The legacy session (RFC 3921), when offered and not marked <optional/>.
                offer = elem.find("session", "urn:ietf:params:xml:ns:xmpp-session")
                if offer is not None and offer.find("optional") is None:
                    self.after = _SESSION
            # _RESUME: <resumed/> or <failed/> follows; _BIND, _SESSION: their result
        elif xmlns == NS_CLIENT and local == "iq" and (state == _BIND or state == _SESSION):
            kind = elem.get("type")
            if (kind != "result" and kind != "error") or elem.get("id") != ("b" if state == _BIND else "s"):
                session._on_iq(elem)
            elif kind != "result":
                session._fail(ProtocolError(("resource binding failed: " if state == _BIND
                                             else "session establishment failed: ") + _condition(elem)))
            elif state == _SESSION:
                self._go_online()
            else:
                bind = elem.find("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                if not self._bound(bind.find_text("jid") if bind is not None else None):
                    return
                if self.after == _SESSION:
                    # One character: unique in the stream, as every IdSource id is longer (RFC 6120 8.1.3).
                    request = Element("session", xmlns="urn:ietf:params:xml:ns:xmpp-session")
                    session._queue_element(make_iq("set", "s", payload=request))
                    self.go(_SESSION)
                else:
                    self._go_online()
        elif xmlns == NS_SM and state == _RESUME and (local == "resumed" or local == "failed"):
            sm = session.sm
            h = xsm.parse_h(elem)
            if local == "failed":  # the server no longer knows the stream
                if h is not None:
                    sm.ack(h)  # XEP-0198 1.6: what the old stream delivered need not go again
                sm.forget()
                self._send_bind()
            elif elem.get("previd") != sm.id or h is None or not sm.ack(h):
                session._fail(ProtocolError("a <resumed/> that does not fit the stream (previd %s, h %s)"
                                            % (elem.get("previd"), elem.get("h"))), "undefined-condition")
            else:
                sm.resumed()
                session.jid = sm.jid
                session.resumed = True
                for data in sm.unacked:  # the server did not get these: again, in order
                    session._queue(data)
                self.go(_ONLINE)
                session.login_round_trips = session.flights
                session._event(EVENT_RESUMED, session.jid)
                session._drop_login()
        else:
            session._fail(ProtocolError("unexpected <%s/> in state %s" % (elem.name, session.state)),
                          "unsupported-stanza-type")

    def _send_bind(self):
        # One character: unique in the stream, as every IdSource id is longer (RFC 6120 8.1.3).
        bind = Element("bind", xmlns="urn:ietf:params:xml:ns:xmpp-bind")
        if self.resource:
            bind.append(Element("resource", text=self.resource))
        self.session._queue_element(make_iq("set", "b", payload=bind))
        self.go(_BIND)

    def _bound(self, jid):
        """True if ``jid`` is a full JID at our domain: it is the session's then; else the session fails."""
        if jid and len(jid) <= _MAX_JID_BYTES:
            local, domain, resource = split_jid(jid)
            if domain == self.domain and resource:
                self.session.jid = jid
                return True
        self.session._fail(ProtocolError("the server bound no valid full JID"))
        return False

    def _go_online(self):
        session = self.session
        self.go(_ONLINE)
        session._start_sm()  # (online by Bind2, xmpp_lite.login waits for the logged-in features instead)
        presence = self.presence
        if presence is not None and not session.presence_sent:  # as in xmpp_lite.login
            if session.login_round_trips is None:
                session.login_round_trips = session.flights  # the first stanza rides on the next flight
            session.presence_sent = True
            session._send_stanza(serialise(presence, NS_CLIENT))
        if session.login_round_trips is None:
            session.login_round_trips = session.flights
        session._event(EVENT_ONLINE, session.jid)
        session._drop_login()
