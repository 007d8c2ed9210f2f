"""What the two link drivers share: xmpp_lite.robust (a poll loop) and xmpp_lite.aio (asyncio tasks).

Their states, their timeouts, which errors stop a link for good rather
than being retried (see xmpp_lite.robust's docstring), and where to connect
(a server list, or DNS SRV: see xmpp_lite.client's docstring). Kept apart
from both drivers so that either one loads without the other.
"""

from xmpp_lite.parser import XMLError
from xmpp_lite.errors import AuthError
from xmpp_lite.stream import ProtocolError, StreamError, split_jid

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


MAX_SERVERS = 8  # servers given or found by SRV that are tried; more are left out


def parse_servers(servers, port, tls):
    """[(host, port, tls), ...] from entries "host", "host:port", "[v6]:port" or (host, port)."""
    out = []
    for entry in servers[:MAX_SERVERS]:
        if not isinstance(entry, str):
            out.append((entry[0], entry[1], tls))
            continue
        if entry.startswith("["):  # "[2001:db8::1]:5222"
            host, _, given = entry[1:].partition("]")
            given = given[1:]
        elif entry.count(":") == 1:
            host, _, given = entry.partition(":")
        else:  # a name, or an IPv6 address without a port
            host, given = entry, ""
        if not host or given and not given.isdigit():
            raise ValueError("bad server %r: \"host\" or \"host:port\"" % entry)
        out.append((host, int(given) if given else port, tls))
    return out


def is_address(host):
    """True for an IPv4 or IPv6 address (never looked up in DNS), False for a name."""
    return host.find(":") >= 0 or host.replace(".", "").isdigit()


def find_servers(domain, port, tls, nameserver=None):
    """Where to connect for ``domain`` by DNS: [(host, port, tls), ...] (see xmpp_lite.dns).

    SRV records first; without any, the domain's A record on ``port``; when
    the name server cannot be asked, the domain itself (the system resolver
    may know it). localhost names and addresses are never looked up (RFC
    6761 6.3). Raises xmpp_lite.dns.NoService when the domain offers no XMPP.
    """
    host = domain
    if domain != "localhost" and not domain.endswith(".localhost") and not is_address(domain):
        from xmpp_lite import dns

        nameserver = nameserver or dns.default_nameserver()
        if nameserver:
            try:
                found = dns.xmpp_servers(domain, nameserver, tls)
                if found:
                    return [(name, number, "direct" if direct else tls)
                            for name, number, direct in found[:MAX_SERVERS]]
                answers = dns.query(nameserver, domain, dns.TYPE_A)  # no SRV: the domain's A record
                if answers:
                    host = answers[0][1]
            except dns.NoService:
                raise
            except OSError:  # no answer, or no route to the name server: the system resolver may know the domain
                pass
    return [(host, port, tls)]


def check_options(jid, tls, host, servers):
    """The JID's domain; ValueError for options that no connection can use (both drivers' constructors)."""
    local, domain, _ = split_jid(jid)
    if not local or not domain:
        raise ValueError("the JID needs a local part and a domain: " + jid)
    if tls not in ("required", "direct", "none"):
        raise ValueError("tls must be 'required', 'direct' or 'none'")
    if host and servers:
        raise ValueError("give host or servers, not both")
    return domain
