"""What the node puts on the wire against a real Prosody (XEP-0198 on): acks ride, probes ride.

The device (RobustClient + Node, CPython) talks through the byte-counting relay of the wire bench, so
the test sees every byte it sent, in the order and in the chunks it wrote them. The figures themselves
are in tests/bench/bench_wire.py; this checks the behaviour they rest on.
"""

import os
import re
import sys
import time

from xmpp_lite.client import Client
from xmpp_lite.keepalive import Heartbeat
from xmpp_lite.node import Node
from xmpp_lite.robust import RobustClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from relay import Relay  # noqa: E402

HOST = "127.0.0.1"
ACK = re.compile(rb"<a xmlns='urn:xmpp:sm:3' h='\d+'/>")
REQUEST = b"<r xmlns='urn:xmpp:sm:3'/>"


class Fixed:
    name = "temp"
    threshold = 0

    def read(self):
        return [("temp", 21.5, "C")]


def run(server, heartbeat, interval_ms, seconds, controller_says=()):
    """The node for ``seconds`` through a relay; the controller sends ``controller_says`` [(at_s, body, type)]."""
    controller = Client(server.jid("controller"), server.accounts["controller"], host=HOST, port=server.c2s_port,
                        resource="desk", tls="none", insecure_plain=True)
    controller.connect(10000)
    controller.send_presence()
    relay = Relay(HOST, server.c2s_port).start()
    device = RobustClient(server.jid("device1"), server.accounts["device1"], host=HOST, port=relay.port,
                          tls="none", insecure_plain=True, resource="board", heartbeat=heartbeat)
    node = Node(device, [Fixed()], controller=server.jid("controller"), interval_ms=interval_ms)
    replies = []
    controller.on_message = lambda msg: replies.append(msg.find_text("body"))
    try:
        device.connect()
        start = time.monotonic()
        node.start(int(time.monotonic() * 1000))
        pending = list(controller_says)
        while time.monotonic() - start < seconds:
            if pending and time.monotonic() - start >= pending[0][0]:
                _, body, kind = pending.pop(0)
                controller.send_message(device.jid, body, type=kind)
            device.poll(20)
            node.tick(int(time.monotonic() * 1000))
            controller.poll(20)
        left = device.close()
        link = relay.wait_link(0)
    finally:
        relay.stop()
        controller.close()
    return bytes(link.client_data), link, device, node, replies, left


def chunks_of(link, data):
    """The client's flights as byte strings."""
    starts = link.flight_starts + [len(data)]
    return [data[starts[i]:starts[i + 1]] for i in range(len(starts) - 1)]


def test_acks_ride_on_our_next_write(prosody_plain):
    # Reports every 30 s: none in the test after the first. The server asks for an ack after each
    # stanza it sends us; the command's reply carries it, the ack for another board's report (not a
    # command: nothing to answer) goes alone once
    # its delay (0.5 s) is over.
    heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=0, ack_delay_ms=500)
    data, link, device, node, replies, left = run(prosody_plain, heartbeat, 30000, 4.0,
                                                  [(1.0, "help", "chat"), (2.5, "temp=3C", "normal")])
    assert replies[-1].startswith("commands:") and left == 0
    acks = [match.start() for match in ACK.finditer(data)]
    assert len(acks) >= 2
    reply = data.find(b"<message", data.find(b"commands:") - 200)
    # The ack for the command went in the same write as the reply, right before it.
    assert any(data[ack:reply].count(b"<") == 1 for ack in acks), data
    alone = [chunk for chunk in chunks_of(link, data) if ACK.fullmatch(chunk)]
    assert alone, "the ignored message's ack never went alone"


def test_a_probe_rides_on_a_report(prosody_plain):
    # A report every second, a probe every 3 s of silence, riding on a report planned within 1.5 s.
    heartbeat = Heartbeat(ws_interval_ms=0, probe_interval_ms=3000, probe_timeout_ms=3000, ride_ms=1500)
    data, link, device, node, replies, left = run(prosody_plain, heartbeat, 1000, 8.0)
    requests = [m.start() for m in re.finditer(re.escape(REQUEST), data)]
    closing = data.rfind(REQUEST)  # close() asks for the last ack itself
    riding = [at for at in requests if at != closing]
    assert len(riding) >= 2 and device.stats["probes"] >= 2 and device.stats["dead_links"] == 0
    assert all(data[:at].endswith(b"</message>") for at in riding), data
    assert node.seq >= 7 and left == 0


def test_a_classic_plaintext_login_sends_only_what_rfc_6120_asks_for(prosody_plain):
    # The login of the wire bench (issue 16): PLAIN pinned, no SASL2, resource 'board', an initial
    # presence. Byte for byte: no XML declaration, no xml:lang, no ids but the bind's one character,
    # in two round trips (header+auth, then header+bind+presence after <success/>).
    import base64

    from xmpp_lite.stanza import presence

    relay = Relay(HOST, prosody_plain.c2s_port).start()
    try:
        device = Client(prosody_plain.jid("device1"), prosody_plain.accounts["device1"], host=HOST,
                        port=relay.port, tls="none", insecure_plain=True, mechanisms=("PLAIN",), sasl2=False,
                        resource="board")
        device.connect(10000, presence=presence(status="temp=21.5C"))
        device.close()
        link = relay.wait_link(0)
    finally:
        relay.stop()
    header = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
              b"version='1.0' to='" + prosody_plain.domain.encode() + b"'>")
    secret = base64.b64encode(b"\0device1\0" + prosody_plain.accounts["device1"].encode())
    expected = [header + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + secret + b"</auth>"
                + header + b"<iq " + attributes + b'><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">'
                b"<resource>board</resource></bind></iq><presence><status>temp=21.5C</status></presence>"
                for attributes in (b'type="set" id="b"', b'id="b" type="set"')]  # in the order of a dict
    assert bytes(link.client_data[:len(expected[0])]) in expected
    assert link.flights_before(b"<presence") == 2 and device.session.login_round_trips == 2
