"""The stream-level vocabulary of RFC 6120 that outlives the login: no state here.

The error classes, JID splitting, the stream end. Stream errors, read and
written, and host:port splitting (a redirect) are xmpp_lite.streamerror's,
loaded when a stream ends in an error. What only a login uses (stream headers, features, STARTTLS,
resource binding, the legacy session) is in xmpp_lite.login and the SASL and
SASL2 elements in xmpp_lite.sasl, both loaded only while logging in.
"""

from xmpp_lite.errors import ConditionError

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
