"""Finding a domain's XMPP servers by DNS SRV, with a small UDP query of our own.

MicroPython's ``getaddrinfo`` resolves names to addresses only: no SRV. This
module asks a name server itself (RFC 1035, one UDP datagram each way) for

- ``_xmpps-client._tcp.DOMAIN``: servers that speak TLS from the first byte (XEP-0368);
- ``_xmpp-client._tcp.DOMAIN``: servers that offer STARTTLS (RFC 6120 3.2.1);

merges both lists, orders them by priority and weight (RFC 2782) and resolves
each target's A record (from the answer's additional section when the server
put it there). No SRV record at all: the client falls back to the domain itself
on port 5222. A single record whose target is "." says the service is not
offered at that domain. The drivers load this module only for a lookup
(neither ``host`` nor ``servers`` given) and, on MicroPython, unload it
again before the login; the servers given are checked by xmpp_lite.checks.

    servers = xmpp_servers("example.net", "192.168.1.1")   # [(host, port, direct_tls), ...]

Only what the peer sends is parsed, and every read is bounds-checked: an
answer is at most MAX_MESSAGE_BYTES, a name at most MAX_NAME_BYTES after at
most MAX_NAME_JUMPS compression pointers, and at most MAX_RECORDS records of
an answer are kept. Anything else is a DNSError (an OSError: the client treats
it as it treats any network failure).
"""

import os
import select
import socket

from xmpp_lite._compat import const, ticks_diff, ticks_ms

DNS_PORT = 53
QUERY_TIMEOUT_MS = 2000  # per datagram sent; a lost one is sent again
QUERY_TRIES = 2
MAX_MESSAGE_BYTES = 512  # a UDP answer without EDNS (RFC 1035 4.2.1); longer answers arrive truncated
MAX_RECORDS = 8  # answer records kept per lookup
MAX_NAME_BYTES = 255  # RFC 1035 2.3.4
MAX_NAME_JUMPS = 16  # compression pointers followed in one name; more is a loop
RESOLV_CONF = "/etc/resolv.conf"
MAX_SERVERS = 8  # servers given or found by SRV that are tried; more are left out

TYPE_A = const(1)
TYPE_SRV = const(33)
_CLASS_IN = const(1)
_HEADER_BYTES = const(12)
_FLAG_RESPONSE = const(0x8000)
_FLAG_TRUNCATED = const(0x0200)
_RCODE_MASK = const(0x000F)
_RCODE_NXDOMAIN = const(3)


class DNSError(OSError):
    """The name server did not answer, or answered something we cannot use."""


class NoService(DNSError):
    """The domain's SRV record says it offers no XMPP service (target ".")."""


def build_query(ident, name, qtype):
    """One question (``qtype`` for ``name``) with recursion desired, as the bytes of a datagram."""
    labels = name.rstrip(".").split(".")
    out = bytearray(_HEADER_BYTES)
    out[0] = ident >> 8
    out[1] = ident & 0xFF
    out[2] = 0x01  # RD: recursion desired
    out[5] = 1  # QDCOUNT
    for label in labels:
        data = label.encode()
        if not 0 < len(data) < 64:
            raise DNSError("bad domain name: " + name)
        out.append(len(data))
        out.extend(data)
    if len(out) - _HEADER_BYTES + 1 > MAX_NAME_BYTES:
        raise DNSError("domain name too long: " + name)
    out.extend(bytes((0, 0, qtype, 0, _CLASS_IN)))
    return bytes(out)


def _u16(packet, at):
    if at + 2 > len(packet):
        raise DNSError("truncated DNS answer")
    return (packet[at] << 8) | packet[at + 1]


def _name(packet, at):
    """The name at ``at`` (following compression pointers) and the offset just past it in place."""
    labels = []
    size = 0
    end = None
    jumps = 0
    while True:
        if at >= len(packet):
            raise DNSError("truncated DNS name")
        length = packet[at]
        if length & 0xC0 == 0xC0:
            jumps += 1
            if jumps > MAX_NAME_JUMPS:
                raise DNSError("DNS name compression loops")
            if end is None:
                end = at + 2
            at = _u16(packet, at) & 0x3FFF
            continue
        if length & 0xC0:
            raise DNSError("bad DNS label type")
        at += 1
        if length == 0:
            break
        size += length + 1
        if size > MAX_NAME_BYTES or at + length > len(packet):
            raise DNSError("bad DNS name")
        try:
            labels.append(bytes(packet[at:at + length]).decode())
        except UnicodeError:  # a ValueError: it must not pass for a fatal error in the client
            raise DNSError("bad DNS name")
        at += length
    return ".".join(labels), (at if end is None else end)


def parse_answer(packet, ident, qtype):
    """The records of type ``qtype`` in a response to query ``ident``: a list of (owner, value).

    SRV values are (priority, weight, port, target); A values are dotted
    addresses. Records of the additional section are included (name servers
    put the targets' addresses there). NXDOMAIN is an empty list.
    """
    if len(packet) < _HEADER_BYTES or len(packet) > MAX_MESSAGE_BYTES:
        raise DNSError("DNS answer of %d bytes" % len(packet))
    if _u16(packet, 0) != ident:
        raise DNSError("DNS answer to another query")
    flags = _u16(packet, 2)
    if not flags & _FLAG_RESPONSE:
        raise DNSError("DNS query where an answer was expected")
    rcode = flags & _RCODE_MASK
    if rcode == _RCODE_NXDOMAIN:
        return []
    if rcode:
        raise DNSError("DNS server error (rcode %d)" % rcode)
    questions = _u16(packet, 4)
    records = _u16(packet, 6) + _u16(packet, 8) + _u16(packet, 10)
    at = _HEADER_BYTES
    for _ in range(questions):
        at = _name(packet, at)[1] + 4
    out = []
    for _ in range(records):
        if at >= len(packet) and flags & _FLAG_TRUNCATED:
            break  # what fitted is usable; the rest was cut
        owner, at = _name(packet, at)
        rtype = _u16(packet, at)
        length = _u16(packet, at + 8)
        start = at + 10
        at = start + length
        if at > len(packet):
            raise DNSError("truncated DNS record")
        if len(out) >= MAX_RECORDS:
            continue
        if rtype == TYPE_SRV and qtype == TYPE_SRV and length >= 7:
            target = _name(packet, start + 6)[0]
            out.append((owner, (_u16(packet, start), _u16(packet, start + 2), _u16(packet, start + 4), target)))
        elif rtype == TYPE_A and length == 4:
            out.append((owner, "%d.%d.%d.%d" % (packet[start], packet[start + 1], packet[start + 2],
                                                packet[start + 3])))
    return out


def order_srv(records, rand=None):
    """SRV values (priority, weight, port, target) in the order to try them (RFC 2782).

    Lowest priority first; within a priority, a weighted random draw, so that
    weight 3 is picked first three times as often as weight 1. ``rand(n)``
    returns a number from 0 to n (tests pass their own).
    """
    rand = rand or _rand
    # Weight 0 first within a priority (RFC 2782), else as given: the index makes the sort stable on
    # MicroPython too.
    keyed = sorted([(records[i][0], records[i][1] != 0, i) for i in range(len(records))])
    left = [records[key[2]] for key in keyed]
    out = []
    while left:
        priority = left[0][0]
        group = [record for record in left if record[0] == priority]
        left = left[len(group):]
        while group:
            total = sum(record[1] for record in group)
            pick = min(rand(total), total)  # a draw past the total would select nothing
            running = 0
            for index in range(len(group)):
                running += group[index][1]
                if running >= pick:
                    out.append(group.pop(index))
                    break
    return out


def _rand(n):
    data = os.urandom(4)
    return ((data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]) % (n + 1)


def default_nameserver():
    """The name server the network gave the board, else the first of /etc/resolv.conf, else None."""
    try:
        import network

        server = network.ipconfig("dns")  # MicroPython 1.24 and later: what DHCP or PPP gave
        if server and server != "0.0.0.0":
            return server
    except (ImportError, AttributeError, OSError, ValueError, TypeError):
        pass  # a host, or an older port
    try:
        with open(RESOLV_CONF) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver" and words[1].find(":") < 0:
                    return words[1]
    except OSError:
        pass
    return None


def _address(nameserver):
    """("a.b.c.d", port) from "a.b.c.d" or "a.b.c.d:port"."""
    host, _, port = nameserver.partition(":")
    return host, int(port) if port else DNS_PORT


def query(nameserver, name, qtype, timeout_ms=QUERY_TIMEOUT_MS, tries=QUERY_TRIES):
    """Ask ``nameserver`` ("a.b.c.d[:port]") for ``qtype`` records of ``name``; see parse_answer."""
    host, port = _address(nameserver)
    ident = (os.urandom(1)[0] << 8) | os.urandom(1)[0]
    packet = build_query(ident, name, qtype)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][-1]
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        for _ in range(tries):
            sock.sendto(packet, address)
            start = ticks_ms()
            while True:
                left = timeout_ms - ticks_diff(ticks_ms(), start)
                if left <= 0 or not poller.poll(left):
                    break
                answer = sock.recv(MAX_MESSAGE_BYTES + 1)
                try:
                    return parse_answer(answer, ident, qtype)
                except DNSError:
                    if len(answer) >= _HEADER_BYTES and (answer[0] << 8 | answer[1]) != ident:
                        continue  # a late answer to an earlier try, or a stray datagram: keep waiting
                    raise
        raise DNSError("no answer from the name server %s for %s" % (nameserver, name))
    finally:
        sock.close()


def xmpp_servers(domain, nameserver, tls="required", timeout_ms=QUERY_TIMEOUT_MS):
    """Where to connect for ``domain``: [(host, port, direct_tls), ...] in the order to try them.

    ``tls``: "required" looks up both services; "direct" only xmpps-client;
    "none" only xmpp-client. An empty list: no SRV record (connect to the
    domain itself). Raises DNSError when the name server cannot be asked, or
    when the domain says it offers no XMPP service (every target ".": NoService).
    """
    services = []
    if tls != "none":
        services.append(("_xmpps-client._tcp.", True))
    if tls != "direct":
        services.append(("_xmpp-client._tcp.", False))
    found = []
    addresses = {}
    failed = 0
    for prefix, direct in services:
        try:
            answers = query(nameserver, prefix + domain, TYPE_SRV, timeout_ms)
        except DNSError:
            failed += 1
            if failed == len(services):
                raise  # both lookups failed: the caller decides (the client falls back to the domain)
            continue  # one service unknown to this server: the other one still counts
        for owner, value in answers:
            if isinstance(value, tuple):
                found.append(value + (direct,))
            else:
                addresses[owner] = value
    if found and all(record[3] in ("", ".") for record in found):
        raise NoService("%s says it offers no XMPP service (SRV target \".\")" % domain)
    out = []
    for priority, weight, port, target, direct in order_srv(found):
        if target in ("", "."):
            continue
        host = target if is_address(target) else addresses.get(target)
        if host is None:
            answers = query(nameserver, target, TYPE_A, timeout_ms)
            host = answers[0][1] if answers else target  # unknown here: the system resolver may know it
        out.append((host, port, direct))
    return out


# -- where to connect, for both drivers -----------------------------------------------------------------


def is_address(host):
    """True for an IPv4 or IPv6 address (never looked up in DNS), False for a name."""
    return host.find(":") >= 0 or host.replace(".", "").isdigit()


def find_servers(domain, port, tls, nameserver=None):
    """Where to connect for ``domain`` by DNS: [(host, port, tls), ...].

    SRV records first; without any, the domain's A record on ``port``; when
    the name server cannot be asked, the domain itself (the system resolver
    may know it). localhost names and addresses are never looked up (RFC
    6761 6.3). Raises xmpp_lite.dns.NoService when the domain offers no XMPP.
    """
    host = domain
    if domain != "localhost" and not domain.endswith(".localhost") and not is_address(domain):
        nameserver = nameserver or default_nameserver()
        if nameserver:
            try:
                found = xmpp_servers(domain, nameserver, tls)
                if found:
                    return [(name, number, "direct" if direct else tls)
                            for name, number, direct in found[:MAX_SERVERS]]
                answers = query(nameserver, domain, TYPE_A)  # no SRV: the domain's A record
                if answers:
                    host = answers[0][1]
            except NoService:
                raise
            except OSError:  # no answer, or no route to the name server: the system resolver may know the domain
                pass
    return [(host, port, tls)]
