"""The client-to-server XMPP session without I/O (RFC 6120, RFC 6121 basics).

Bytes from the server go in with ``receive_data``, bytes for the server come
out of ``data_to_send``, and what happened comes out of ``next_event``. No
sockets, no clocks: a driver (``xmpp_lite.client``) moves the bytes.

    session = Session("device1@example.net", "secret")
    session.start()
    loop: send session.data_to_send(); session.receive_data(socket bytes)
          while (event := session.next_event()) is not None: handle it

A driver with little memory copies the output into a buffer of its own
(``write_into(buf)``), feeds input in small pieces (a memoryview serves),
and stops feeding while ``accepting_input`` is False: see
OUTPUT_PAUSE_BYTES and MAX_REPLY_BACKLOG below.

Events are ``(kind, value)`` tuples:

    EVENT_STARTTLS        None: the server said <proceed/>. Upgrade the
                          transport to TLS, then call ``tls_established()``.
    EVENT_ONLINE          the bound full JID (str); stanzas may flow.
    EVENT_MESSAGE         a received <message/> (Element).
    EVENT_PRESENCE        a received <presence/> (Element).
    EVENT_IQ              a received <iq/> of type result or error that the
                          session did not consume itself (answers to send_iq).
    EVENT_SEE_OTHER_HOST  (host, port or None): the server redirects us
                          (RFC 6120 4.9.3.19). The session is over; a driver
                          connects once to the new host.
    EVENT_REGISTERED      the username: in-band registration succeeded.
    EVENT_HANDLER_ERROR   (iq, exception): an iq handler raised; the session
                          answered <internal-server-error/> and goes on.
    EVENT_RESUMED         the full JID: a XEP-0198 stream was resumed on this
                          connection; unacked stanzas were sent again.
    EVENT_ERROR           the exception that ended the session: AuthError,
                          StreamError, ProtocolError, XMLError or
                          RegistrationError. The session is over (final);
                          our stream end, after a stream error of ours where
                          one applies, is in data_to_send().
    EVENT_CLOSED          a reason (str): the server closed the stream or
                          the connection (after our close() or not).

EVENT_ERROR, EVENT_SEE_OTHER_HOST and EVENT_CLOSED are each the last event
of a session.

The session is a small state machine (``_NEXT`` says which state may follow
which, ``_ACCEPTS`` which first-level elements each state takes); anything
else is a ProtocolError and the error state is final.

Round trips. Login is pipelined where that is safe: ``<starttls/>`` goes with
the first stream header; after ``<success/>`` the new stream header and the
bind request go together without waiting for the new features. When the
caller pins one mechanism (``mechanisms=("PLAIN",)``) that may be used on
this stream, the SASL initial response also goes with the stream header
(XEP-0305 style), so a PLAIN login needs two round trips: one for
header+auth, one for header+bind. A pinned PLAIN goes out before the
server's offer is seen (the caller chose it; on a plaintext stream only with
insecure_plain); a pinned SCRAM carries nothing secret in its first message.
Security checks never wait for pipelining: with tls="required", features
without STARTTLS end the session before any credential is sent.

SASL2 (XEP-0388) with Bind2 (XEP-0386), used when the server offers it and
``sasl2`` is on: no stream restart, the resource is bound inside the
authentication, and what must follow <success/> (a bind request for a chosen
resource, a <resume/>, the initial presence) goes right behind the last SASL
message: a SCRAM login sends its presence after two round trips. The
features the server may send once after <success/> start XEP-0198.

Stream management (XEP-0198). Given an ``sm`` (xmpp_lite.sm), the session
resumes the stream that ``sm`` remembers (``<resume/>`` goes with the new
header after ``<success/>``, in place of the bind request) or, when there is
none or the server refuses, binds and sends ``<enable/>`` once bound, before
any stanza. Every stanza sent while it counts is kept in ``sm.unacked``
until acked; ``<r/>`` is answered; after a resumption or on a fresh stream
the unacked stanzas go out again, in order. With ``sm.hold_acks`` the
answer to an ``<r/>`` waits (``ack_owed``) and goes out with the next thing
we send (a stanza, an ``<r/>``, in place of a whitespace, before our stream
end), so that it shares a write; a driver sends it alone after a delay with
``send_whitespace()`` (xmpp_lite.keepalive.SEND_ACK).
"""

import binascii
import os

from xmpp_lite import __version__
from xmpp_lite import sm as xsm
from xmpp_lite import stream as xs
from xmpp_lite._compat import const
from xmpp_lite.parser import Parser, XMLError
from xmpp_lite.errors import AuthError
from xmpp_lite.sm import NS_SM, QueueFull  # noqa: F401 - QueueFull is part of this module's API
from xmpp_lite.stanza import NS_CLIENT, NS_STREAMS, Builder, error_reply, serialise
from xmpp_lite.stanza import iq as make_iq
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stanza import presence as make_presence
from xmpp_lite.stream import (
    NS_BIND2,
    NS_SASL,
    NS_SASL2,
    NS_TLS,
    ProtocolError,
    StreamError,
    split_host_port,
    split_jid,
)

# xmpp_lite.sasl (the mechanisms) is imported inside the methods that log in: importing the session does
# not load it, and a Client unloads it once online (xmpp_lite.unload).

TLS_REQUIRED = "required"  # STARTTLS, or no login at all
TLS_DIRECT = "direct"  # the transport is TLS from the first byte (XEP-0368)
TLS_NONE = "none"  # plaintext; PLAIN only with insecure_plain=True

EVENT_STARTTLS = const(1)
EVENT_ONLINE = const(2)
EVENT_MESSAGE = const(3)
EVENT_PRESENCE = const(4)
EVENT_IQ = const(5)
EVENT_SEE_OTHER_HOST = const(6)
EVENT_REGISTERED = const(7)
EVENT_HANDLER_ERROR = const(8)
EVENT_ERROR = const(9)
EVENT_CLOSED = const(10)
EVENT_RESUMED = const(11)

# Events not yet taken with next_event(). A driver takes them after each
# receive_data(); more than this means it does not, or a flood.
MAX_PENDING_EVENTS = 64
# Output waiting for the driver, in bytes. From OUTPUT_PAUSE_BYTES on,
# ``accepting_input`` is False: a driver stops feeding input until the output
# drains (backpressure: the server's TCP window then throttles the peer).
# From MAX_REPLY_BACKLOG on, an iq get/set is refused: no reply is built, the
# request is counted in ``refused_iqs`` (it happens only to a driver that
# feeds input regardless). Past MAX_PENDING_OUTPUT the session fails: the
# driver does not take its output at all.
OUTPUT_PAUSE_BYTES = 1024
MAX_REPLY_BACKLOG = 4096
MAX_PENDING_OUTPUT = 16384

# States.
_IDLE = const(0)  # start() not called yet
_OPENING = const(1)  # stream header sent; waiting for the features
_STARTTLS = const(2)  # <starttls/> sent; waiting for the features, then <proceed/>
_TLS = const(3)  # <proceed/> received; waiting for tls_established()
_AUTH = const(4)  # SASL exchange under way
_BIND = const(5)  # restarted after <success/>, bind request sent
_SESSION = const(6)  # legacy session request sent (RFC 3921)
_ONLINE = const(7)
_REGISTER = const(8)  # in-band registration under way (XEP-0077)
_RESUME = const(9)  # restarted after <success/>, <resume/> sent (XEP-0198)
_CLOSING = const(10)  # our </stream:stream> sent; waiting for the server's
_CLOSED = const(11)  # final
_ERROR = const(12)  # final

_STATE_NAMES = (
    "idle", "opening", "starttls", "tls", "auth", "bind", "session", "online", "register",
    "resume", "closing", "closed", "error",
)

# Which state may follow which. _CLOSING, _CLOSED and _ERROR may follow any
# state that is not final; nothing follows a final state.
_NEXT = {
    _IDLE: (_OPENING,),
    _OPENING: (_STARTTLS, _AUTH, _REGISTER),
    _STARTTLS: (_TLS,),
    _TLS: (_OPENING, _AUTH),
    _AUTH: (_BIND, _RESUME, _ONLINE),  # _ONLINE: bound inline by SASL2 with Bind2
    _BIND: (_SESSION, _ONLINE),
    _SESSION: (_ONLINE,),
    _ONLINE: (),
    _REGISTER: (),
    _RESUME: (_BIND, _ONLINE),
}

# First-level elements the server may send, by kind.
_K_FEATURES = const(1)
_K_PROCEED = const(2)
_K_TLS_FAILURE = const(3)
_K_CHALLENGE = const(4)
_K_SUCCESS = const(5)
_K_SASL_FAILURE = const(6)
_K_IQ = const(7)
_K_MESSAGE = const(8)
_K_PRESENCE = const(9)
_K_STREAM_ERROR = const(10)
_K_SM_ENABLED = const(11)
_K_SM_FAILED = const(12)
_K_SM_RESUMED = const(13)
_K_SM_REQUEST = const(14)
_K_SM_ANSWER = const(15)
_K_SASL2_CONTINUE = const(16)

# (namespace, local name) -> kind
_KINDS = {
    (NS_STREAMS, "features"): _K_FEATURES,
    (NS_STREAMS, "error"): _K_STREAM_ERROR,
    (NS_TLS, "proceed"): _K_PROCEED,
    (NS_TLS, "failure"): _K_TLS_FAILURE,
    (NS_SASL, "challenge"): _K_CHALLENGE,
    (NS_SASL, "success"): _K_SUCCESS,
    (NS_SASL, "failure"): _K_SASL_FAILURE,
    (NS_SASL2, "challenge"): _K_CHALLENGE,
    (NS_SASL2, "success"): _K_SUCCESS,
    (NS_SASL2, "failure"): _K_SASL_FAILURE,
    (NS_SASL2, "continue"): _K_SASL2_CONTINUE,
    (NS_CLIENT, "iq"): _K_IQ,
    (NS_CLIENT, "message"): _K_MESSAGE,
    (NS_CLIENT, "presence"): _K_PRESENCE,
    (NS_SM, "enabled"): _K_SM_ENABLED,
    (NS_SM, "failed"): _K_SM_FAILED,
    (NS_SM, "resumed"): _K_SM_RESUMED,
    (NS_SM, "r"): _K_SM_REQUEST,
    (NS_SM, "a"): _K_SM_ANSWER,
}

# Which kinds each state takes; a stream error is taken in every state, and
# in _CLOSING everything is dropped. Features come once per stream: _AUTH
# sees them only when the initial response went out with the header, and
# after a SASL2 success (no restart) the server may send them once more, in
# whatever state the client is then (_on_features checks that).
_ACCEPTS = {
    _OPENING: (_K_FEATURES,),
    _STARTTLS: (_K_FEATURES, _K_PROCEED, _K_TLS_FAILURE),
    _AUTH: (_K_FEATURES, _K_CHALLENGE, _K_SUCCESS, _K_SASL_FAILURE, _K_SASL2_CONTINUE),
    _BIND: (_K_FEATURES, _K_IQ),
    _SESSION: (_K_FEATURES, _K_IQ),
    _ONLINE: (_K_FEATURES, _K_IQ, _K_MESSAGE, _K_PRESENCE, _K_SM_ENABLED, _K_SM_FAILED, _K_SM_REQUEST,
              _K_SM_ANSWER),
    _REGISTER: (_K_IQ,),
    _RESUME: (_K_FEATURES, _K_SM_RESUMED, _K_SM_FAILED),
}

_ID_PREFIX_BYTES = const(3)  # random part of stanza ids: 6 hex digits


class IdSource:
    """Stanza ids: a random prefix and a counter, so ids from different sources do not collide."""

    def __init__(self):
        self._prefix = binascii.hexlify(os.urandom(_ID_PREFIX_BYTES)).decode()
        self._count = 0

    def next(self):
        self._count += 1
        return "%s%d" % (self._prefix, self._count)


class _Stop(Exception):
    """Raised from a parser callback to stop parsing once the session is over."""


class _Receiver:
    """The parser's handler: the Builder's, but text between stanzas goes to the session."""

    def __init__(self, builder, on_text):
        self.start = builder.start
        self.end = builder.end
        self.text = on_text


class Session:
    """One client-to-server stream; see the module docstring.

    ``jid`` is "local@domain" (a "/resource" part is used when ``resource``
    is None). ``tls`` is TLS_REQUIRED, TLS_DIRECT or TLS_NONE.
    ``insecure_plain`` allows SASL PLAIN on a stream without TLS.
    ``sasl_cache`` is the salted-key cache of xmpp_lite.sasl.
    ``mechanisms`` limits the SASL mechanisms (None: all that sasl supports);
    pinning exactly one lets the initial response ride with the stream header.
    ``software`` is the (name, version) that XEP-0092 reports and
    ``identity`` the XEP-0030 (category, type) (None: xmpp_lite.responder's default). ``registration`` is an
    xmpp_lite.register.Registration: the session then creates the account
    instead of logging in. ``client_nonce`` fixes the SCRAM nonce (tests).
    ``sm`` is an xmpp_lite.sm.StreamManagement shared by the sessions of
    one logical link: stream management is then used when the server offers
    it, and a stream it remembers is resumed.
    ``sasl2`` uses XEP-0388 (with XEP-0386 Bind2) when the server offers it.
    ``presence`` is the initial presence (an Element): sent once bound, or
    with our last SASL2 message where that is safe; not after a resumption,
    which keeps the old stream's presence.
    """

    def __init__(self, jid, password, resource=None, tls=TLS_REQUIRED, insecure_plain=False, sasl_cache=None,
                 software=None, identity=None, mechanisms=None, registration=None, client_nonce=None,
                 sm=None, sasl2=True, presence=None):
        local, domain, jid_resource = split_jid(jid)
        if not local or not domain:
            raise ValueError("the JID needs a local part and a domain: " + jid)
        if tls not in (TLS_REQUIRED, TLS_DIRECT, TLS_NONE):
            raise ValueError("tls must be 'required', 'direct' or 'none'")
        self.username = local
        self.domain = domain
        self.resource = resource if resource is not None else (jid_resource or None)
        self.tls = tls
        self.secure = tls == TLS_DIRECT
        self.insecure_plain = insecure_plain
        self.mechanisms = tuple(mechanisms) if mechanisms is not None else None
        self._software = software if software is not None else ("xmpp_lite", __version__)
        self._identity = identity
        self._iq_handlers = {}  # registered before the responder exists; it answers with this dict
        self._responder = None
        self.mechanism = None  # the SASL mechanism in use or used
        self.jid = None  # the bound full JID once online
        self.features = None  # the last <stream:features/> received
        self.stream_id = None  # the id of the server's current stream header
        self.flights = 0  # bursts of output that each followed new input: round trips taken
        self.login_round_trips = None  # flights before online (what <enable/> and stanzas ride on is the next)
        self.sm = sm
        self.resumed = False  # True once online by resuming the previous stream
        self.sasl2 = sasl2
        self.presence_sent = False  # the initial presence is out
        if sm is not None:
            sm.stream_ended()  # whatever the last connection was doing, this one starts afresh
        self._password = password
        self._sasl_cache = sasl_cache
        self._client_nonce = client_nonce
        self._registration = registration
        self._mech = None
        self._state = _IDLE
        self._events = []
        self._out = []  # bytes objects to send, in order; the first one from _out_offset on
        self._out_offset = 0
        self._out_bytes = 0
        self.refused_iqs = 0  # iq get/set not answered: the output backlog was full (see MAX_REPLY_BACKLOG)
        self.refused_stanzas = 0  # stanzas with more text than the device keeps (see _refuse_cut)
        self.alive_signs = 0  # complete stanzas and whitespace keepalives received: what proves the link alive
        self._input_since_output = True
        self._restart = False  # reset the parser after this chunk (after <proceed/>, <success/>)
        self._sent_close = False
        self._features_seen = False  # features already received on this stream
        self._session_needed = False
        self._pending_id = None  # id of our bind, session or registration request
        self._sm_offered = False  # the post-login features offer XEP-0198
        self._sm_waiting = False  # online by Bind2 before the post-login features: XEP-0198 starts with them
        self.ack_owed = False  # the server asked for an ack that waits for our next output (sm.hold_acks)
        self._presence = presence
        self._sasl2_on = False  # this login uses SASL2 (XEP-0388)
        self._bind2 = False  # our <authenticate/> asks for a Bind2 resource
        self._after_auth = _BIND  # the state a SASL2 <success/> leads to: what went out behind our last message
        self._ids = IdSource()
        self._builder = Builder(self._on_stanza, self._on_stream_start, self._on_stream_end)
        self._parser = Parser(_Receiver(self._builder, self._on_text))

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self):
        """The state's name ("online", "error", ...)."""
        return _STATE_NAMES[self._state]

    @property
    def responder(self):
        """The xmpp_lite.responder.Responder that answers iq get/set, imported at the first one (boards get few)."""
        if self._responder is None:
            from xmpp_lite.responder import Responder

            self._responder = Responder(self._software, self._identity, self._iq_handlers)
        return self._responder

    @property
    def sasl2_used(self):
        """True if this login uses SASL2 (XEP-0388) rather than the SASL of RFC 6120."""
        return self._sasl2_on

    @property
    def online(self):
        return self._state == _ONLINE

    @property
    def finished(self):
        """True once the session is closed or failed (final)."""
        return self._state >= _CLOSED

    def _go(self, new):
        old = self._state
        if old >= _CLOSED:
            raise ProtocolError("the session is over (%s)" % _STATE_NAMES[old])
        if new < _CLOSING and new not in _NEXT[old]:
            self._state = _ERROR
            raise ProtocolError("no transition from %s to %s" % (_STATE_NAMES[old], _STATE_NAMES[new]))
        self._state = new

    # -- I/O ---------------------------------------------------------------------------------

    def start(self):
        """Queue the stream header (and what may be pipelined with it)."""
        self._go(_OPENING)
        self._open_stream()
        if self.tls == TLS_REQUIRED and not self.secure:
            self._queue(xs.STARTTLS)  # carries nothing secret: it goes with the header
            self._go(_STARTTLS)
        else:
            self._pipeline_auth()

    def tls_established(self):
        """The driver upgraded the transport after EVENT_STARTTLS: restart the stream over TLS."""
        if self._state != _TLS:
            raise ProtocolError("tls_established() without a pending STARTTLS (state %s)" % self.state)
        self.secure = True
        self._open_stream()
        if not self._pipeline_auth():
            self._go(_OPENING)

    def receive_data(self, data):
        """Bytes from the server; b"" means the connection was closed."""
        if self._state >= _CLOSED:
            return
        if not data:
            # No stream end: the server may keep the stream for a resumption.
            self._closed("connection closed by the server", resumable=self._state != _CLOSING)
            return
        if self._state == _TLS:
            self._fail(ProtocolError("data from the server before the TLS handshake"))
            return
        self._input_since_output = True
        try:
            self._parser.feed(data)
        except XMLError as error:
            self._fail(error, xs.xml_error_condition(error))
            return
        except _Stop:
            return
        if self._restart:
            # After <proceed/> or <success/> the server sends nothing before
            # our new header, so the chunk ended with that element.
            self._restart = False
            self._parser.reset()
            self._builder.reset()
            self._features_seen = False

    @property
    def output_pending(self):
        """Bytes waiting to be taken with write_into() or data_to_send()."""
        return self._out_bytes

    @property
    def accepting_input(self):
        """False while OUTPUT_PAUSE_BYTES or more wait to be sent: feed no input until they drain."""
        return self._out_bytes < OUTPUT_PAUSE_BYTES

    def write_into(self, buf):
        """Copy waiting output into ``buf`` (a bytearray); returns how many bytes.

        What does not fit stays for the next call, in order. A driver copies
        into one preallocated buffer and writes that: no joined copy.
        """
        out = self._out
        size = len(buf)
        done = 0
        while out and done < size:
            chunk = out[0]
            start = self._out_offset
            count = min(len(chunk) - start, size - done)
            if start == 0 and count == len(chunk):
                buf[done:done + count] = chunk
                out.pop(0)
            else:
                buf[done:done + count] = memoryview(chunk)[start:start + count]
                if start + count == len(chunk):
                    out.pop(0)
                    self._out_offset = 0
                else:
                    self._out_offset = start + count
            done += count
        if done:
            self._out_bytes -= done
            if self._input_since_output:
                self.flights += 1
                self._input_since_output = False
        return done

    def data_to_send(self, max_bytes=None):
        """Bytes for the server (b"" if none): all that waits, or at most ``max_bytes``."""
        count = self._out_bytes if max_bytes is None else min(max_bytes, self._out_bytes)
        if not count:
            return b""
        buf = bytearray(count)
        self.write_into(buf)
        return bytes(buf)

    def next_event(self):
        """The next (kind, value) event, or None."""
        if self._events:
            return self._events.pop(0)
        return None

    def new_id(self):
        """A stanza id unique in this session."""
        return self._ids.next()

    def _on_text(self, text):
        builder = self._builder
        if builder._stack:
            builder.text(text)
        elif not text.strip():
            self.alive_signs += 1  # a whitespace keepalive between stanzas

    def _queue(self, data):
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > MAX_PENDING_OUTPUT and self._state < _CLOSED:
            self._fail(ProtocolError("more than %d bytes waiting to be sent" % MAX_PENDING_OUTPUT))

    def _queue_element(self, elem):
        self._send_stanza(serialise(elem, NS_CLIENT))

    def _event(self, kind, value):
        if len(self._events) >= MAX_PENDING_EVENTS:
            self._fail(ProtocolError("more than %d events not taken" % MAX_PENDING_EVENTS), "resource-constraint")
            return
        self._events.append((kind, value))

    def _open_stream(self):
        self._queue(xs.stream_header(self.domain, self.username + "@" + self.domain if self.secure else None))

    # -- ending -----------------------------------------------------------------------------------

    def close(self):
        """Close the stream (</stream:stream>); EVENT_CLOSED follows when the server closes its own."""
        if self._state >= _CLOSING:
            return
        if self._state == _IDLE:
            self._state = _CLOSED
            return
        self._settle_ack()  # else the server may think our last stanzas lost and deliver them again
        self._send_close()
        self._go(_CLOSING)
        self._end_sm(False)  # our stream end ends the server's XEP-0198 session

    def _send_close(self):
        if not self._sent_close and self._state != _IDLE:
            self._sent_close = True
            self._out.append(xs.STREAM_END)
            self._out_bytes += len(xs.STREAM_END)

    def _fail(self, error, condition=None):
        """End the session: optional stream error, our stream end, EVENT_ERROR."""
        if self._state >= _CLOSED:
            return
        if condition is not None and not self._sent_close:
            error_bytes = xs.stream_error(condition)
            self._out.append(error_bytes)
            self._out_bytes += len(error_bytes)
        self._send_close()
        self._state = _ERROR
        self._end_sm(False)  # a stream error ends the server's XEP-0198 session too
        self._events.append((EVENT_ERROR, error))

    def _closed(self, reason, resumable=False):
        if self._state >= _CLOSED:
            return
        if self._state != _ONLINE and self._state != _CLOSING:
            reason += " (during %s)" % _STATE_NAMES[self._state]
        self._state = _CLOSED
        self._end_sm(resumable)
        self._events.append((EVENT_CLOSED, reason))

    def _end_sm(self, resumable):
        if self.sm is not None:
            if resumable:
                self.sm.stream_ended()
            else:
                self.sm.forget()

    # -- parser callbacks ------------------------------------------------------------------------

    def _on_stream_start(self, name, attrs):
        problem = xs.check_stream_header(name, attrs)
        if problem is not None:
            self._fail(ProtocolError(problem[1]), problem[0])
            raise _Stop()
        self.stream_id = attrs.get("id")

    def _on_stream_end(self):
        self._send_close()
        self._closed("stream closed by the server")
        raise _Stop()

    def _on_stanza(self, elem):
        self.alive_signs += 1
        state = self._state
        if state == _CLOSING:
            return  # our stream is closed: nothing more is delivered or answered
        kind = _KINDS.get((elem.xmlns, elem.local))
        if self._builder.cut:
            self._refuse_cut(elem, kind, state)
            if self._state >= _CLOSED:
                raise _Stop()
            return
        if self._restart:
            self._fail(ProtocolError("<%s/> before the stream restart" % elem.name), "policy-violation")
        elif kind == _K_STREAM_ERROR:
            self._on_stream_error(elem)
        elif kind is None or kind not in _ACCEPTS.get(state, ()):
            self._fail(ProtocolError("unexpected <%s/> in state %s" % (elem.name, self.state)),
                       "unsupported-stanza-type")
        elif kind == _K_MESSAGE:
            self._count_received()
            self._event(EVENT_MESSAGE, elem)
        elif kind == _K_PRESENCE:
            self._count_received()
            self._event(EVENT_PRESENCE, elem)
        elif kind == _K_IQ:
            if state == _ONLINE:
                self._count_received()
            self._on_iq(elem)
        elif _K_SM_ENABLED <= kind <= _K_SM_ANSWER:
            self._on_sm(kind, elem)
        elif kind == _K_FEATURES:
            self._on_features(elem)
        elif kind == _K_PROCEED:
            self._go(_TLS)
            self._restart = True
            self._event(EVENT_STARTTLS, None)
        elif kind == _K_TLS_FAILURE:
            self._fail(ProtocolError("the server could not start TLS"))
        elif (elem.xmlns == NS_SASL2) != self._sasl2_on:
            self._fail(ProtocolError("<%s xmlns='%s'/> in a %s login" % (
                elem.local, elem.xmlns, "SASL2" if self._sasl2_on else "SASL")), "unsupported-stanza-type")
        elif kind == _K_CHALLENGE:
            self._on_challenge(elem)
        elif kind == _K_SUCCESS:
            self._on_success(elem)
        elif kind == _K_SASL2_CONTINUE:
            self._fail(AuthError("invalid-mechanism", "the server asks for SASL2 tasks; none is supported"))
        else:  # _K_SASL_FAILURE
            if self._mech is not None:
                self._mech.discard_cache()
            self._mech = None
            from xmpp_lite import sasl

            self._fail(sasl.failure(elem))
        if self._state >= _CLOSED:
            raise _Stop()

    def _refuse_cut(self, elem, kind, state):
        """A stanza with more text than the Builder keeps (stanza.MAX_STANZA_TEXT): refused whole.

        Online, a message, presence or iq is counted as received (XEP-0198: it
        was handled, by refusing it) and in ``refused_stanzas``, an iq get/set
        is answered with resource-constraint, and nothing reaches the
        application. Anything else (a login element) ends the stream.
        """
        if state == _ONLINE and kind in (_K_MESSAGE, _K_PRESENCE, _K_IQ):
            self._count_received()
            self.refused_stanzas += 1
            if kind == _K_IQ and elem.get("type") in ("get", "set") and self._out_bytes < MAX_REPLY_BACKLOG:
                self._queue_element(error_reply(elem, "wait", "resource-constraint"))
            return
        self._fail(ProtocolError("<%s/> with more text than the device keeps" % elem.name), "resource-constraint")

    def _on_stream_error(self, elem):
        condition, text, host = xs.read_stream_error(elem)
        if condition == "see-other-host" and host:
            self._send_close()
            self._state = _ERROR
            self._events.append((EVENT_SEE_OTHER_HOST, split_host_port(host)))
            return
        self._fail(StreamError(condition, text))

    # -- negotiation ----------------------------------------------------------------------------

    def _on_features(self, features):
        if self._features_seen:
            self._fail(ProtocolError("stream features twice"), "policy-violation")
            return
        self._features_seen = True
        self.features = features
        state = self._state
        if state == _STARTTLS:
            if xs.tls_offer(features) == xs.TLS_NOT_OFFERED:
                # Stripped STARTTLS (or a server without TLS): never log in in the clear.
                self._fail(ProtocolError("the server offers no STARTTLS and tls='required': "
                                         "refusing to continue unencrypted"))
            return  # <proceed/> follows
        if state == _AUTH:
            return  # the pipelined initial response is out: its answer follows
        if state != _OPENING:
            # The features of the logged-in stream: after the restart, or once after a SASL2 success.
            self._sm_offered = features.find("sm", NS_SM) is not None
            if state == _ONLINE:
                if self._sm_waiting:
                    self._sm_waiting = False
                    self._start_sm()
                return
            if state == _BIND and not self._sasl2_on:  # with SASL2 the bind request is already out
                if not xs.offers_bind(features):
                    self._fail(ProtocolError("the server offers no resource binding"))
                    return
                self._session_needed = xs.session_required(features)
            return  # _RESUME: <resumed/> or <failed/> follows; _BIND, _SESSION: their result
        # _OPENING: TLS is settled; authenticate (or register).
        if not self.secure and xs.tls_offer(features) == xs.TLS_MANDATORY:
            self._fail(ProtocolError("the server requires TLS and tls='none'"))
            return
        if self._registration is not None:
            self._start_registration()
            return
        from xmpp_lite import sasl

        offer = sasl.sasl2_offer(features) if self.sasl2 else None
        if offer is not None:
            offered = sasl.mechanism_names(offer)
            self._sasl2_on = True
            sm = self.sm
            # Bind2 picks the resource itself; a resumption needs no new one.
            self._bind2 = (sasl.sasl2_offers_bind2(offer) and self.resource is None
                           and not (sm is not None and sm.resumable))
        else:
            offered = sasl.offered_mechanisms(features)
        if self.mechanisms is not None:
            offered = [name for name in offered if name in self.mechanisms]
        try:
            name = sasl.choose_mechanism(offered, allow_plain=self._plain_allowed())
        except AuthError as error:
            self._fail(error)
            return
        self._send_auth(name)

    def _plain_allowed(self):
        return self.secure or self.insecure_plain

    def _pipeline_auth(self):
        """Send the initial response with the header if one mechanism is pinned and allowed here."""
        if self._registration is not None or self.mechanisms is None or len(self.mechanisms) != 1:
            return False
        name = self.mechanisms[0]
        from xmpp_lite import sasl

        if name not in sasl.supported_mechanisms() or (name == "PLAIN" and not self._plain_allowed()):
            return False
        self._send_auth(name)
        return True

    def _send_auth(self, name):
        from xmpp_lite import sasl

        try:
            self._mech = sasl.Mechanism(name, self.username, self._password, salted_cache=self._sasl_cache,
                                        client_nonce=self._client_nonce)
            initial = self._mech.initial()
        except ValueError as error:  # e.g. a NUL in the password for PLAIN
            self._fail(AuthError(sasl.INVALID_MECHANISM, str(error)))
            return
        self.mechanism = name
        self._password = None  # the mechanism holds what it needs
        if self._sasl2_on:
            self._queue(sasl.authenticate(name, initial, sasl.BIND2 if self._bind2 else b""))
            self._go(_AUTH)
            self._after_last_message()
            return
        self._queue(sasl.auth(name, initial))
        self._go(_AUTH)

    def _on_challenge(self, elem):
        from xmpp_lite import sasl

        try:
            answer = self._mech.challenge(sasl.b64decode(elem.text))
        except AuthError as error:
            self._fail(error)
            return
        self._queue(sasl.response(answer, NS_SASL2 if self._sasl2_on else NS_SASL))
        if self._sasl2_on:
            self._after_last_message()

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
        sm = self.sm
        if sm is not None and sm.resumable:
            self._queue(xsm.resume(sm.handled, sm.id))
            self._after_auth = _RESUME
            return  # a resumed stream keeps its presence; after <failed/> it goes once bound
        if not self._bind2:
            self._request_bind()
            self._after_auth = _BIND
        else:
            self._after_auth = _ONLINE
        self._send_initial_presence()

    def _send_initial_presence(self):
        if self._presence is not None and not self.presence_sent:
            if self.login_round_trips is None:
                self.login_round_trips = self.flights  # the first stanza rides on the next flight
            self.presence_sent = True
            self._send_stanza(serialise(self._presence, NS_CLIENT))

    def _on_success(self, elem):
        if self._sasl2_on:
            self._on_sasl2_success(elem)
            return
        from xmpp_lite import sasl

        try:
            self._mech.success(sasl.b64decode(elem.text))
        except AuthError as error:
            self._fail(error)
            return
        self._mech = None
        # Restart without waiting: the new header and the bind (or resume) request go together.
        self._restart = True
        self._open_stream()
        sm = self.sm
        if sm is not None and sm.resumable:
            self._queue(xsm.resume(sm.handled, sm.id))
            self._go(_RESUME)
            return
        self._send_bind()

    def _on_sasl2_success(self, elem):
        from xmpp_lite import sasl

        try:
            self._mech.success(sasl.b64decode(elem.find_text("additional-data") or ""))
        except AuthError as error:
            self._fail(error)
            return
        self._mech = None
        self._features_seen = False  # no restart; the server may send the logged-in features once
        after = self._after_auth
        if after != _ONLINE:
            self._go(after)  # the <resume/> or bind request is out: its answer follows
            return
        failed = elem.find("failed", NS_BIND2)
        if elem.find("bound", NS_BIND2) is None:
            reason = xs.error_condition(failed) if failed is not None else "no <bound/> in <success/>"
            self._fail(ProtocolError("resource binding failed: " + reason))
            return
        self.jid = xs.valid_full_jid(elem.find_text("authorization-identifier"), self.domain)
        if self.jid is None:
            self._fail(ProtocolError("the SASL2 success has no valid full JID"))
            return
        # XEP-0198 goes on with the logged-in features, if the server sends them.
        self._go_online(self.sm is not None)

    def _send_bind(self):
        self._request_bind()
        self._go(_BIND)

    def _request_bind(self):
        # One character: unique in the stream, as every IdSource id is longer (RFC 6120 8.1.3).
        self._pending_id = "b"
        self._queue_element(xs.bind_request(self._pending_id, self.resource))

    def _on_bound(self, iq):
        if iq.get("type") != "result":
            self._fail(ProtocolError("resource binding failed: " + xs.error_condition(iq)))
            return
        self.jid = xs.bound_jid(iq, self.domain)
        if self.jid is None:
            self._fail(ProtocolError("the bind result has no valid JID"))
        elif self._session_needed:
            self._pending_id = self.new_id()
            self._queue_element(xs.session_request(self._pending_id))
            self._go(_SESSION)
        else:
            self._go_online()

    def _go_online(self, sm_later=False):
        self._go(_ONLINE)
        if sm_later:
            self._sm_waiting = True
        else:
            self._start_sm()
        self._send_initial_presence()
        if self.login_round_trips is None:
            self.login_round_trips = self.flights
        self._event(EVENT_ONLINE, self.jid)

    def _start_sm(self):
        sm = self.sm
        if sm is not None:
            pending = sm.unacked
            sm.unacked = []
            if self._sm_offered:
                # Before any stanza, so that both counts start at the same place.
                self._queue(xsm.ENABLE)
                sm.start_fresh()
            else:
                sm.forget()
            for data in pending:  # not known to have arrived: a fresh stream sends them again
                self._send_stanza(data)

    # -- stream management (XEP-0198; the bookkeeping is in xmpp_lite.sm) -------------------------

    def _count_received(self):
        if self.sm is not None:
            self.sm.received_stanza()

    def _on_sm(self, kind, elem):
        sm = self.sm
        if sm is None or (kind != _K_SM_REQUEST and kind != _K_SM_ANSWER and not sm.counting
                          and self._state == _ONLINE):
            self._fail(ProtocolError("stream management <%s/> that was not asked for" % elem.local),
                       "unsupported-stanza-type")
            return
        if kind == _K_SM_REQUEST:
            if sm.counting:
                if sm.hold_acks and self._state == _ONLINE:
                    self.ack_owed = True  # rides with our next output (see the module docstring)
                else:
                    self._queue(xsm.answer(sm.handled))
        elif kind == _K_SM_ANSWER:
            h = xsm.parse_h(elem)
            if h is None or not sm.ack(h):
                self._fail(ProtocolError("the server acks %s stanzas; %d were sent unacked"
                                         % (elem.get("h"), len(sm.unacked))), "undefined-condition")
        elif kind == _K_SM_ENABLED:
            resume = elem.get("resume")
            sm.confirm(elem.get("id") if resume == "true" or resume == "1" else None, self.jid)
        elif kind == _K_SM_RESUMED:
            self._on_resumed(elem)
        elif self._state == _RESUME:  # _K_SM_FAILED: the server no longer knows the stream
            h = xsm.parse_h(elem)
            if h is not None:
                sm.ack(h)  # XEP-0198 1.6: what the old stream delivered need not go again
            sm.forget()
            self._send_bind()
        else:  # _K_SM_FAILED for <enable/>
            sm.give_up_stream()

    def _on_resumed(self, elem):
        sm = self.sm
        h = xsm.parse_h(elem)
        if elem.get("previd") != sm.id or h is None or not sm.ack(h):
            self._fail(ProtocolError("a <resumed/> that does not fit the stream (previd %s, h %s)"
                                     % (elem.get("previd"), elem.get("h"))), "undefined-condition")
            return
        sm.resumed()
        self.jid = sm.jid
        self.resumed = True
        for data in sm.unacked:  # the server did not get these: again, in order
            self._queue(data)
        self._go(_ONLINE)
        self.login_round_trips = self.flights
        self._event(EVENT_RESUMED, self.jid)

    def _send_stanza(self, data, from_app=False):
        """Queue a serialised stanza for the server; kept until acked while stream management counts."""
        sm = self.sm
        if sm is None or not sm.counting:
            self._queue(data)
            return
        if from_app and not sm.has_room():
            raise QueueFull("%d stanzas wait for an ack from the server" % len(sm.unacked))
        self._settle_ack()
        self._queue(data)
        if sm.sent_stanza(data):
            self._queue(xsm.REQUEST)
        if sm.overflowing():
            self._fail(ProtocolError("the server acks nothing: %d stanzas unacked" % len(sm.unacked)),
                       "resource-constraint")

    def request_ack(self):
        """Queue an XEP-0198 <r/>; False (nothing queued) when stream management is not on."""
        if self._state != _ONLINE or self.sm is None or not self.sm.counting:
            return False
        self._settle_ack()
        self._queue(xsm.REQUEST)
        self.sm.requested()
        return True

    def send_whitespace(self):
        """Queue one space between stanzas (RFC 6120 4.6.1): keeps a NAT mapping alive for one byte.

        An ack that waits (``ack_owed``) goes in its place: it keeps the mapping as well.
        """
        if self._state != _ONLINE:
            raise ProtocolError("cannot send while " + self.state)
        if not self._settle_ack():
            self._queue(b" ")

    def _settle_ack(self):
        """Queue the ack that waits, if one does; True if it did."""
        if not self.ack_owed:
            return False
        self.ack_owed = False
        if self.sm is None or not self.sm.counting:
            return False
        self._queue(xsm.answer(self.sm.handled))
        return True

    # -- in-band registration (the protocol itself is in xmpp_lite.register) ---------------------

    def _start_registration(self):
        if not self.secure and not self.insecure_plain:
            self._fail(ProtocolError("in-band registration sends the password: refused without TLS "
                                     "unless insecure_plain=True"))
            return
        self._pending_id = self.new_id()
        self._queue_element(self._registration.request(self.features, self._pending_id))
        self._go(_REGISTER)

    def _on_registration_answer(self, iq):
        try:
            reply = self._registration.receive(iq, self.username, self._password)
        except Exception as error:  # RegistrationError, or a form this client cannot fill in
            self._fail(error)
            return
        if reply is None:
            self._password = None
            self._event(EVENT_REGISTERED, self.username)
            self.close()
            return
        self._pending_id = self.new_id()
        reply.set("id", self._pending_id)
        self._queue_element(reply)

    # -- stanzas ----------------------------------------------------------------------------------

    def _on_iq(self, iq):
        kind = iq.get("type")
        if kind == "result" or kind == "error":
            state = self._state
            if state != _ONLINE and iq.get("id") == self._pending_id:
                if state == _BIND:
                    self._on_bound(iq)
                elif state == _SESSION:
                    if kind == "result":
                        self._go_online()
                    else:
                        self._fail(ProtocolError("session establishment failed: " + xs.error_condition(iq)))
                else:
                    self._on_registration_answer(iq)
            else:
                self._event(EVENT_IQ, iq)  # never answered (RFC 6120 8.2.3)
        elif kind == "get" or kind == "set":
            if self._out_bytes >= MAX_REPLY_BACKLOG:
                self.refused_iqs += 1  # no reply is built that cannot be sent (see MAX_REPLY_BACKLOG)
                return
            reply, error = self.responder.answer(iq)
            self._queue_element(reply)
            if error is not None:
                self._event(EVENT_HANDLER_ERROR, (iq, error))
        elif kind is not None and iq.get("id") is not None:
            if self._out_bytes >= MAX_REPLY_BACKLOG:
                self.refused_iqs += 1
                return
            self._queue_element(error_reply(iq, "modify", "bad-request"))

    def register_iq_handler(self, xmlns, fn):
        """Answer iq get/set in ``xmlns`` with ``fn(iq) -> reply Element`` (see Responder.register)."""
        self._iq_handlers[xmlns] = fn

    # -- sending ----------------------------------------------------------------------------------

    def send(self, elem):
        """Send a stanza (an Element); only while online.

        With stream management on, raises QueueFull (and sends nothing) when
        ``sm.max_unacked`` stanzas already wait for an ack.
        """
        if self._state != _ONLINE:
            raise ProtocolError("cannot send while " + self.state)
        self._send_stanza(serialise(elem, NS_CLIENT), True)

    def send_message(self, to, body, type="chat", payload=None):
        """Send a <message/>; returns its id."""
        stanza_id = self.new_id()
        self.send(make_message(to=to, body=body, type=type, id=stanza_id, payload=payload))
        return stanza_id

    def send_presence(self, status=None, show=None, priority=None, payload=None, to=None, type=None):
        """Send a <presence/> (broadcast when ``to`` is None)."""
        self.send(make_presence(to=to, type=type, show=show, status=status, priority=priority, payload=payload))

    def send_iq(self, type, payload=None, to=None):
        """Send an <iq/> get or set; returns its id. The answer comes as EVENT_IQ."""
        if type != "get" and type != "set":
            raise ValueError("send_iq sends get or set; answers are made by iq handlers")
        stanza_id = self.new_id()
        self.send(make_iq(type, stanza_id, to=to, payload=payload))
        return stanza_id
