"""Tests of the SRV lookup (xmpp_lite.dns) and of the client's server list, without a network.

Answers are built here byte by byte, the way a name server sends them, so
that every bounds check meets the input it is for: compression pointers,
loops, truncation, oversize, answers to another query.
"""

from support import raises

from xmpp_lite import dns
from xmpp_lite.client import Client
from xmpp_lite.dns import find_servers
from xmpp_lite.config import ConfigError, check

IDENT = 0x1234


def name_bytes(name):
    out = b""
    for label in name.split("."):
        out += bytes((len(label),)) + label.encode()
    return out + b"\x00"


def header(ident=IDENT, flags=0x8180, questions=1, answers=0, additional=0):
    return bytes((ident >> 8, ident & 0xFF, flags >> 8, flags & 0xFF, 0, questions, 0, answers, 0, 0,
                  0, additional))


def u16(value):
    return bytes((value >> 8, value & 0xFF))


def record(owner, rtype, rdata):
    return owner + u16(rtype) + u16(1) + b"\x00\x00\x0e\x10" + u16(len(rdata)) + rdata


def srv(priority, weight, port, target):
    return u16(priority) + u16(weight) + u16(port) + target


QNAME = "_xmpp-client._tcp.example.net"
QUESTION = name_bytes(QNAME) + u16(dns.TYPE_SRV) + u16(1)
POINTER_TO_QNAME = b"\xc0\x0c"  # the question's name starts right after the 12-byte header


def answer_with(*records, **flags):
    return header(answers=len(records), **flags) + QUESTION + b"".join(records)


def test_the_query_is_a_standard_question():
    packet = dns.build_query(IDENT, QNAME, dns.TYPE_SRV)
    assert packet == header(flags=0x0100) + QUESTION


def test_a_name_with_an_empty_or_oversized_label_is_refused():
    raises(dns.DNSError, dns.build_query, 1, "a..b", dns.TYPE_A)
    raises(dns.DNSError, dns.build_query, 1, "x" * 64 + ".net", dns.TYPE_A)
    raises(dns.DNSError, dns.build_query, 1, ".".join(["abcdefg"] * 40), dns.TYPE_A)


def test_srv_records_with_compressed_names_and_addresses_from_the_additional_section():
    target = name_bytes("node1.example.net")
    packet = answer_with(
        record(POINTER_TO_QNAME, dns.TYPE_SRV, srv(10, 5, 5222, target)),
        # the second target ends with a pointer to "example.net" inside the first target
        record(POINTER_TO_QNAME, dns.TYPE_SRV, srv(20, 0, 5223, b"\x05node2\xc0" + bytes((12 + len(QUESTION) + 12 + 6 + 6,)))),
    )
    found = dns.parse_answer(packet, IDENT, dns.TYPE_SRV)
    assert found == [(QNAME, (10, 5, 5222, "node1.example.net")), (QNAME, (20, 0, 5223, "node2.example.net"))]
    with_address = header(answers=1, additional=1) + QUESTION + record(
        POINTER_TO_QNAME, dns.TYPE_SRV, srv(0, 0, 5222, target)) + record(target, dns.TYPE_A, b"\x7f\x00\x00\x02")
    assert dns.parse_answer(with_address, IDENT, dns.TYPE_SRV)[1] == ("node1.example.net", "127.0.0.2")


def test_nxdomain_is_no_record_and_other_errors_are_errors():
    assert dns.parse_answer(header(flags=0x8183) + QUESTION, IDENT, dns.TYPE_SRV) == []
    assert str(raises(dns.DNSError, dns.parse_answer, header(flags=0x8182) + QUESTION, IDENT,
                      dns.TYPE_SRV)).find("rcode 2") >= 0


def test_an_answer_to_another_query_or_a_query_is_refused():
    raises(dns.DNSError, dns.parse_answer, answer_with(ident=IDENT + 1), IDENT, dns.TYPE_SRV)
    raises(dns.DNSError, dns.parse_answer, answer_with(flags=0x0100), IDENT, dns.TYPE_SRV)


def test_hostile_answers_end_in_dns_errors():
    loop = answer_with(record(b"\xc0" + bytes((12 + len(QUESTION),)), dns.TYPE_A, b"\x01\x02\x03\x04"))
    assert str(raises(dns.DNSError, dns.parse_answer, loop, IDENT, dns.TYPE_A)).find("loops") >= 0
    raises(dns.DNSError, dns.parse_answer, answer_with(b"\x00" * (dns.MAX_MESSAGE_BYTES - 40)), IDENT,
           dns.TYPE_A)  # over the size cap
    cut = answer_with(record(POINTER_TO_QNAME, dns.TYPE_SRV, srv(1, 1, 5222, name_bytes("n.example.net"))))
    for end in range(len(header()) + len(QUESTION) + 1, len(cut)):
        raises(dns.DNSError, dns.parse_answer, cut[:end], IDENT, dns.TYPE_SRV)
    long_name = header(answers=1) + QUESTION + (b"\x3f" + b"a" * 63) * 5 + b"\x00"
    raises(dns.DNSError, dns.parse_answer, long_name, IDENT, dns.TYPE_A)
    raises(dns.DNSError, dns.parse_answer, b"\x12\x34\x81", IDENT, dns.TYPE_A)
    not_utf8 = answer_with(record(b"\x02\xff\xfe\x00", dns.TYPE_A, b"\x01\x02\x03\x04"))
    raises(dns.DNSError, dns.parse_answer, not_utf8, IDENT, dns.TYPE_A)


def test_at_most_max_records_are_kept():
    many = [record(POINTER_TO_QNAME, dns.TYPE_A, bytes((10, 0, 0, i))) for i in range(dns.MAX_RECORDS + 3)]
    assert len(dns.parse_answer(answer_with(*many), IDENT, dns.TYPE_A)) == dns.MAX_RECORDS


def test_srv_order_follows_priority_then_weight():
    records = [(20, 0, 1, "c"), (10, 1, 2, "b"), (10, 3, 3, "a"), (10, 0, 4, "zero")]
    # rand(n) = 0 always picks the first of the running sums: weight 0 first, then in list order
    assert [r[3] for r in dns.order_srv(records, rand=lambda n: 0)] == ["zero", "b", "a", "c"]
    # rand(n) = n picks the last: the heaviest remaining draw wins
    assert [r[3] for r in dns.order_srv(records, rand=lambda n: n)] == ["a", "b", "zero", "c"]
    counts = {"a": 0, "b": 0}
    for draw in range(5):  # every draw 0..4 over the weights 1 (b) and 3 (a), as in RFC 2782
        first = dns.order_srv([(10, 1, 2, "b"), (10, 3, 3, "a")], rand=lambda n: min(draw, n))[0][3]
        counts[first] += 1
    assert counts == {"a": 3, "b": 2}
    # a draw past the total (a broken random source) still orders every record
    assert len(dns.order_srv([(10, 1, 2, "b"), (10, 3, 3, "a")], rand=lambda n: n + 7)) == 2


def test_the_client_takes_a_list_of_servers():
    client = Client("d@example.net", "pw", servers=["a.example.net", "b.example.net:5223", "[::1]:5224", "::1"],
                    port=5300, ca=b"x")
    assert client.servers == [("a.example.net", 5300, "required"), ("b.example.net", 5223, "required"),
                              ("::1", 5224, "required"), ("::1", 5300, "required")]
    assert Client("d@example.net", "pw", host="h", port=1, tls="none").servers == [("h", 1, "none")]
    raises(ValueError, Client, "d@example.net", "pw", host="h", servers=["a"])
    raises(ValueError, Client, "d@example.net", "pw", servers=["a:port"])
    # (host, port) pairs as given; no more than dns.MAX_SERVERS are kept, as from a lookup
    many = Client("d@example.net", "pw", servers=[("h%d" % i, 5000 + i) for i in range(12)], tls="direct", ca=b"x")
    assert many.servers == [("h%d" % i, 5000 + i, "direct") for i in range(dns.MAX_SERVERS)]
    assert Client("d@example.net", "pw", tls="none").servers is None  # neither: a lookup at connect


def test_bad_client_options_say_what_is_wrong_in_one_line():
    for kw, message in (({"jid": "example.net"}, "the JID needs a local part and a domain: example.net"),
                        ({"jid": "d@"}, "the JID needs a local part and a domain: d@"),
                        ({"tls": "starttls"}, "tls must be 'required', 'direct' or 'none'"),
                        ({"host": "h", "servers": ["a"]}, "give host or servers, not both"),
                        ({"servers": ["a:port"]}, "bad server 'a:port': \"host\" or \"host:port\""),
                        ({"servers": [":5222"]}, "bad server ':5222': \"host\" or \"host:port\"")):
        options = {"jid": "d@example.net", "password": "pw", "tls": "none"}
        options.update(kw)
        assert str(raises(ValueError, Client, **options)) == message


def test_localhost_and_addresses_are_never_looked_up():
    for jid in ("d@localhost", "d@device.localhost", "d@127.0.0.1"):
        client = Client(jid, "pw", nameserver="192.0.2.1", tls="none")  # a lookup there would time out
        assert find_servers(client.domain, client.port, client.tls, client.nameserver) == [
            (jid.split("@")[1], 5222, "none")]


def base_config(**xmpp):
    entry = {"jid": "d@example.net", "password": "pw", "ca": "/ca.der"}
    entry.update(xmpp)
    return {"network": {"kind": "none"}, "xmpp": entry, "controller": "c@example.net"}


def test_config_servers_and_dns():
    config = check(base_config(servers=["a.example.net", "b.example.net:5223"], dns="192.0.2.53"))
    assert config["xmpp"]["servers"] == ["a.example.net", "b.example.net:5223"]
    assert config["xmpp"]["dns"] == "192.0.2.53"
    assert check(base_config())["xmpp"]["servers"] is None
    for bad in ([], "a.example.net", ["a b"], ["x"] * 9):
        assert str(raises(ConfigError, check, base_config(servers=bad))).find("xmpp.servers") >= 0
    error = raises(ConfigError, check, base_config(server="a.example.net", servers=["b.example.net"]))
    assert str(error).find("not both") >= 0
