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

The session is a small state machine (the ``go`` of xmpp_lite.login and of
xmpp_lite.bind says which state may follow which while logging in, their
``on_element`` which first-level elements each state takes); anything else is
a ProtocolError and the error state is final. This module keeps what runs
while online; the login (stream negotiation, STARTTLS, SASL, binding,
resumption, registration) is in xmpp_lite.login (to the SASL outcome, and
with SASL2 to online) and xmpp_lite.bind (after a classic SASL restart, or
for a resumption), loaded by each Session (bind only when the login needs it)
and, on MicroPython, unloaded with xmpp_lite.sasl once the session is online
or over.

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

from xmpp_lite import sm as xsm
from xmpp_lite._compat import MICROPYTHON, const
from xmpp_lite.parser import Parser, XMLError
from xmpp_lite.sm import NS_SM, QueueFull  # noqa: F401 - QueueFull is part of this module's API
from xmpp_lite.stanza import NS_CLIENT, NS_STREAMS, Builder, error_reply, serialise
from xmpp_lite.stanza import iq as make_iq
from xmpp_lite.stanza import message as make_message
from xmpp_lite.stanza import presence as make_presence
from xmpp_lite.stream import STREAM_END, ProtocolError, StreamError  # noqa: F401 - StreamError: API

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
MAX_PENDING_EVENTS = const(64)
# Output waiting for the driver, in bytes. From OUTPUT_PAUSE_BYTES on,
# ``accepting_input`` is False: a driver stops feeding input until the output
# drains (backpressure: the server's TCP window then throttles the peer).
# From MAX_REPLY_BACKLOG on, an iq get/set is refused: no reply is built, the
# request is counted in ``refused_iqs`` (it happens only to a driver that
# feeds input regardless). Past MAX_PENDING_OUTPUT the session fails: the
# driver does not take its output at all.
OUTPUT_PAUSE_BYTES = const(1024)
MAX_REPLY_BACKLOG = const(4096)
MAX_PENDING_OUTPUT = const(16384)

# States (xmpp_lite.login has the same numbers).
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

# The states' names, in that order: one string, split when a name is needed (rarely).
_STATE_NAMES = "idle opening starttls tls auth bind session online register resume closing closed error"

_ID_PREFIX_BYTES = const(3)  # random part of stanza ids: 6 hex digits


class IdSource:
    """Stanza ids: a random prefix and a counter, so ids from different sources do not collide."""

    def __init__(self):
        self._prefix = binascii.hexlify(os.urandom(_ID_PREFIX_BYTES)).decode()
        self._count = 0

    def next(self):
        self._count += 1
        return "%s%d" % (self._prefix, self._count)


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
        self.sm = sm
        self._software = software  # None: ("xmpp_lite", its version), filled in by the responder
        self._identity = identity
        self._iq_handlers = {}  # registered before the responder exists; it answers with this dict
        self._responder = None  # xmpp_lite.responder.Responder, imported at the first iq get/set (boards get few)
        self.mechanism = None  # the SASL mechanism in use or used
        self.sasl2_used = False  # this login uses SASL2 (XEP-0388) rather than the SASL of RFC 6120
        self.jid = None  # the bound full JID once online
        self.username = None  # the JID's local part: set by the login
        self.stream_id = None  # the id of the server's current stream header
        self.flights = 0  # bursts of output that each followed new input: round trips taken
        self.login_round_trips = None  # flights before online (what <enable/> and stanzas ride on is the next)
        self.resumed = False  # True once online by resuming the previous stream
        self.presence_sent = False  # the initial presence is out
        self._state = _IDLE
        self._events = []
        self._out = []  # bytes objects to send, in order; the first one from _out_offset on
        self._out_offset = 0
        self.output_pending = 0  # bytes waiting to be taken with write_into() or data_to_send()
        self.refused_iqs = 0  # iq get/set not answered: the output backlog was full (see MAX_REPLY_BACKLOG)
        self.refused_stanzas = 0  # stanzas with more text than the device keeps (see _on_stanza)
        self.alive_signs = 0  # complete stanzas and whitespace keepalives received: what proves the link alive
        self._input_since_output = True
        self._sent_close = False
        self._features_seen = False  # features already received on this stream
        self._sm_offered = False  # the post-login features offer XEP-0198
        self._sm_waiting = False  # online by Bind2 before the post-login features: XEP-0198 starts with them
        self.ack_owed = False  # the server asked for an ack that waits for our next output (sm.hold_acks)
        self._ids = IdSource()
        builder = self._builder = Builder(self._on_stanza, None, self._on_stream_end)
        builder.text = self._on_text  # the parser's handler is the builder, but text between stanzas comes here
        self._parser = Parser(builder)
        # The login's code is loaded after what stays while online: once unloaded, it leaves one free
        # stretch of heap rather than holes between the session's objects.
        from xmpp_lite.login import Login

        # Checks the JID and tls, sets username, tls and secure, and takes the stream header callback.
        self._login = Login(self, jid, password, resource, tls, insecure_plain, sasl_cache, mechanisms,
                            registration, client_nonce, sasl2, presence)
        if sm is not None:
            sm.stream_ended()  # whatever the last connection was doing, this one starts afresh

    # -- state ------------------------------------------------------------------------------

    def __getattr__(self, name):
        # The computed attributes, in one function: on a board a property each costs more heap.
        if name == "state":  # the state's name ("online", "error", ...)
            return _STATE_NAMES.split()[self._state]
        if name == "online":
            return self._state == _ONLINE
        if name == "finished":  # True once the session is closed or failed (final)
            return self._state >= _CLOSED
        if name == "accepting_input":
            # False while OUTPUT_PAUSE_BYTES or more wait to be sent: feed no input until they drain.
            return self.output_pending < OUTPUT_PAUSE_BYTES
        raise AttributeError(name)

    def _drop_login(self):
        """Online or over: the login's code goes (on MicroPython: unloaded until the next Session)."""
        login = self._login
        if login is not None:
            self._login = None
            self._builder.on_stream_start = None
            if MICROPYTHON:
                # Not on CPython, where RAM is plenty and other threads (the fleet's devices) may be
                # importing these modules at this moment.
                login.unload()

    # -- I/O ---------------------------------------------------------------------------------

    def start(self):
        """Queue the stream header (and what may be pipelined with it)."""
        if self._login is None:
            raise ProtocolError("the session is over (%s)" % self.state)
        self._login.start()

    def tls_established(self):
        """The driver upgraded the transport after EVENT_STARTTLS: restart the stream over TLS."""
        if self._state != _TLS:
            raise ProtocolError("tls_established() without a pending STARTTLS (state %s)" % self.state)
        self._login.tls_established()

    def receive_data(self, data):
        """Bytes from the server; b"" means the connection was closed."""
        state = self._state
        if state >= _CLOSED:
            return
        if not data:
            # No stream end: the server may keep the stream for a resumption.
            self._closed("connection closed by the server", state != _CLOSING)
            return
        if state == _TLS:
            self._violation("early")
            return
        self._input_since_output = True
        try:
            self._parser.feed(data)
        except XMLError as error:
            from xmpp_lite.streamerror import xml_error_condition

            self._fail(error, xml_error_condition(error))
            return
        except EOFError:  # raised by our parser callbacks once the session is over
            return
        if self._login is not None:
            self._login.after_chunk()

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
            self.output_pending -= done
            if self._input_since_output:
                self.flights += 1
                self._input_since_output = False
        return done

    def data_to_send(self, max_bytes=None):
        """Bytes for the server (b"" if none): all that waits, or at most ``max_bytes``."""
        count = self.output_pending if max_bytes is None else min(max_bytes, self.output_pending)
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
            Builder.text(builder, text)
        elif not text.strip():
            self.alive_signs += 1  # a whitespace keepalive between stanzas

    def _queue(self, data):
        self._out.append(data)
        self.output_pending += len(data)
        if self.output_pending > MAX_PENDING_OUTPUT and self._state < _CLOSED:
            self._fail(ProtocolError("more than %d bytes waiting to be sent" % MAX_PENDING_OUTPUT))

    def _queue_element(self, elem):
        self._send_stanza(serialise(elem, NS_CLIENT))

    def _event(self, kind, value):
        if len(self._events) >= MAX_PENDING_EVENTS:
            self._fail(ProtocolError("more than %d events not taken" % MAX_PENDING_EVENTS), "resource-constraint")
            return
        self._events.append((kind, value))

    # -- ending -----------------------------------------------------------------------------------

    def close(self):
        """Close the stream (</stream:stream>); EVENT_CLOSED follows when the server closes its own."""
        state = self._state
        if state >= _CLOSING:
            return
        if state == _IDLE:
            self._end(_CLOSED, None, True)
            return
        self._settle_ack()  # else the server may think our last stanzas lost and deliver them again
        self._send_close()
        self._end(_CLOSING)  # our stream end ends the server's XEP-0198 session

    def _send_close(self):
        if not self._sent_close and self._state != _IDLE:
            self._sent_close = True
            self._out.append(STREAM_END)
            self.output_pending += len(STREAM_END)

    def _fail(self, error, condition=None):
        """End the session: optional stream error, our stream end, EVENT_ERROR."""
        if self._state >= _CLOSED:
            return
        if condition is not None and not self._sent_close:
            from xmpp_lite.streamerror import stream_error  # a stream that goes well never needs it

            error_bytes = stream_error(condition)
            self._out.append(error_bytes)
            self.output_pending += len(error_bytes)
        self._send_close()
        self._end(_ERROR, (EVENT_ERROR, error))  # a stream error ends the server's XEP-0198 session too

    def _violation(self, reason, elem=None):
        # The server broke the protocol: the messages and stream errors are xmpp_lite.streamerror's.
        from xmpp_lite.streamerror import violation

        violation(self, reason, elem)

    def _closed(self, reason, resumable=False):
        state = self._state
        if state >= _CLOSED:
            return
        if state != _ONLINE and state != _CLOSING:
            reason += " (during %s)" % self.state
        self._end(_CLOSED, (EVENT_CLOSED, reason), resumable)

    def _end(self, state, event=None, resumable=False):
        """Go to closing, closed or error, with its last event; the login's code goes.

        The XEP-0198 session ends with the stream, unless the stream may be resumed.
        """
        self._state = state
        sm = self.sm
        if sm is not None:
            if resumable:
                sm.stream_ended()
            else:
                sm.forget()
        if event is not None:
            self._events.append(event)
        self._drop_login()

    # -- parser callbacks (the stream header goes to the login) -----------------------------------

    def _on_stream_end(self):
        self._send_close()
        self._closed("stream closed by the server")
        raise EOFError  # stops the parser: see receive_data

    def _on_stanza(self, elem):
        self.alive_signs += 1
        state = self._state
        if state == _CLOSING:
            return  # our stream is closed: nothing more is delivered or answered
        xmlns = elem.xmlns
        local = elem.local
        stanza = xmlns == NS_CLIENT and (local == "message" or local == "presence" or local == "iq")
        sm = self.sm
        if self._builder.cut:
            # More text than the Builder keeps (stanza.MAX_STANZA_TEXT): refused whole.
            from xmpp_lite.streamerror import refuse_cut

            refuse_cut(self, elem, state == _ONLINE and stanza)
        elif state != _ONLINE:
            self._login.on_element(elem)
        elif xmlns == NS_STREAMS and local == "error":
            self._on_stream_error(elem)
        elif stanza:
            if sm is not None:
                sm.received_stanza()
            if local == "iq":
                self._on_iq(elem)
            else:
                self._event(EVENT_MESSAGE if local == "message" else EVENT_PRESENCE, elem)
        elif xmlns == NS_SM and (local == "r" or local == "a" or local == "enabled" or local == "failed"):
            self._on_sm(local, elem)
        elif xmlns == NS_STREAMS and local == "features":
            # Once after a SASL2 success (no restart): the logged-in stream's features.
            if self._features_seen:
                self._violation("features")
            else:
                self._features_seen = True
                self._sm_offered = elem.find("sm", NS_SM) is not None
                if self._sm_waiting:
                    self._sm_waiting = False
                    self._start_sm()
        else:
            self._violation("unexpected", elem)
        if self._state >= _CLOSED:
            raise EOFError  # stops the parser: see receive_data

    def _on_stream_error(self, elem):
        from xmpp_lite.streamerror import on_stream_error

        on_stream_error(self, elem)

    # -- stream management (XEP-0198; the bookkeeping is in xmpp_lite.sm) -------------------------

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

    def _on_sm(self, local, elem):
        """<r/>, <a/>, <enabled/> or <failed/> (to our <enable/>) while online."""
        sm = self.sm
        if sm is None or (local != "r" and local != "a" and not sm.counting):
            self._violation("unasked", elem)
        elif local == "r":
            if sm.counting:
                if sm.hold_acks:
                    self.ack_owed = True  # rides with our next output (see the module docstring)
                else:
                    self._queue(xsm.answer(sm.handled))
        elif local == "a":
            h = xsm.parse_h(elem)
            if h is None or not sm.ack(h):
                self._violation("ack", elem)
        elif local == "enabled":
            resume = elem.get("resume")
            sm.confirm(elem.get("id") if resume == "true" or resume == "1" else None, self.jid)
        else:  # <failed/> for <enable/>
            sm.give_up_stream()

    def _send_stanza(self, data, from_app=False):
        """Queue a serialised stanza for the server; kept until acked while stream management counts."""
        sm = self.sm
        if sm is None or not sm.counting:
            self._queue(data)
            return
        if from_app and len(sm.unacked) >= sm.max_unacked:
            raise QueueFull("%d stanzas wait for an ack from the server" % len(sm.unacked))
        self._settle_ack()
        self._queue(data)
        if sm.sent_stanza(data):
            self._queue(xsm.REQUEST)
        if len(sm.unacked) >= 2 * sm.max_unacked:  # even our own replies would not fit: the server does not ack
            self._violation("no acks")

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

    # -- stanzas ----------------------------------------------------------------------------------

    def _on_iq(self, iq):
        """An iq that is not the answer to a login request."""
        kind = iq.get("type")
        if kind == "result" or kind == "error":
            self._event(EVENT_IQ, iq)  # never answered (RFC 6120 8.2.3)
        elif kind is not None and (kind == "get" or kind == "set" or iq.get("id") is not None):
            if self.output_pending >= MAX_REPLY_BACKLOG:
                self.refused_iqs += 1  # no reply is built that cannot be sent (see MAX_REPLY_BACKLOG)
            elif kind == "get" or kind == "set":
                responder = self._responder
                if responder is None:
                    from xmpp_lite import __version__
                    from xmpp_lite.responder import Responder

                    responder = self._responder = Responder(self._software or ("xmpp_lite", __version__),
                                                            self._identity, self._iq_handlers)
                reply, error = responder.answer(iq)
                self._queue_element(reply)
                if error is not None:
                    self._event(EVENT_HANDLER_ERROR, (iq, error))
            else:
                self._queue_element(error_reply(iq, "modify", "bad-request"))

    def register_iq_handler(self, xmlns, fn):
        """Answer iq get/set in ``xmlns`` with ``fn(iq) -> reply Element`` (see xmpp_lite.responder.Responder)."""
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
