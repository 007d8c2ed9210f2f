# Runs on the MicroPython VM: one client of tests/bench/bench_wire.py, through its counting relay.
#
#     micropython -X heapsize=256k tests/bench/mp_wire_device.py CONFIG.json
#
# CONFIG (JSON) names the library folder, the server (the relay), the account and the mode:
# - "node": the sensor node as shipped (xmpp_lite.robust + xmpp_lite.node, the report format of
#   "format"), then "reports" reports; before every "ride_every"-th report the heartbeat's probe is
#   due and rides on it (what RobustClient does at a 60 s report interval), and after each report
#   an ack the server asked for goes alone (the heartbeat's SEND_ACK: its delay is shorter than
#   the report interval). Then one whitespace and one probe, as the idle heartbeat sends them.
# - "minimal": a Client with XEP-0198 sends "reports" minimal <message/>s (acks asked for by count).
# - "mqtt": umqtt.simple (from PyPI; "umqtt" names the folder that holds umqtt/simple.py), QoS
#   "qos" publishes, then one PINGREQ answered by a PINGRESP.
# - "login": a Client logs in (classic SASL, "mechanisms" pinned, "resource" or the server's) with an
#   initial presence, and with XEP-0198 when "sm" is true (<enable/> goes with the presence), closes.
# Between phases it prints a line ("PHASE name") and waits for a line on stdin, so that the host
# can read the relay's counters while the link is quiet.
import gc
import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])
if config.get("umqtt"):
    sys.path.insert(0, config["umqtt"])

from xmpp_lite._compat import ticks_diff, ticks_ms  # noqa: E402

QUIET_MS = 1500  # polling after a phase, so that every answer is in before the host reads the counters
REPORT_POLL_MS = 400


def phase(name):
    gc.collect()
    print("PHASE " + name)
    sys.stdin.readline()


def poll_for(client, ms):
    start = ticks_ms()
    while ticks_diff(ticks_ms(), start) < ms:
        client.poll(50)


class Fixed:
    def __init__(self, name, value, unit):
        self.name = name
        self.value = value
        self.unit = unit
        self.threshold = 0

    def read(self):
        return [(self.name, self.value, self.unit)]


def node():
    from xmpp_lite.node import Node
    from xmpp_lite.robust import RobustClient

    device = RobustClient(config["jid"], config["password"], host=config["host"], port=config["port"],
                          tls="required", ca=config["ca"], resource="board")
    sensors = [Fixed("temp", 21.5, "C"), Fixed("light", 206, "")]
    board = Node(device, sensors, controller=config["controller"], report_format=config["format"])
    device.connect()
    board.start(ticks_ms())
    poll_for(device, QUIET_MS)
    phase("ready")
    for index in range(config["reports"]):
        if index % config["ride_every"] == config["ride_every"] - 1:
            device.sm.ask_next = True  # the probe that falls due rides on this report
        board.report(ticks_ms())
        poll_for(device, REPORT_POLL_MS)
        if device.client.session.ack_owed:
            device.client.send_whitespace()  # SEND_ACK: the held ack goes alone
            poll_for(device, 100)
    poll_for(device, QUIET_MS)
    phase("reports")
    board._last_presence = None  # this report carries a status summary too, as after the slow interval
    board.report(ticks_ms())
    poll_for(device, REPORT_POLL_MS)
    if device.client.session.ack_owed:
        device.client.send_whitespace()
    poll_for(device, QUIET_MS)
    phase("summary")
    device.client.send_whitespace()
    poll_for(device, QUIET_MS)
    phase("whitespace")
    device.client.request_ack()
    poll_for(device, QUIET_MS)
    phase("probe")
    left = device.close()
    print("NODE unacked=%d seq=%d" % (left, board.seq))
    return left == 0


def minimal():
    from xmpp_lite.client import Client
    from xmpp_lite.sm import StreamManagement
    from xmpp_lite.stanza import message

    sm = StreamManagement()
    device = Client(config["jid"], config["password"], host=config["host"], port=config["port"],
                    tls="required", ca=config["ca"], resource="board", sm=sm)
    device.connect(15000)
    poll_for(device, QUIET_MS)
    phase("ready")
    for _ in range(config["reports"]):
        device.send(message(to=config["controller"], body=config["body"]))
        poll_for(device, REPORT_POLL_MS)
    poll_for(device, QUIET_MS)
    phase("reports")
    device.close()
    print("MINIMAL unacked=%d" % len(sm.unacked))
    return True


def mqtt():
    from umqtt.simple import MQTTClient

    with open(config["ca"], "rb") as f:
        cadata = f.read()
    device = MQTTClient("device", config["host"], port=config["port"], keepalive=60, ssl=True,
                        ssl_params={"cadata": cadata, "server_hostname": "localhost"})
    device.connect()
    phase("ready")
    for _ in range(config["reports"]):
        device.publish(config["topic"], config["body"], qos=config["qos"])
    phase("reports")
    device.ping()
    device.wait_msg()  # the PINGRESP
    phase("ping")
    device.disconnect()
    print("MQTT done")
    return True


def login():
    from xmpp_lite.client import Client
    from xmpp_lite.sm import StreamManagement
    from xmpp_lite.stanza import presence

    device = Client(config["jid"], config["password"], host=config["host"], port=config["port"],
                    tls=config.get("tls", "none"), ca=config.get("ca"), insecure_plain=True,
                    mechanisms=tuple(config["mechanisms"]), sasl2=False, resource=config.get("resource"),
                    sm=StreamManagement() if config.get("sm") else None)
    device.connect(15000, presence=presence(status=config["body"]))
    trips = device.session.login_round_trips
    device.close()
    print("LOGIN mechanism=%s flights=%d" % (device.session.mechanism, trips))
    return True


MODES = {"node": node, "minimal": minimal, "mqtt": mqtt, "login": login}
if not MODES[config["mode"]]():
    sys.exit(1)
