"""A device on xmpp_lite.robust, driven by tests/host/test_resilience.py; runs on MicroPython and CPython.

    micropython -X heapsize=256k tests/host/robust_device.py CONFIG.json
    python -u tests/host/robust_device.py CONFIG.json

CONFIG (JSON) holds the library path, the connection, heartbeat and backoff
settings and the job: ``send`` messages "seq N" (N from 0) to the
controller, as fast as the unacked queue allows, while taking commands.
Commands are chat messages from the controller:
    "cmd N"   counted; the device checks that they come in order, once each
    "report"  answered with "report " + a JSON summary
    "quit"    close the stream and exit
The device prints one line per event, each starting with its own ticks_ms:
"<ms> STATE online fresh", "<ms> STATE offline <error>", "<ms> SENT-ALL",
"<ms> AUTH-FAILED <condition>", and "<ms> DONE <json summary>" at the end.
"""

import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

from xmpp_lite._compat import ticks_diff, ticks_ms  # noqa: E402
from xmpp_lite.backoff import Backoff  # noqa: E402
from xmpp_lite.keepalive import Heartbeat  # noqa: E402
from xmpp_lite.robust import RobustClient  # noqa: E402
from xmpp_lite.sasl import AuthError  # noqa: E402
from xmpp_lite.sm import QueueFull  # noqa: E402

START = ticks_ms()


def say(text):
    print("%d %s" % (ticks_diff(ticks_ms(), START), text))


heartbeat = Heartbeat(config["ws_interval_ms"], config["probe_interval_ms"], config["probe_timeout_ms"])
backoff = Backoff(initial_ms=config["backoff_initial_ms"], max_ms=config["backoff_max_ms"],
                  stable_ms=config["backoff_stable_ms"])
options = {"port": config["port"], "tls": config["tls"], "resource": config["resource"]}
if config.get("servers"):
    options["servers"] = config["servers"]  # tried in turn (failover)
else:
    options["host"] = config["host"]
if config.get("ca"):
    options["ca"] = config["ca"]
if config["tls"] == "none":
    options["insecure_plain"] = True
if config.get("mechanisms"):
    options["mechanisms"] = tuple(config["mechanisms"])
device = RobustClient(config["jid"], config["password"], heartbeat=heartbeat, backoff=backoff,
                      connect_timeout_ms=config["connect_timeout_ms"], sasl_cache={}, **options)
controller = config["controller"]
auth_count = [0]
# Counters, not a list of what arrived: the VM's heap stays flat however long the run.
commands = {"count": 0, "last": -1, "duplicates": 0, "out_of_order": 0}
done = []


def on_state(state, detail):
    if state == "online":
        # Round trips this login took: client flights before the one that goes on once online.
        say("STATE online %s flights=%d" % (detail, device.client.session.login_round_trips))
    else:
        say("STATE %s %s" % (state, detail))


def trace(direction, data):
    if direction == "send":
        auth_count[0] += data.count(b"<auth ") + data.count(b"<authenticate ")  # SASL, SASL2


def summary():
    return {"commands": commands["count"], "duplicates": commands["duplicates"],
            "in_order": commands["out_of_order"] == 0, "sent": sent[0],
            "unacked": device.unacked, "auths": auth_count[0], "stats": device.stats}


def on_message(msg):
    body = msg.find_text("body")
    if body is None or msg.get("type") == "error":
        return
    if body.startswith("cmd "):
        number = int(body[4:])
        if number <= commands["last"]:
            commands["duplicates"] += 1  # commands are sent 0, 1, 2, ...: a lower one came before
        else:
            if number != commands["last"] + 1:
                commands["out_of_order"] += 1  # one was skipped (lost, or coming later)
            commands["last"] = number
            commands["count"] += 1
    elif body == "report":
        try:
            device.send_message(msg.get("from"), "report " + json.dumps(summary()))
        except QueueFull:
            say("REPORT-DROPPED queue full")
    elif body == "quit":
        done.append(True)


device.on_state = on_state
device.on_message = on_message
device.client.trace = trace
sent = [0]
try:
    device.connect()
except AuthError as error:
    say("AUTH-FAILED " + error.condition)
if config.get("status"):
    device.send_presence(status=config["status"])

deadline = config["max_run_ms"]
announced = False
while not done and ticks_diff(ticks_ms(), START) < deadline:
    if device.state == "stopped" and device.error is not None:
        device.poll(config["poll_ms"])  # stopped: poll only waits; the test counts connection attempts
        continue
    while sent[0] < config["send"] and device.unacked < config["max_in_flight"]:
        try:
            device.send_message(controller, "seq %d" % sent[0])
        except QueueFull:
            break
        sent[0] += 1
    if sent[0] == config["send"] and not announced and config["send"]:
        announced = True
        say("SENT-ALL")
    device.poll(config["poll_ms"])

left = device.close() if device.state != "stopped" else device.unacked
say("DONE " + json.dumps(summary()))
