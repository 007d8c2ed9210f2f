"""asyncio driver benchmark: its GC heap beside the poll driver's, and the loop's worst stall during login.

Starts its own Prosody (STARTTLS required, SCRAM-SHA-1) and runs tests/bench/mp_aio_bench.py on the
MicroPython VM with the library compiled to .mpy, as a board loads it:

- heap (bytes of GC heap in use above the script's own, after a collect; exact, not noisy): after
  importing the driver, and online (logged in with STARTTLS, one message sent and acked), for
  xmpp_lite.robust.RobustClient (poll) and xmpp_lite.aio.AsyncClient (asyncio);
- the worst stall of a 10 ms ticker task while AsyncClient connects, runs STARTTLS and logs in (timed:
  noisy on a loaded machine), for the first login (SCRAM's PBKDF2 runs) and the next ones (the salted
  key cached); the poll driver's login time is its stall: connect() blocks for all of it;
- how long getaddrinfo blocks, for a numeric address and for "localhost".

Run: make bench   (or .venv/bin/python tests/bench/bench_aio.py)
"""

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (ROOT,):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.server import ProsodyServer  # noqa: E402
from host_tools.tools import compile_library, find_tool  # noqa: E402

DEVICE_SCRIPT = os.path.join(HERE, "mp_aio_bench.py")
VM_HEAP = "256k"
VM_TIMEOUT = 60.0
LOGINS = 6  # AsyncClient logins per run: the first with an empty SCRAM cache
ROUNDS = 3  # runs of each driver


def run_vm(micropython, config_path):
    result = subprocess.run([micropython, "-X", "heapsize=" + VM_HEAP, DEVICE_SCRIPT, config_path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=VM_TIMEOUT)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("bench_aio: the VM run failed:\n" + result.stdout)


def main():
    micropython = find_tool("micropython")
    mpy_cross = find_tool("mpy-cross")
    if micropython is None or mpy_cross is None:
        raise SystemExit("bench_aio: micropython and mpy-cross are needed; run `make bootstrap`")
    with tempfile.TemporaryDirectory() as work:
        lib = compile_library(mpy_cross, os.path.join(work, "mpy"))
        server = ProsodyServer(os.path.join(work, "prosody"), tls=True, require_encryption=True)
        server.start()
        try:
            passwords = {user: secrets.token_urlsafe(12) for user in ("device", "peer")}
            for user, password in passwords.items():
                server.register(user, password)
            runs = {"poll": [], "aio": []}
            for _ in range(ROUNDS):
                for driver in runs:
                    path = os.path.join(work, "config-%s.json" % driver)
                    with open(path, "w") as f:
                        json.dump({"lib": lib, "driver": driver, "jid": server.jid("device"),
                                   "password": passwords["device"], "host": "127.0.0.1", "port": server.c2s_port,
                                   "ca": server.ca_der_path, "peer": server.jid("peer"), "logins": LOGINS}, f)
                    runs[driver].append(run_vm(micropython, path))
        finally:
            server.stop()
    report(runs)


def report(runs):
    poll, aio = runs["poll"][-1], runs["aio"][-1]
    print("GC heap on the MicroPython VM (64-bit), library as .mpy, bytes above the script's own (exact):")
    print("  %-28s %10s %10s" % ("", "poll", "asyncio"))
    print("  %-28s %10d %10d" % ("after import", poll["import_bytes"], aio["import_bytes"]))
    print("  %-28s %10d %10d" % ("online (STARTTLS, SM)", poll["online_bytes"], aio["online_bytes"]))
    print("  asyncio - poll: import %+d, online %+d" % (aio["import_bytes"] - poll["import_bytes"],
                                                         aio["online_bytes"] - poll["online_bytes"]))
    first = [run["stall_ms"][0] for run in runs["aio"]]
    later = [stall for run in runs["aio"] for stall in run["stall_ms"][1:]]
    poll_login = [run["login_ms"][0] for run in runs["poll"]]
    aio_login = [run["login_ms"][0] for run in runs["aio"]]
    print("Worst stall of a 10 ms ticker during connect + STARTTLS + login, ms (timed: noisy), %d runs:"
          % len(runs["aio"]))
    print("  asyncio, first login (PBKDF2):     max %d, median %d" % (max(first), statistics.median(first)))
    print("  asyncio, later logins (key cached): max %d, median %d" % (max(later), statistics.median(later)))
    print("  poll driver (connect() blocks):     max %d, median %d (its login time)"
          % (max(poll_login), statistics.median(poll_login)))
    print("  login time with asyncio, first:     median %d" % statistics.median(aio_login))
    lookups = [run["getaddrinfo_ms"] for run in runs["aio"] + runs["poll"]]
    print("getaddrinfo blocks the loop: numeric address max %d ms, \"localhost\" max %d ms"
          % (max(item["numeric"] for item in lookups), max(item["localhost"] for item in lookups)))


if __name__ == "__main__":
    main()
