"""The argument checks of both drivers' constructors and of the link's timing policy (Backoff, Heartbeat).

They run once, when each is made (at boot, as a rule): loaded then and, on MicroPython, unloaded again
as soon as the check is done, so that the device keeps no code for it while online. Their errors are
one-line ValueErrors.
"""

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, const
from xmpp_lite.stream import split_jid

_MAX_SERVERS = const(8)  # servers given that are tried (more are left out): xmpp_lite.dns.MAX_SERVERS


def check_client(jid, tls, host, servers, port):
    """(the JID's domain, the servers to try) for xmpp_lite.client.Client and xmpp_lite.aio.AsyncClient.

    The servers: [(host, port, tls), ...] from ``host``, or from ``servers`` (entries "host", "host:port",
    "[v6]:port" or (host, port)); None when neither is given (a DNS lookup at connect, xmpp_lite.dns).
    ValueError for options that no connection can use.
    """
    # Unloaded before the check runs: the running function lives on until it returns. Not on CPython,
    # where RAM is plenty and other threads (the fleet's devices) may be importing this module now.
    if MICROPYTHON:
        unload(__name__)
    local, domain, _ = split_jid(jid)
    if not local or not domain:
        raise ValueError("the JID needs a local part and a domain: " + jid)
    if tls not in ("required", "direct", "none"):
        raise ValueError("tls must be 'required', 'direct' or 'none'")
    if host and servers:
        raise ValueError("give host or servers, not both")
    if host:
        return domain, [(host, port, tls)]
    if not servers:
        return domain, None
    out = []
    for entry in servers[:_MAX_SERVERS]:
        if not isinstance(entry, str):
            out.append((entry[0], entry[1], tls))
            continue
        if entry.startswith("["):  # "[2001:db8::1]:5222"
            name, _, given = entry[1:].partition("]")
            given = given[1:]
        elif entry.count(":") == 1:
            name, _, given = entry.partition(":")
        else:  # a name, or an IPv6 address without a port
            name, given = entry, ""
        if not name or given and not given.isdigit():
            raise ValueError("bad server %r: \"host\" or \"host:port\"" % entry)
        out.append((name, int(given) if given else port, tls))
    return domain, out


def check_backoff(*settings):
    """Raise ValueError for settings that xmpp_lite.backoff.Backoff cannot work with.

    ``settings``: initial_ms, max_ms, factor, jitter (positional: an argument's name is interned for good).
    """
    if MICROPYTHON:
        unload(__name__)  # as check_client's
    initial_ms, max_ms, factor, jitter = settings
    if initial_ms <= 0 or max_ms < initial_ms:
        raise ValueError("need 0 < initial_ms <= max_ms")
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if not 0 <= jitter <= 1:
        raise ValueError("jitter must be between 0 and 1")


def check_heartbeat(*settings):
    """Raise ValueError for settings that xmpp_lite.keepalive.Heartbeat cannot work with.

    ``settings``: ws_interval_ms, probe_interval_ms, probe_timeout_ms, nat_timeout_ms, ride_ms,
    ack_delay_ms (positional, as check_backoff's).
    """
    if MICROPYTHON:
        unload(__name__)  # as check_client's
    for index in range(len(settings)):
        value = settings[index]
        if value is not None and value < 0:
            raise ValueError(("ws_interval_ms", "probe_interval_ms", "probe_timeout_ms", "nat_timeout_ms",
                              "ride_ms", "ack_delay_ms")[index] + " must not be negative")
    if settings[1] and not settings[2]:
        raise ValueError("a probe needs a probe_timeout_ms")

