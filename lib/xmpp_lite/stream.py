"""The stream-level vocabulary of RFC 6120, read and written: no state here.

Stream headers, features, STARTTLS, resource binding, the legacy session,
stream errors; the error classes; JID and host:port splitting. The SASL and
SASL2 elements are in xmpp_lite.sasl, which is loaded only while logging in.
xmpp_lite.session decides what to send when; this module only knows the
shapes.
"""

from xmpp_lite.errors import ConditionError
from xmpp_lite.stanza import NS_CLIENT, NS_STANZAS, NS_STREAMS, Element, read_condition
from xmpp_lite.stanza import iq as make_iq

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388, Extensible SASL Profile
NS_BIND2 = "urn:xmpp:bind:0"  # XEP-0386, Bind 2

# Largest JID accepted in a bind result (RFC 7622: three parts of 1023 bytes).
MAX_JID_BYTES = 3071
MAX_PORT = 65535

STREAM_END = b"</stream:stream>"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

# No XML declaration before a header (RFC 6120 11.5: SHOULD, not MUST): it would
# only say XML 1.0 in UTF-8, which the stream is anyway (11.6), and costs 21 B.
_HEADER = (
    "<stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s'%s>"
)

# Parser messages that mean "forbidden by XMPP" or "over a cap" rather than
# "not well-formed" (see xmpp_lite.parser); the rest are not-well-formed.
_XML_ERROR_CONDITIONS = (
    ("not allowed in XMPP", "restricted-xml"),
    ("undefined entity", "restricted-xml"),
    ("UTF-8 only", "unsupported-encoding"),
    ("larger than", "policy-violation"),
    ("more than", "policy-violation"),
    ("deeper than", "policy-violation"),
    ("longer than", "policy-violation"),
)

TLS_NOT_OFFERED = 0
TLS_OFFERED = 1
TLS_MANDATORY = 2


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


# -- stream header and stream errors ---------------------------------------------------------------


def _attr(value):
    return value.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


def _text(value):
    return value.replace("&", "&amp;").replace("<", "&lt;")


def stream_header(domain, sender=None):
    """Our stream header; ``sender`` (our bare JID) only where no one else can read it (RFC 6120 4.7.1)."""
    return (_HEADER % (_attr(domain), "" if sender is None else " from='%s'" % _attr(sender))).encode()


def check_stream_header(name, attrs):
    """None if the server's stream header is one we talk to, else (stream error condition, reason)."""
    colon = name.find(":")
    namespace = attrs.get("xmlns:" + name[:colon]) if colon >= 0 else attrs.get("xmlns")
    if name[colon + 1:] != "stream" or namespace != NS_STREAMS:
        return "invalid-namespace", "not an XMPP stream: <" + name + ">"
    if attrs.get("xmlns") != NS_CLIENT:
        return "invalid-namespace", "the stream is not in jabber:client"
    version = attrs.get("version", "")
    if version.split(".")[0] != "1":
        return "unsupported-version", "the server does not speak XMPP 1.0 (version '" + version + "')"
    return None


def stream_error(condition, text=None):
    """The bytes of a <stream:error/> (the stream end is not included)."""
    payload = "<%s xmlns='%s'/>" % (condition, NS_STREAM_ERRORS)
    if text:
        payload += "<text xmlns='%s'>%s</text>" % (NS_STREAM_ERRORS, _text(text))
    return ("<stream:error>%s</stream:error>" % payload).encode()


def read_stream_error(elem):
    """(condition, text, see-other-host address or "") of a received <stream:error/>."""
    found, text = read_condition(elem, NS_STREAM_ERRORS)
    if found is None:
        return "undefined-condition", text, ""
    host = found.text.strip() if found.local == "see-other-host" else ""
    return found.local, text, host


def xml_error_condition(error):
    """The stream error condition for an XMLError from the parser."""
    if getattr(error, "condition", None):
        return error.condition  # the parser named it (text between stanzas: bad-format)
    message = str(error)
    for fragment, condition in _XML_ERROR_CONDITIONS:
        if message.find(fragment) >= 0:
            return condition
    return "not-well-formed"


# -- features ------------------------------------------------------------------------------------------


def tls_offer(features):
    """TLS_NOT_OFFERED, TLS_OFFERED or TLS_MANDATORY (<starttls><required/>)."""
    starttls = features.find("starttls", NS_TLS)
    if starttls is None:
        return TLS_NOT_OFFERED
    return TLS_MANDATORY if starttls.find("required") is not None else TLS_OFFERED


def offers_bind(features):
    return features.find("bind", NS_BIND) is not None


def session_required(features):
    """True if the legacy session (RFC 3921) is offered and not marked <optional/>."""
    session = features.find("session", NS_SESSION)
    return session is not None and session.find("optional") is None


# -- binding ---------------------------------------------------------------------------------------------


def bind_request(stanza_id, resource=None):
    bind = Element("bind", xmlns=NS_BIND)
    if resource:
        bind.append(Element("resource", text=resource))
    return make_iq("set", stanza_id, payload=bind)


def bound_jid(iq, domain):
    """The full JID of a bind result if it is valid for ``domain``, else None."""
    bind = iq.find("bind", NS_BIND)
    return valid_full_jid(bind.find_text("jid") if bind is not None else None, domain)


def valid_full_jid(jid, domain):
    """``jid`` if it is a full JID at ``domain``, else None."""
    if not jid or len(jid) > MAX_JID_BYTES:
        return None
    local, jid_domain, resource = split_jid(jid)
    if jid_domain != domain or not resource:
        return None
    return jid


def session_request(stanza_id):
    return make_iq("set", stanza_id, payload=Element("session", xmlns=NS_SESSION))


def error_condition(stanza):
    """The defined condition of an error stanza (RFC 6120 8.3.3), or "undefined-condition"."""
    error = stanza.find("error")
    if error is not None:
        for child in error.children:
            if child.xmlns == NS_STANZAS and child.local != "text":
                return child.local
    return "undefined-condition"
