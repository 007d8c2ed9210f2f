"""The argument checks of the link's timing policy (Backoff, Heartbeat), with their one-line errors.

They run once, when each is made (at boot, as a rule): loaded then and, on MicroPython, unloaded again
as soon as the check is done, so that the device keeps no code for it while online.
"""

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON


def check_backoff(initial_ms, max_ms, factor, jitter):
    """Raise ValueError for settings that xmpp_lite.backoff.Backoff cannot work with."""
    _done()
    if initial_ms <= 0 or max_ms < initial_ms:
        raise ValueError("need 0 < initial_ms <= max_ms")
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if not 0 <= jitter <= 1:
        raise ValueError("jitter must be between 0 and 1")


def check_heartbeat(ws_interval_ms, probe_interval_ms, probe_timeout_ms, nat_timeout_ms, ride_ms, ack_delay_ms):
    """Raise ValueError for settings that xmpp_lite.keepalive.Heartbeat cannot work with."""
    _done()
    for name, value in (("ws_interval_ms", ws_interval_ms), ("probe_interval_ms", probe_interval_ms),
                        ("probe_timeout_ms", probe_timeout_ms), ("nat_timeout_ms", nat_timeout_ms),
                        ("ride_ms", ride_ms), ("ack_delay_ms", ack_delay_ms)):
        if value is not None and value < 0:
            raise ValueError(name + " must not be negative")
    if probe_interval_ms and not probe_timeout_ms:
        raise ValueError("a probe needs a probe_timeout_ms")


def _done():
    # Unloaded before the check runs: the running function lives on until it returns. Not on CPython,
    # where RAM is plenty and other threads (the fleet's devices) may be importing this module now.
    if MICROPYTHON:
        unload(__name__)
