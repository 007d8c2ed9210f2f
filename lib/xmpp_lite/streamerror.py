"""What a link that goes wrong needs, and only then: stream errors (RFC 6120 4.9) read and written,
where a see-other-host sends us, the session's end for a breach of the protocol, the refusal of stanzas
with more text than the device keeps, the errors of a dead or stalled link, and which errors are fatal.

Loaded on demand, when a stream ends in an error (ours or the server's), a stanza is refused or a link
is found dead: a link that goes well never needs it. xmpp_lite.client unloads it again after the next
connection attempt (on MicroPython).
"""

import errno

from xmpp_lite._compat import const
from xmpp_lite.session import EVENT_SEE_OTHER_HOST, EVENT_STARTTLS, MAX_REPLY_BACKLOG
from xmpp_lite.stanza import error_reply, escape_text
from xmpp_lite.stream import ProtocolError, StreamError

# Stream errors that a reconnection would only repeat (xmpp_lite.linkstate.is_fatal).
FATAL_STREAM_ERRORS = ("conflict", "not-authorized", "host-unknown", "invalid-from")
# SASL failures that a later attempt may not repeat: "try again later" (RFC 6120 6.5.12), and what this
# client finds wrong in the server's side of SCRAM (a broken or impostor server: it must not stop a device
# for good).
RETRY_AUTH_CONDITIONS = ("temporary-auth-failure", "malformed-challenge", "nonce-mismatch",
                         "bad-iteration-count", "server-signature-mismatch", "incorrect-encoding")

_ERROR = const(12)  # xmpp_lite.session's final error state (xmpp_lite.login has the same numbers)

NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"

MAX_PORT = 65535


def split_host_port(text):
    """(host, port or None) from "host", "host:port", "[v6]:port" or a bare IPv6 address."""
    text = text.strip()
    port = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return text, None
        host = text[1:close]
        rest = text[close + 1:]
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text
    if port is not None:
        port = int(port) if port.isdigit() and 0 < int(port) <= MAX_PORT else None
    return host, port


def stream_error(condition, text=None):
    """The bytes of a <stream:error/> (the stream end is not included)."""
    payload = "<%s xmlns='%s'/>" % (condition, NS_STREAM_ERRORS)
    if text:
        payload += "<text xmlns='%s'>%s</text>" % (NS_STREAM_ERRORS, escape_text(text))
    return ("<stream:error>%s</stream:error>" % payload).encode()


def read_condition(elem, xmlns):
    """(condition element, text) of an error: ``elem``'s children in ``xmlns``.

    Stanza errors (RFC 6120 8.3) and stream errors (4.9) both carry one
    defined-condition child and an optional ``<text/>`` in their namespace.
    The condition element is None when there is none.
    """
    condition = None
    text = ""
    for child in elem.children:
        if child.xmlns == xmlns:
            if child.local == "text":
                text = child.text
            else:
                condition = child
    return condition, text


def read_stream_error(elem):
    """(condition, text, see-other-host address or "") of a received <stream:error/>."""
    found, text = read_condition(elem, NS_STREAM_ERRORS)
    if found is None:
        return "undefined-condition", text, ""
    host = found.text.strip() if found.local == "see-other-host" else ""
    return found.local, text, host


def on_stream_error(session, elem):
    """The server's <stream:error/> while online: a redirect (see-other-host) or the session's end."""
    condition, text, host = read_stream_error(elem)
    if condition == "see-other-host" and host:
        session._send_close()
        session._end(_ERROR, (EVENT_SEE_OTHER_HOST, split_host_port(host)), True)  # the new host may resume
        return
    session._fail(StreamError(condition, text))


def xml_error_condition(error):
    """The stream error condition for an XMLError from the parser.

    Parser messages that mean "forbidden by XMPP" or "over a cap" rather than
    "not well-formed" (see xmpp_lite.parser); the rest are not-well-formed.
    """
    if getattr(error, "condition", None):
        return error.condition  # the parser named it (text between stanzas: bad-format)
    message = str(error)
    if message.find("not allowed in XMPP") >= 0 or message.find("undefined entity") >= 0:
        return "restricted-xml"
    if message.find("UTF-8 only") >= 0:
        return "unsupported-encoding"
    for fragment in ("larger than", "more than", "deeper than", "longer than"):
        if message.find(fragment) >= 0:
            return "policy-violation"
    return "not-well-formed"


def violation(session, reason, elem=None):
    """End ``session`` for a breach of the protocol by the server: ``reason`` says which (see below)."""
    sm = session.sm
    if reason == "early":
        error, condition = "data from the server before the TLS handshake", None
    elif reason == "features":
        error, condition = "stream features twice", "policy-violation"
    elif reason == "unexpected":
        error, condition = "unexpected <%s/> in state online" % elem.name, "unsupported-stanza-type"
    elif reason == "unasked":
        error, condition = "stream management <%s/> that was not asked for" % elem.local, "unsupported-stanza-type"
    elif reason == "ack":
        error = "the server acks %s stanzas; %d were sent unacked" % (elem.get("h"), len(sm.unacked))
        condition = "undefined-condition"
    else:  # "no acks": even the session's own replies would not fit in what waits for an ack
        error, condition = "the server acks nothing: %d stanzas unacked" % len(sm.unacked), "resource-constraint"
    session._fail(ProtocolError(error), condition)


def refuse_cut(session, elem, online_stanza):
    """A stanza or login element with more text than the Builder keeps (stanza.MAX_STANZA_TEXT).

    Online, a stanza (``online_stanza``) is counted as received (XEP-0198: it was handled, by refusing
    it) and in ``refused_stanzas``, an iq get/set is answered with resource-constraint, and nothing
    reaches the application. Anything else (a login element) ends the stream.
    """
    if not online_stanza:
        session._fail(ProtocolError("<%s/> with more text than the device keeps" % elem.name), "resource-constraint")
        return
    if session.sm is not None:
        session.sm.received_stanza()
    session.refused_stanzas += 1
    if elem.local == "iq" and elem.get("type") in ("get", "set") and session.output_pending < MAX_REPLY_BACKLOG:
        session._queue_element(error_reply(elem, "wait", "resource-constraint"))


def say_refused(client, refused):
    """Print how many stanzas the client's session refused so far (xmpp_lite.client calls it at the 1st,
    10th, 100th, ...: a flood must not become a flood of lines, and of heap)."""
    session = client.session
    print("xmpp_lite: %d stanzas refused so far (%d iq requests while the output backlog was full, "
          "%d with more text than the device keeps)" % (refused, session.refused_iqs, session.refused_stanzas))
    client._refused_seen = refused


def link_error(code, limit):
    """The OSError of a link found dead (ETIMEDOUT: no answer within ``limit`` ms of a probe) or stalled
    (ENOBUFS: more than ``limit`` bytes the socket would not take)."""
    if code == errno.ETIMEDOUT:
        return OSError(code, "no answer from the server within %d ms of a probe: the link is dead" % limit)
    return OSError(code, "more than %d bytes unsent: the link is stalled" % limit)


def client_ends(client, kind, value):
    """Raise what ends an xmpp_lite.client.Client's connection for ``kind``: EVENT_STARTTLS with data
    behind <proceed/>, or EVENT_SEE_OTHER_HOST (a redirect while connecting, a StreamError once online)."""
    if kind == EVENT_STARTTLS:
        # Plaintext behind <proceed/> would be read as if it came over TLS.
        client._drop()
        raise ProtocolError("the server sent data after <proceed/>, before TLS")
    client._flush_quietly()
    client._drop()
    if client._deadline is None:
        raise StreamError("see-other-host", "%s:%s" % value)
    from xmpp_lite.connecting import Redirect

    raise Redirect(value[0], value[1])
