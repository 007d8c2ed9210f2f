# Runs on the MicroPython VM: one run for tests/bench/bench_aio.py.
#
#     micropython -X heapsize=256k tests/bench/mp_aio_bench.py CONFIG.json
#
# CONFIG (JSON) names the library folder, the server, the account and the
# driver: "poll" (xmpp_lite.robust.RobustClient) or "aio"
# (xmpp_lite.aio.AsyncClient). The run imports the driver, logs in with
# STARTTLS, sends one message and waits for its ack, and prints one JSON line:
# GC heap in use after the import and while online (both after a collect,
# above what was in use before the import), and for "aio" the worst stall
# of a 10 ms ticker task during each of ``logins`` logins (the first with an
# empty SCRAM cache, the others with the salted key cached), plus how long
# getaddrinfo took for a numeric address and for "localhost".
import gc
import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])
import socket  # noqa: E402

from time import ticks_diff, ticks_ms  # noqa: E402

gc.collect()
BASE = gc.mem_alloc()
TICK_MS = 10

if config["driver"] == "poll":
    from xmpp_lite.robust import RobustClient as Link  # noqa: E402
else:
    import asyncio  # noqa: E402

    from xmpp_lite.aio import AsyncClient as Link  # noqa: E402
    from xmpp_lite.aio import sleep_ms  # noqa: E402
from xmpp_lite.stanza import presence  # noqa: E402

gc.collect()
IMPORTED = gc.mem_alloc() - BASE
results = {"driver": config["driver"], "import_bytes": IMPORTED}


def make_link(cache):
    return Link(config["jid"], config["password"], host=config["host"], port=config["port"], ca=config["ca"],
                resource="bench", sasl_cache=cache)


def resolve_ms(name):
    start = ticks_ms()
    socket.getaddrinfo(name, config["port"], 0, socket.SOCK_STREAM)
    return ticks_diff(ticks_ms(), start)


def run_poll():
    link = make_link({})
    start = ticks_ms()
    link.connect()
    results["login_ms"] = [ticks_diff(ticks_ms(), start)]  # the poll driver blocks for all of it
    stanza_id = link.send_message(config["peer"], "bench")
    link.client.request_ack()  # as AsyncClient.acked() does
    start = ticks_ms()
    while link.unacked and ticks_diff(ticks_ms(), start) < 10000:
        link.poll(20)
    if link.unacked:
        raise OSError("no ack")
    gc.collect()
    results["online_bytes"] = gc.mem_alloc() - BASE
    link.close()
    return stanza_id


class Ticker:
    def __init__(self):
        self.worst = 0

    async def run(self):
        last = ticks_ms()
        while True:
            await sleep_ms(TICK_MS)
            now = ticks_ms()
            self.worst = max(self.worst, ticks_diff(now, last) - TICK_MS)
            last = now


async def run_aio():
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await sleep_ms(30)
    cache = {}
    stalls = []
    logins = []
    for number in range(config["logins"]):
        link = make_link(cache)
        ticker.worst = 0
        start = ticks_ms()
        if not await link.connect(presence=presence(status="bench")):
            raise OSError("login %d failed: %s" % (number, link.error))
        logins.append(ticks_diff(ticks_ms(), start))
        stalls.append(ticker.worst)
        if number == 0:
            stanza_id = link.send_message(config["peer"], "bench")
            if not await link.acked(stanza_id, 10000):
                raise OSError("no ack")
            gc.collect()
            results["online_bytes"] = gc.mem_alloc() - BASE
        await link.close()
    task.cancel()
    results["stall_ms"] = stalls
    results["login_ms"] = logins


if config["driver"] == "poll":
    run_poll()
else:
    asyncio.run(run_aio())
results["getaddrinfo_ms"] = {"numeric": resolve_ms("127.0.0.1"), "localhost": resolve_ms("localhost")}
print("RESULT " + json.dumps(results))
