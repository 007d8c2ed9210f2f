"""The stream-level vocabulary of RFC 6120 that outlives the login: no state here.

Stream errors, read and written; the error classes; JID and host:port
splitting. What only a login uses (stream headers, features, STARTTLS,
resource binding, the legacy session) is in xmpp_lite.login and the SASL and
SASL2 elements in xmpp_lite.sasl, both loaded only while logging in.
"""

from xmpp_lite.errors import ConditionError
from xmpp_lite.stanza import escape_text, read_condition

NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"

MAX_PORT = 65535

STREAM_END = b"</stream:stream>"


class ProtocolError(Exception):
    """Something happened that the protocol (or the session's state) does not allow.

    Raised locally for misuse (sending before online, tls_established() out of
    turn); reported as the session's error when the server breaks the
    protocol or a security rule stops the login (no STARTTLS while TLS is
    required).
    """


class StreamError(ConditionError):
    """The server ended the stream with <stream:error/> (RFC 6120 4.9).

    ``condition`` is the defined condition ("host-unknown", "conflict", ...),
    ``text`` the optional description.
    """


# -- addresses -----------------------------------------------------------------------------------------


def split_jid(jid):
    """(local, domain, resource) of a JID string; local and resource may be ""."""
    slash = jid.find("/")
    resource = ""
    if slash >= 0:
        resource = jid[slash + 1:]
        jid = jid[:slash]
    at = jid.find("@")
    local = ""
    if at >= 0:
        local = jid[:at]
        jid = jid[at + 1:]
    return local, jid.lower(), resource


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


# -- stream errors ---------------------------------------------------------------------------------------


def stream_error(condition, text=None):
    """The bytes of a <stream:error/> (the stream end is not included)."""
    payload = "<%s xmlns='%s'/>" % (condition, NS_STREAM_ERRORS)
    if text:
        payload += "<text xmlns='%s'>%s</text>" % (NS_STREAM_ERRORS, escape_text(text))
    return ("<stream:error>%s</stream:error>" % payload).encode()


def read_stream_error(elem):
    """(condition, text, see-other-host address or "") of a received <stream:error/>."""
    found, text = read_condition(elem, NS_STREAM_ERRORS)
    if found is None:
        return "undefined-condition", text, ""
    host = found.text.strip() if found.local == "see-other-host" else ""
    return found.local, text, host


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
