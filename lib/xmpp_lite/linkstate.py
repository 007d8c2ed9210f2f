"""What the two link drivers share: xmpp_lite.robust (a poll loop) and xmpp_lite.aio (asyncio tasks).

Their states, their timeouts, and which errors stop a link for good rather
than being retried (see xmpp_lite.robust's docstring). Kept apart from both
drivers so that either one loads without the other; where to connect is
xmpp_lite.connecting's, loaded only while connecting.
"""

from xmpp_lite.parser import XMLError
from xmpp_lite.errors import AuthError
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
# SASL failures that a later attempt may not repeat: "try again later" (RFC 6120 6.5.12), and what this
# client finds wrong in the server's side of SCRAM (a broken or impostor server: it must not stop a device
# for good).
RETRY_AUTH_CONDITIONS = ("temporary-auth-failure", "malformed-challenge", "nonce-mismatch",
                         "bad-iteration-count", "server-signature-mismatch", "incorrect-encoding")

# MemoryError too: a connection failure (drop, collect, back off, reconnect), never a permanent stop.
RETRYABLE = (OSError, StreamError, ProtocolError, XMLError, MemoryError)


def is_fatal(error):
    """True for errors that reconnecting cannot cure (see xmpp_lite.robust's docstring)."""
    if isinstance(error, AuthError):
        return error.condition not in RETRY_AUTH_CONDITIONS
    if isinstance(error, StreamError):
        return error.condition in FATAL_STREAM_ERRORS
    return not isinstance(error, RETRYABLE)
