"""What the two link drivers share: xmpp_lite.robust (a poll loop) and xmpp_lite.aio (asyncio tasks).

Their states, their timeouts, and which errors stop a link for good rather
than being retried (see xmpp_lite.robust's docstring). Kept apart from both
drivers so that either one loads without the other.
"""

from xmpp_lite.parser import XMLError
from xmpp_lite.sasl import AuthError
from xmpp_lite.stream import ProtocolError, StreamError

STATE_OFFLINE = "offline"  # waiting for the next connection attempt
STATE_ONLINE = "online"
STATE_STOPPED = "stopped"  # not started, closed, or stopped by a fatal error (see ``error``)

DEFAULT_PORT = 5222
CONNECT_TIMEOUT_MS = 30000  # one connection attempt
# close() waits at most this long for the server to ack what is unacked.
CLOSE_ACK_TIMEOUT_MS = 2000

# Stream errors that a reconnection would only repeat.
FATAL_STREAM_ERRORS = ("conflict", "not-authorized", "host-unknown", "invalid-from")
# The one SASL failure that says "try again later" (RFC 6120 6.5.12).
RETRY_AUTH_CONDITIONS = ("temporary-auth-failure",)

RETRYABLE = (OSError, StreamError, ProtocolError, XMLError)


def is_fatal(error):
    """True for errors that reconnecting cannot cure (see xmpp_lite.robust's docstring)."""
    if isinstance(error, AuthError):
        return error.condition not in RETRY_AUTH_CONDITIONS
    if isinstance(error, StreamError):
        return error.condition in FATAL_STREAM_ERRORS
    return not isinstance(error, RETRYABLE)
