"""A device on xmpp_lite.robust facing a hostile server, driven by tests/host/test_hostile.py.

    micropython -X heapsize=180k tests/host/hostile_device.py CONFIG.json
    python -u tests/host/hostile_device.py CONFIG.json

It stays up through whatever the server does, printing one line per change:
"STATE online fresh", "STATE offline <server's stream id> <error class>
<error>", and the heap
("HEAP idle N" once online for the first time, after a collection; "HEAP
peak N": the most in use at the end of a poll: live data only when
``live_heap`` is set, which collects after every poll) on the VM. A chat body "quit" ends the run: "DONE <json counters>".
"""

import gc
import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

from xmpp_lite.backoff import Backoff  # noqa: E402
from xmpp_lite.client import TLSError  # noqa: E402
from xmpp_lite.keepalive import Heartbeat  # noqa: E402
from xmpp_lite.robust import RobustClient  # noqa: E402

HAS_HEAP = hasattr(gc, "mem_alloc")  # MicroPython

device = RobustClient(config["jid"], config["password"], host=config["host"], port=config["port"],
                      ca=config["ca"], resource="hostile", connect_timeout_ms=config["connect_timeout_ms"],
                      backoff=Backoff(initial_ms=config["backoff_ms"], max_ms=config["backoff_ms"], jitter=0),
                      heartbeat=Heartbeat(60000, 10000, 5000))
counts = {"messages": 0, "presences": 0, "iq_results": 0}
done = []
heap = {"idle": None, "peak": 0}


def error_class(error):
    """TLSError or OSError for every OSError (CPython names its subclasses), else the class's own name."""
    if isinstance(error, TLSError):
        return "TLSError"
    if isinstance(error, OSError):
        return "OSError"
    return type(error).__name__


def on_state(state, detail):
    if isinstance(detail, Exception):
        text = str(detail).replace("\n", " ")[:160]
        session = device.client.session  # None after a MemoryError
        stream_id = session.stream_id if session is not None and session.stream_id else "-"
        print("STATE %s %s %s %s" % (state, stream_id, error_class(detail), text))
    else:
        print("STATE %s %s" % (state, detail))
    if state == "online" and HAS_HEAP and heap["idle"] is None:
        gc.collect()
        heap["idle"] = gc.mem_alloc()
        print("HEAP idle %d" % heap["idle"])


def on_message(msg):
    counts["messages"] += 1
    if msg.find_text("body") == "quit":
        done.append(True)


def on_presence(presence):
    counts["presences"] += 1


def on_iq(iq):
    counts["iq_results"] += 1


device.on_state = on_state
device.on_message = on_message
device.on_presence = on_presence
device.on_iq = on_iq
device.connect()
polls = 0
while not done and polls < config["max_polls"]:
    device.poll(20)
    polls += 1
    if HAS_HEAP:
        if config["live_heap"]:
            gc.collect()
        used = gc.mem_alloc()
        if used > heap["peak"]:
            heap["peak"] = used
if HAS_HEAP:
    print("HEAP peak %d" % heap["peak"])
counts.update(device.stats)
counts["refused_iqs"] = device.client.session.refused_iqs if device.client.session is not None else 0
counts["quit"] = bool(done)
device.close()
print("DONE " + json.dumps(counts))
