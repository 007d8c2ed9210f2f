"""A device on xmpp_lite.aio, driven by tests/host/test_aio_prosody.py; runs on MicroPython and CPython.

    micropython -X heapsize=256k tests/host/aio_device.py CONFIG.json
    python -u tests/host/aio_device.py CONFIG.json

Beside the link, a ticker task runs a 10 ms loop and records its worst
stall (the longest gap between two of its turns, minus the 10 ms), once
for connect + TLS + login (with "warm_cache", a login after a first one,
which left SCRAM's salted key in the cache) and once for the rest of the run. Commands are
chat messages from the controller, each answered by the device:
    "echo TEXT"  answered with TEXT
    "cmd N"      counted (in order, once each: checked)
    "report"     answered with "report " + a JSON summary
    "quit"       close the stream and exit
The device prints one line per event, each starting with its own ticks_ms:
"<ms> STATE online fresh", "<ms> STALL login <ms>", "<ms> ACKED <id> True",
"<ms> AUTH-FAILED <condition>", "<ms> DONE <json summary>".
"""

import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

import asyncio  # noqa: E402

from xmpp_lite._compat import ticks_diff, ticks_ms  # noqa: E402
from xmpp_lite.aio import AsyncClient, sleep_ms  # noqa: E402
from xmpp_lite.backoff import Backoff  # noqa: E402
from xmpp_lite.keepalive import Heartbeat  # noqa: E402
from xmpp_lite.sasl import AuthError  # noqa: E402
from xmpp_lite.sm import QueueFull  # noqa: E402
from xmpp_lite.stanza import presence  # noqa: E402

START = ticks_ms()
TICK_MS = 10


def say(text):
    print("%d %s" % (ticks_diff(ticks_ms(), START), text))


class Ticker:
    """A 10 ms loop that measures how long the event loop kept it waiting beyond its sleep."""

    def __init__(self):
        self.worst = 0
        self.turns = 0

    def restart(self):
        self.worst = 0

    async def run(self):
        last = ticks_ms()
        while True:
            await sleep_ms(TICK_MS)
            now = ticks_ms()
            self.worst = max(self.worst, ticks_diff(now, last) - TICK_MS)
            self.turns += 1
            last = now


async def main():
    heartbeat = Heartbeat(config["ws_interval_ms"], config["probe_interval_ms"], config["probe_timeout_ms"])
    backoff = Backoff(initial_ms=config["backoff_initial_ms"], max_ms=config["backoff_max_ms"],
                      stable_ms=config["backoff_stable_ms"])
    options = {"host": config["host"], "port": config["port"], "tls": config["tls"], "resource": config["resource"],
               "sasl_cache": {}}
    if config.get("servers"):  # tried in turn (failover), instead of host
        del options["host"]
        options["servers"] = config["servers"]
    if config.get("ca"):
        options["ca"] = config["ca"]
    if config["tls"] == "none":
        options["insecure_plain"] = True
    if config.get("mechanisms"):
        options["mechanisms"] = tuple(config["mechanisms"])
    if config["warm_cache"]:
        # One login first, so that the measured one finds SCRAM's salted key cached (as every login after
        # the first since boot does): PBKDF2, a documented stall, is then not in the measurement.
        first = AsyncClient(config["jid"], config["password"], **options)
        await first.connect()
        await first.close()
    link = AsyncClient(config["jid"], config["password"], heartbeat=heartbeat, backoff=backoff,
                       connect_timeout_ms=config["connect_timeout_ms"], **options)
    controller = config["controller"]
    commands = {"count": 0, "last": -1, "duplicates": 0, "out_of_order": 0, "answered": 0}
    auths = [0]
    done = asyncio.Event()
    ticker = Ticker()
    stalls = {}

    def summary():
        return {"commands": commands["count"], "duplicates": commands["duplicates"],
                "in_order": commands["out_of_order"] == 0, "answered": commands["answered"],
                "unacked": link.unacked, "auths": auths[0], "stats": link.stats, "stalls": stalls,
                "ticks": ticker.turns}

    def reply(to, body):
        try:
            link.send_message(to, body)
            commands["answered"] += 1
        except QueueFull:
            say("REPLY-DROPPED queue full")

    def on_message(msg):
        body = msg.find_text("body")
        if body is None or msg.get("type") == "error":
            return
        if body.startswith("echo "):
            reply(msg.get("from"), body[5:])
        elif body.startswith("cmd "):
            number = int(body[4:])
            if number <= commands["last"]:
                commands["duplicates"] += 1
            else:
                if number != commands["last"] + 1:
                    commands["out_of_order"] += 1
                commands["last"] = number
                commands["count"] += 1
        elif body == "report":
            stalls["run"] = ticker.worst
            reply(msg.get("from"), "report " + json.dumps(summary()))
        elif body == "quit":
            done.set()

    def on_state(state, detail):
        say("STATE %s %s" % (state, detail))

    def trace(direction, data):
        if direction == "send":
            auths[0] += data.count(b"<auth ") + data.count(b"<authenticate ")  # SASL, SASL2

    link.on_message = on_message
    link.on_state = on_state
    link.trace = trace
    tick_task = asyncio.create_task(ticker.run())
    await sleep_ms(50)
    ticker.restart()
    started = ticks_ms()
    try:
        online = await link.connect(presence=presence(status=config["status"]))
    except AuthError as error:
        say("AUTH-FAILED " + error.condition)
        await sleep_ms(config["linger_ms"])
        say("DONE " + json.dumps(summary()))
        return
    stalls["login"] = ticker.worst
    stalls["login_ms"] = ticks_diff(ticks_ms(), started)
    say("CONNECTED %s" % online)
    say("STALL login %d" % ticker.worst)
    ticker.restart()
    for number in range(config["send"]):
        stanza_id = None
        while stanza_id is None:
            try:
                stanza_id = link.send_message(controller, "seq %d" % number)
            except QueueFull:
                await sleep_ms(20)
        if number == config["send"] - 1:
            say("SENT-ALL")
            say("ACKED %s %s" % (stanza_id, await link.acked(stanza_id, 30000)))
    await done.wait()
    stalls["run"] = ticker.worst
    left = await link.close()
    tick_task.cancel()
    say("DONE " + json.dumps(dict(summary(), unacked=left)))


asyncio.run(main())
