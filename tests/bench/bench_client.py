"""Client benchmark: xmpp_lite's client against slixmpp on the wire, and the VM heap a session needs.

Starts its own Prosody servers (one plaintext, one with TLS) and prints, in one run:

- On the wire, through a byte-counting relay (tests/bench/relay.py), for one
  job: log in, send a presence with a status and one chat message to another
  account, close; plaintext, the same server for every client. Bytes sent and
  received, and round trips to online, for slixmpp (the anchor: its own choice
  of mechanism, and with PLAIN pinned) and for xmpp_lite on CPython and on the
  MicroPython VM (default mechanism choice, and PLAIN pinned). Targets: bytes
  sent <= 0.8 x slixmpp's, round trips to online <= 2.
- The smallest -X heapsize (KB) from which the VM, with the library as .mpy,
  passes a whole session that exchanges 1000 messages each way with a
  controller (xmpp_lite on CPython, in this process) every time, without TLS
  and with STARTTLS; and the heap in use after importing the client and once
  logged in. Near the edge pass or fail is not monotonic in the heap size
  (fragmentation), so a size counts only if RUNS_PER_SIZE runs in a row pass,
  and the sizes just above the edge found are checked the same way. For the
  largest size that failed, where the run stopped (the VM's MemoryError and its
  innermost frame, while logging in or online), and, from one more run at a
  large heap, the most heap in use around the stanzas handled while logging in
  and once online: what to cut next. Targets:
  96 KB plaintext, 104 KB with STARTTLS. Heap figures are byte counts and
  repeat; the seconds printed beside them are timings and vary with the load.
  tests/bench/bench_heap.py gives the import cost module by module.

Run: make bench   (or .venv/bin/python tests/bench/bench_client.py [--part wire|heap]
[--link plaintext|starttls]: one part, or the heap of one link; --help says more)
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(ROOT, "lib")
for _path in (HERE, ROOT, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.server import ProsodyServer  # noqa: E402
from host_tools.tools import compile_library, find_tool  # noqa: E402
from relay import Relay  # noqa: E402
from xmpp_lite.client import Client  # noqa: E402
from xmpp_lite.stanza import presence as make_presence  # noqa: E402

DEVICE_SCRIPT = os.path.join(HERE, "mp_client_bench.py")
HOST = "127.0.0.1"
DEVICE = "device"
PEER = "peer"  # receives the job's chat message; the controller of the exchange
TIMEOUT_MS = 15000  # one login, or one exchange, on the device
WAIT = 10.0  # seconds for the controller to see what it waits for
VM_TIMEOUT = 40.0  # seconds for one VM run; longer counts as a failure
JOB_STATUS = "21.5 C"
MESSAGES = 1000  # each way, in the heap runs
WINDOW = 16  # controller messages not yet answered, at most
HEAP_LOW_KB = 32
HEAP_HIGH_KB = 512
RUNS_PER_SIZE = 3  # runs in a row that must pass at one heap size
CONFIRM_ABOVE_KB = (1, 2, 3, 4, 6, 8)  # sizes above the edge found that must pass as well
VM_HEAP_FOR_JOB = "256k"
TARGET_SENT_RATIO = 0.8
TARGET_ROUND_TRIPS = 2
TARGET_HEAP_KB = {False: 96, True: 104}  # plaintext, STARTTLS
ROUND_TRIPS_MARKER = b"<presence"


def met(ok):
    return "met" if ok else "NOT met"


# -- servers and the peer ---------------------------------------------------------------------------------


def start_server(state_dir, tls):
    server = ProsodyServer(state_dir, tls=tls, require_encryption=tls, direct_tls_port=False)
    server.start()
    try:
        for user in (DEVICE, PEER):
            server.register(user, secrets.token_urlsafe(12))
    except BaseException:
        server.stop()
        raise
    return server


class Peer:
    """The other account, xmpp_lite on CPython in this process, connected directly (not through the relay)."""

    def __init__(self, server, resource):
        options = {"tls": "required", "ca": server.ca_path} if server.tls else {"tls": "none"}
        self.client = Client(server.jid(PEER), server.accounts[PEER], host=HOST, port=server.c2s_port,
                             resource=resource, **options)
        self.bodies = []
        self.statuses = []
        self.client.on_message = self._on_message
        self.client.on_presence = self._on_presence
        self.jid = self.client.connect(TIMEOUT_MS)
        self.client.send_presence()  # available: messages to the bare JID reach it

    def _on_message(self, msg):
        if msg.get("type") != "error":
            self.bodies.append(msg.find_text("body") or "")

    def _on_presence(self, presence):
        self.statuses.append(presence.find_text("status") or "")

    def poll_until(self, predicate, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.client.poll(20)
        return True

    def close(self):
        self.client.close()


# -- the wire job ---------------------------------------------------------------------------------------


def job_ours(server, relay_port, token, mechanisms, sasl2=True):
    client = Client(server.jid(DEVICE), server.accounts[DEVICE], host=HOST, port=relay_port, tls="none",
                    insecure_plain=True, mechanisms=mechanisms, sasl2=sasl2)
    client.connect(TIMEOUT_MS, presence=make_presence(status=JOB_STATUS))  # the initial presence
    mechanism = client.session.mechanism + ("+SASL2" if client.session.sasl2_used else "")
    flights = client.session.login_round_trips
    client.send_message(server.jid(PEER), token)
    client.close()
    return mechanism, flights


def job_vm(micropython, server, relay_port, token, mechanisms, work):
    config = {"mode": "job", "lib": LIB, "jid": server.jid(DEVICE), "password": server.accounts[DEVICE],
              "host": HOST, "port": relay_port, "tls": "none", "insecure_plain": True,
              "mechanisms": list(mechanisms) if mechanisms else None, "timeout_ms": TIMEOUT_MS,
              "status": JOB_STATUS, "peer": server.jid(PEER), "body": token}
    path = os.path.join(work, "job.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.run([micropython, "-X", "heapsize=" + VM_HEAP_FOR_JOB, DEVICE_SCRIPT, path],
                          capture_output=True, text=True, timeout=VM_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("the VM job failed:\n" + proc.stdout + proc.stderr)
    fields = dict(item.split("=", 1) for item in proc.stdout.split()[1:])
    return fields["mechanism"], int(fields["flights"])


def job_slixmpp(server, relay_port, token, mechanism):
    import slixmpp

    async def run():
        xmpp = slixmpp.ClientXMPP(server.jid(DEVICE), server.accounts[DEVICE], plugin_config={
            "feature_mechanisms": {"unencrypted_plain": True, "unencrypted_scram": True, "use_mech": mechanism}})
        xmpp.enable_starttls = False
        xmpp.enable_direct_tls = False
        xmpp.enable_plaintext = True
        chosen = []
        done = asyncio.get_running_loop().create_future()

        async def session_start(_):
            xmpp.send_presence(pstatus=JOB_STATUS)
            xmpp.send_message(mto=server.jid(PEER), mbody=token, mtype="chat")
            await xmpp.disconnect(wait=2)
            done.done() or done.set_result(True)

        xmpp.add_event_handler("session_start", session_start)
        xmpp.add_event_handler("failed_auth", lambda _: done.done() or done.set_exception(
            RuntimeError("slixmpp could not log in")))
        xmpp.add_event_handler("auth_success", lambda _: chosen.append(
            xmpp.plugin["feature_mechanisms"].mech.name))
        xmpp.connect(HOST, relay_port)
        await asyncio.wait_for(done, WAIT)
        return chosen[0] if chosen else "?", None

    return asyncio.run(run())


def wire_row(label, server, peer, job):
    """Run one job through a fresh relay.

    Returns (label, mechanism, sent, received, round trips, the client's own count of them or None).
    """
    token = "job " + secrets.token_hex(4)
    relay = Relay(HOST, server.c2s_port).start()
    try:
        mechanism, own_count = job(relay.port, token)
        link = relay.wait_link(timeout=WAIT)
    finally:
        relay.stop()
    if relay.error is not None:
        raise RuntimeError("relay failed: %s" % relay.error)
    if not peer.poll_until(lambda: token in peer.bodies):
        raise RuntimeError("%s: the peer never got the chat message" % label)
    round_trips = link.flights_before(ROUND_TRIPS_MARKER)
    if round_trips is None:
        raise RuntimeError("%s: no presence went through the relay" % label)
    return label, mechanism, link.sent, link.received, round_trips, own_count


def measure_wire(micropython, server, peer, work):
    import slixmpp

    rows = [
        wire_row("slixmpp %s (anchor)" % slixmpp.__version__, server, peer,
                 lambda port, token: job_slixmpp(server, port, token, None)),
        wire_row("slixmpp, PLAIN pinned", server, peer,
                 lambda port, token: job_slixmpp(server, port, token, "PLAIN")),
        wire_row("xmpp_lite CPython, default", server, peer,
                 lambda port, token: job_ours(server, port, token, None)),
        wire_row("xmpp_lite CPython, PLAIN pinned", server, peer,
                 lambda port, token: job_ours(server, port, token, ("PLAIN",))),
        wire_row("xmpp_lite CPython, classic SASL", server, peer,
                 lambda port, token: job_ours(server, port, token, None, sasl2=False)),
        wire_row("xmpp_lite VM, default", server, peer,
                 lambda port, token: job_vm(micropython, server, port, token, None, work)),
        wire_row("xmpp_lite VM, PLAIN pinned", server, peer,
                 lambda port, token: job_vm(micropython, server, port, token, ("PLAIN",), work)),
    ]
    anchor = rows[0][2]
    print("wire: log in, presence with a status, one chat message to another account, close;")
    print("  plaintext, one Prosody, through a byte-counting relay on %s" % HOST)
    print("  round trips to online = client flights before the flight that carries the first <presence>;")
    print("  a flight starts with the client's first bytes and again whenever the client sends after")
    print("  new server bytes reached it (= server answers the client waited for); 'own count': the")
    print("  same as xmpp_lite's session counts it (session.login_round_trips), a check on the relay;")
    print("  xmpp_lite sends the status as its initial presence, as early as the login allows (with")
    print("  SASL2: behind its last SASL message, which the server reads once it has bound the resource)")
    print("  %-32s %-20s %5s %5s %13s %12s %10s" % ("client", "mechanism", "sent", "recv", "sent/slixmpp",
                                                    "round trips", "own count"))
    for label, mechanism, sent, received, round_trips, own_count in rows:
        print("  %-32s %-20s %5d %5d %13.2f %12d %10s" % (label, mechanism, sent, received, sent / anchor,
                                                          round_trips, "-" if own_count is None else own_count))
    print("  (the classic-SASL row is for comparison: sasl2=False, as against a server without SASL2)")
    for label, mechanism, sent, _, round_trips, _ in rows[2:]:
        if "classic" in label:
            continue
        ratio = sent / anchor
        print("  target %s: sent <= %.1f x slixmpp: %s (%.2f); round trips <= %d: %s (%d)" % (
            label, TARGET_SENT_RATIO, met(ratio <= TARGET_SENT_RATIO), ratio, TARGET_ROUND_TRIPS,
            met(round_trips <= TARGET_ROUND_TRIPS), round_trips))


# -- the heap a session needs on the VM -----------------------------------------------------------------


def exchange_run(micropython, lib, heap_kb, server, controller, work, trace=False):
    """One VM session at -X heapsize=heap_kb: 1000 messages each way.

    Returns (the device's figures (a dict), None) if all of it worked, else (None, why): a line that
    says where it failed (the VM's MemoryError and the innermost frame, and whether it was logged in).
    """
    run = "r" + secrets.token_hex(3)
    device_resource = "bench"
    config = {"mode": "exchange", "lib": lib, "jid": server.jid(DEVICE), "password": server.accounts[DEVICE],
              "host": HOST, "port": server.c2s_port, "resource": device_resource, "timeout_ms": TIMEOUT_MS,
              "count": MESSAGES, "run": run, "controller": controller.jid}
    if trace:
        config["trace"] = HERE
    if server.tls:
        config.update(tls="required", ca=server.ca_der_path)
    else:
        config.update(tls="none")
    path = os.path.join(work, "exchange.json")
    with open(path, "w") as f:
        json.dump(config, f)
    device_jid = "%s/%s" % (server.jid(DEVICE), device_resource)
    prefix = run + " "
    controller.bodies = []
    controller.statuses = []
    proc = subprocess.Popen([micropython, "-X", "heapsize=%dk" % heap_kb, DEVICE_SCRIPT, path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    replies = set()
    sent = 0
    deadline = time.monotonic() + VM_TIMEOUT
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                return None, "timeout after %.0f s" % VM_TIMEOUT  # a timeout is a failure
            if prefix + "ready" in controller.statuses:
                replies.update(body for body in controller.bodies if body.startswith(prefix + "r"))
                controller.bodies = []
                while sent < MESSAGES and sent - len(replies) < WINDOW:
                    controller.client.send_message(device_jid, prefix + str(sent))
                    sent += 1
            controller.client.poll(10)
        output = proc.stdout.read()
        figures = [line for line in output.splitlines() if line.startswith("EXCHANGE ")]
        if proc.returncode != 0 or not figures:
            return None, failure_line(output, proc.returncode)
        # The device closed after its last reply reached the server; the controller may not have it yet.
        controller.poll_until(lambda: len(replies.union(
            body for body in controller.bodies if body.startswith(prefix + "r"))) >= MESSAGES, timeout=5)
        replies.update(body for body in controller.bodies if body.startswith(prefix + "r"))
        if len(replies) != MESSAGES:
            return None, "%d of %d replies reached the controller" % (len(replies), MESSAGES)
        result = dict(item.split("=", 1) for item in figures[0].split()[1:])
        for line in output.splitlines():
            if line.startswith("qstr pool:"):  # the VM's interned names: "n_pool=6, n_qstr=665, ..."
                result.update(item.strip().split("=", 1) for item in line.split(":", 1)[1].split(","))
        return result, None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def failure_line(output, returncode):
    """One line for a failed VM run: its last error and the innermost frame, and whether it was online."""
    lines = output.strip().splitlines()
    frames = [line.strip() for line in lines if line.strip().startswith('File "')]
    error = lines[-1].strip() if lines else "no output"
    where = " in " + frames[-1].replace('File "', "").replace('", line ', ":").split(",")[0] if frames else ""
    phase = "online" if any(line.startswith("ONLINE ") for line in lines) else "logging in"
    return "%s%s (%s; exit %s)" % (error, where, phase, returncode)


def passes_always(micropython, lib, heap_kb, server, controller, work):
    """(The device's figures, None) if RUNS_PER_SIZE runs in a row pass at heap_kb, else (None, why it failed).

    Stops at the first failure.
    """
    figures = None
    for _ in range(RUNS_PER_SIZE):
        figures, failure = exchange_run(micropython, lib, heap_kb, server, controller, work)
        if figures is None:
            return None, failure
    return figures, None


def smallest_heap(micropython, lib, server, controller, work):
    """The smallest heap (KB) from which every size passes every run, as far as checked.

    Bisects on "RUNS_PER_SIZE runs pass", then checks the sizes CONFIRM_ABOVE_KB above the edge; a
    failure there moves the edge above it and the check starts again. Returns (KB, the device's
    figures at that heap, sizes checked, how the largest failing size failed: (KB, line) or None), or
    (None, None, sizes checked, None) if even HEAP_HIGH_KB fails.
    """
    runs = [0]
    failures = {}

    def check(heap_kb):
        runs[0] += 1
        figures, failure = passes_always(micropython, lib, heap_kb, server, controller, work)
        if failure is not None:
            failures[heap_kb] = failure
        return figures

    top = check(HEAP_HIGH_KB)
    if top is None:
        return None, None, runs[0], None
    low, high, figures = HEAP_LOW_KB, HEAP_HIGH_KB, top
    while True:
        while low < high:
            mid = (low + high) // 2
            seen = check(mid)
            if seen is not None:
                high, figures = mid, seen
            else:
                low = mid + 1
        failed = None
        for step in CONFIRM_ABOVE_KB:
            if high + step < HEAP_HIGH_KB and check(high + step) is None:
                failed = high + step
                break
        if failed is None:
            below = max((size for size in failures if size < high), default=None)
            return high, figures, runs[0], None if below is None else (below, failures[below])
        # A size above the edge failed: the edge is above it. Bisect again between it and the top.
        low, high, figures = failed + 1, HEAP_HIGH_KB, top


def measure_heap(micropython, mpy_cross, servers, work):
    """The heap figures for each link in servers ({tls: server}, False for plaintext), printed."""
    links = sorted(servers)
    mpy_lib = os.path.join(work, "mpy")
    compile_library(mpy_cross, mpy_lib)
    controllers = {}
    results = {}
    try:
        for tls in links:
            controllers[tls] = Peer(servers[tls], "controller")
        for tls in links:
            started = time.monotonic()
            results[tls] = smallest_heap(micropython, mpy_lib, servers[tls], controllers[tls], work)
            results[tls, "s"] = time.monotonic() - started
            results[tls, "trace"], _ = exchange_run(micropython, mpy_lib, HEAP_HIGH_KB, servers[tls],
                                                    controllers[tls], work, trace=True)
    finally:
        for controller in controllers.values():
            controller.close()

    print("heap: smallest -X heapsize from which the VM, with the library as .mpy, logs in (default")
    print("  mechanism choice), exchanges %d messages each way with a controller (xmpp_lite on CPython, at"
          % MESSAGES)
    print("  most %d unanswered) and closes cleanly, every time: %d runs in a row at each size, bisected to"
          % (WINDOW, RUNS_PER_SIZE))
    print("  1 KB, then the sizes +%s KB above the edge checked the same way; a run over %.0f s fails."
          % (", +".join(str(step) for step in CONFIRM_ABOVE_KB), VM_TIMEOUT))
    print("  GC heap in use after a collect: 'after import' once xmpp_lite.client is loaded, 'online' once")
    print("  logged in (the login's code unloaded again). The unix VM is 64-bit: its objects take up to")
    print("  twice the room they take on an ESP32. mbedTLS keeps its buffers outside the GC heap here.")
    print("  %-10s %-10s %14s %13s %10s %14s" % ("library", "link", "smallest heap", "after import", "online",
                                               "bisection"))
    for tls in links:
        kb, figures, runs, _ = results[tls]
        link = "STARTTLS" if tls else "plaintext"
        if kb is None:
            print("  %-10s %-10s %14s" % ("from .mpy", link, "> %d KB" % HEAP_HIGH_KB))
            continue
        print("  %-10s %-10s %11d KB %10.1f KB %7.1f KB %3d sizes %3.0f s" % (
            "from .mpy", link, kb, int(figures["code_alloc"]) / 1024, int(figures["online_alloc"]) / 1024,
            runs, results[tls, "s"]))
    print("  live heap (after a collect, around each stanza the session handles; one run at %d KB):"
          % HEAP_HIGH_KB)
    for tls in links:
        traced = results[tls, "trace"]
        link = "STARTTLS" if tls else "plaintext"
        if traced is None:
            print("  %s: the traced run failed" % link)
            continue
        print("  %-10s most while logging in %.1f KB, most online %.1f KB (after import %.1f KB, online %.1f KB)"
              % (link, int(traced["login_peak"]) / 1024, int(traced["online_peak"]) / 1024,
                 int(traced["code_alloc"]) / 1024, int(traced["online_alloc"]) / 1024))
        if "n_qstr" in traced:
            # The VM keeps names in pools that double: 20, 40, ... 320 (620 names in all), then 640 more
            # (about 7 KB on this VM, never freed) from the 621st name on.
            print("  %-10s names interned by the end: %s, in %s pools (the 6th, about 7 KB, from the 621st name on)"
                  % (link, traced["n_qstr"], traced["n_pool"]))
    for tls in links:
        below = results[tls][3]
        if below is not None:
            print("  %s: the largest size that failed, %d KB: %s" % (
                "STARTTLS" if tls else "plaintext", below[0], below[1]))
    for tls in links:
        kb = results[tls][0]
        print("  target: every heap >= %d KB passes %s: %s (%s)" % (
            TARGET_HEAP_KB[tls], "with STARTTLS" if tls else "plaintext",
            met(kb is not None and kb <= TARGET_HEAP_KB[tls]),
            "none up to %d KB" % HEAP_HIGH_KB if kb is None else "from %d KB" % kb))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="xmpp_lite's client against slixmpp on the wire, and the VM heap a 1000-message session "
                    "needs (the smallest heap that always passes, bisected; heap after import, once logged "
                    "in, most in use while logging in and online). Starts its own Prosody servers.")
    parser.add_argument("--part", choices=("all", "wire", "heap"), default="all",
                        help="what to measure (default: all)")
    parser.add_argument("--link", choices=("both", "plaintext", "starttls"), default="both",
                        help="the links of the heap part (default: both)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    micropython = find_tool("micropython")
    mpy_cross = find_tool("mpy-cross")
    if micropython is None or mpy_cross is None:
        sys.exit("bench_client: no micropython or mpy-cross binary (run `make bootstrap`)")
    links = () if args.part == "wire" else {"both": (False, True), "plaintext": (False,),
                                            "starttls": (True,)}[args.link]
    work = tempfile.mkdtemp(prefix="bench-client-")
    servers = {}
    try:
        for tls in sorted(set(links) | ({False} if args.part != "heap" else set())):
            servers[tls] = start_server(os.path.join(work, "tls" if tls else "plain"), tls=tls)

        if args.part != "heap":
            peer = Peer(servers[False], "desk")
            try:
                wire_started = time.monotonic()
                measure_wire(micropython, servers[False], peer, work)
                print("  (wire figures took %.1f s)" % (time.monotonic() - wire_started))
            finally:
                peer.close()

        if links:
            measure_heap(micropython, mpy_cross, {tls: servers[tls] for tls in links}, work)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("bench_client: %.0f s in all" % (time.monotonic() - started))


if __name__ == "__main__":
    main()
