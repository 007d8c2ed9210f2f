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

# FATAL_STREAM_ERRORS (stream errors that a reconnection would only repeat) and RETRY_AUTH_CONDITIONS
# (SASL failures that a later attempt may not repeat) are xmpp_lite.streamerror's, loaded when such an
# error has ended a stream; both names are importable from here too.

# MemoryError too: a connection failure (drop, collect, back off, reconnect), never a permanent stop.
RETRYABLE = (OSError, StreamError, ProtocolError, XMLError, MemoryError)


def is_fatal(error):
    """True for errors that reconnecting cannot cure (see xmpp_lite.robust's docstring)."""
    if isinstance(error, AuthError) or isinstance(error, StreamError):
        # Not for a MemoryError: this import may not fail for want of heap.
        from xmpp_lite import streamerror

        if isinstance(error, AuthError):
            return error.condition not in streamerror.RETRY_AUTH_CONDITIONS
        return error.condition in streamerror.FATAL_STREAM_ERRORS
    return not isinstance(error, RETRYABLE)


def __getattr__(name):
    # FATAL_STREAM_ERRORS and RETRY_AUTH_CONDITIONS: see above. Nothing else (CPython's import asks for
    # __path__ and the like, which must not load anything).
    if name != "FATAL_STREAM_ERRORS" and name != "RETRY_AUTH_CONDITIONS":
        raise AttributeError(name)
    from xmpp_lite import streamerror

    return getattr(streamerror, name)
