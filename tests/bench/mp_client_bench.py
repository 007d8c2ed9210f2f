# Runs on the MicroPython VM (and on CPython): one client run for tests/bench/bench_client.py.
#
#     micropython -X heapsize=32k tests/bench/mp_client_bench.py CONFIG.json
#
# CONFIG (JSON) names the library folder, the server, the account and the mode:
# - "job": log in with a presence with a status as the initial presence (it
#   goes out as early as the login allows), send one chat message, close.
# - "exchange": log in, tell the controller by a directed presence, then answer
#   each of its "RUN N" messages with "RUN rN" until "count" went each way,
#   and close. With "trace" (the folder of mp_client_trace.py): the most heap in
#   use before and after each stanza the session handled, logging in and online.
# "ONLINE" once logged in, one line of figures at the end (an exchange: then the VM's count of
# interned names, micropython.qstr_info()); exit status 0 only if the run did all of it.
import gc
import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

from xmpp_lite.client import Client  # noqa: E402
from xmpp_lite.stanza import presence  # noqa: E402

gc.collect()
CODE_ALLOC = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0  # the loaded library, the config, this script

from xmpp_lite._compat import ticks_diff, ticks_ms  # noqa: E402

TIMEOUT_MS = config["timeout_ms"]


def make_client():
    mechanisms = config.get("mechanisms")
    return Client(config["jid"], config["password"], host=config["host"], port=config["port"],
                  tls=config["tls"], ca=config.get("ca"), insecure_plain=config.get("insecure_plain", False),
                  resource=config.get("resource"), mechanisms=tuple(mechanisms) if mechanisms else None,
                  sasl2=config.get("sasl2", True))


def job():
    device = make_client()
    device.connect(TIMEOUT_MS, presence=presence(status=config["status"]))
    flights = device.session.login_round_trips
    device.send_message(config["peer"], config["body"])
    device.close()
    mechanism = device.session.mechanism + ("+SASL2" if device.session.sasl2_used else "")
    print("JOB mechanism=%s flights=%d state=%s" % (mechanism, flights, device.session.state))
    return device.session.state == "closed"


def exchange():
    peaks = [0, 0]
    tracer = 0  # what the tracing itself takes, left out of the peaks
    if config.get("trace"):
        gc.collect()
        tracer = gc.mem_alloc()
        sys.path.append(config["trace"])  # its own file: the runs that measure the smallest heap do not load it
        from mp_client_trace import trace_stanzas

        peaks = trace_stanzas()
        gc.collect()
        tracer = gc.mem_alloc() - tracer
    device = make_client()
    count = config["count"]
    run = config["run"]
    controller = config["controller"]
    prefix = run + " "
    done = [0, 0]  # received, sent

    def on_message(msg):
        body = msg.find_text("body")
        if body is None or msg.get("type") == "error" or not body.startswith(prefix):
            return
        done[0] += 1
        device.send_message(controller, prefix + "r" + body[len(prefix):])
        done[1] += 1

    device.on_message = on_message
    device.connect(TIMEOUT_MS)
    gc.collect()
    online_alloc = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    print("ONLINE alloc=%d" % online_alloc)  # a failure after this line happened online, not while logging in
    device.send_presence(status=prefix + "ready", to=controller)
    start = ticks_ms()
    while done[0] < count and ticks_diff(ticks_ms(), start) < TIMEOUT_MS:
        device.poll(50)
    device.close()
    state = device.session.state
    print("EXCHANGE received=%d sent=%d state=%s code_alloc=%d online_alloc=%d login_peak=%d online_peak=%d" % (
        done[0], done[1], state, CODE_ALLOC, online_alloc - tracer, peaks[0] - tracer, peaks[1] - tracer))
    return done[0] == count and done[1] == count and state == "closed"


passed = job() if config["mode"] == "job" else exchange()
if config["mode"] == "exchange" and sys.implementation.name == "micropython":
    import micropython

    micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., ...": names are never freed, so this is the most
if not passed:
    sys.exit(1)
