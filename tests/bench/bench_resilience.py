"""Resilience benchmark: the cost of heartbeats on an idle link, and how fast a dead link is found and resumed.

Starts its own plaintext Prosody servers (one with XEP-0198 stream management, one without) and runs the
device of tests/host/robust_device.py (xmpp_lite.robust) on the MicroPython VM through the link emulator
(host_tools.linkemu). Prints, in one run (about two minutes):

- Application bytes per hour on an idle link whose liveness is proven every 60 s (probe_interval 60 s,
  whitespace after 50 s without sending), both directions, counted by the emulator: with stream
  management (the probe is <r/>, answered by <a/>) and without it (the probe is an XEP-0199 ping, the
  anchor). Time runs 100 times faster than real (probe every 600 ms); bytes per probe do not depend on
  the clock, so the hourly figure is the measured bytes times the time scale. Target <= 4 KB/h.
- A silent link death (black hole) over the GPRS profile (250-750 ms one way, 40 kbit/s) with the
  heartbeat timing at 1/10 of the defaults (probe after 6 s of silence, 2 s to answer): time from the
  death to its detection, the bound probe_interval + probe_timeout, and the time until the device is
  online again by resuming, for several deaths at random moments.
- Round trips (client flights before online) of the first login and of each resumption.

Run: make bench   (or .venv/bin/python tests/bench/bench_resilience.py)
"""

import json
import os
import queue
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(ROOT, "lib")
for _path in (ROOT, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.linkemu import PROFILES, LinkEmulator  # noqa: E402
from host_tools.server import ProsodyServer  # noqa: E402
from host_tools.tools import find_tool  # noqa: E402
from xmpp_lite.keepalive import PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS, WS_INTERVAL_MS  # noqa: E402

DEVICE_SCRIPT = os.path.join(ROOT, "tests", "host", "robust_device.py")
VM_HEAP = "256k"
WAIT = 30.0

# Idle cost: real heartbeat timings, run TIME_SCALE times faster.
LIVENESS_MS = 60000
IDLE_WS_MS = 50000
TIME_SCALE = 100
IDLE_WINDOW_S = 30.0  # 50 probe periods at this scale
TARGET_BYTES_PER_HOUR = 4096

# Dead links: the defaults at DEATH_SCALE.
DEATH_SCALE = 10
DEATHS = 4
SEED = 2026


class Device:
    """robust_device.py on the VM; lines arrive with the host's monotonic time."""

    def __init__(self, micropython, work, name, settings):
        path = os.path.join(work, name + ".json")
        with open(path, "w") as f:
            json.dump(settings, f)
        self.lines = queue.Queue()
        self.seen = []
        self.process = subprocess.Popen([micropython, "-X", "heapsize=" + VM_HEAP, DEVICE_SCRIPT, path],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.process.stdout:
            self.lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def wait_for(self, fragment, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if fragment in line:
                return when, line
        raise SystemExit("bench_resilience: no %r from the device; its output:\n%s" % (fragment, "\n".join(self.seen)))

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


def settings(server, port, resource, **extra):
    base = {
        "lib": LIB, "host": "127.0.0.1", "port": port, "tls": "none", "mechanisms": ["PLAIN"], "ca": None,
        "jid": server.jid("device"), "password": server.accounts["device"], "resource": resource,
        "controller": server.jid("device") + "/nobody", "backoff_initial_ms": 200, "backoff_max_ms": 2000,
        "backoff_stable_ms": 10000, "connect_timeout_ms": 15000, "send": 0, "max_in_flight": 8,
        "poll_ms": 20, "max_run_ms": 600000, "status": "idle",
    }
    base.update(extra)
    return base


def start_server(work, name, smacks):
    server = ProsodyServer(os.path.join(work, name), tls=False, require_encryption=False, smacks=smacks)
    server.start()
    server.register("device", secrets.token_urlsafe(12))
    return server


def flights(line):
    return int(line.rsplit("flights=", 1)[1])


def measure_idle(micropython, work, servers):
    """Bytes per hour with liveness proven every LIVENESS_MS, for each server, measured side by side."""
    runs = []
    for label, server in servers:
        link = LinkEmulator(target=("127.0.0.1", server.c2s_port)).start()
        device = Device(micropython, work, "idle-%d" % len(runs), settings(
            server, link.port, "idle", ws_interval_ms=IDLE_WS_MS // TIME_SCALE,
            probe_interval_ms=LIVENESS_MS // TIME_SCALE, probe_timeout_ms=PROBE_TIMEOUT_MS // TIME_SCALE))
        runs.append((label, link, device))
    try:
        for _, _, device in runs:
            device.wait_for("STATE online fresh")
        time.sleep(1.0)  # the login's own traffic (enable, presence, acks) settles
        before = [dict(link.stats) for _, link, _ in runs]
        start = time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        elapsed = time.monotonic() - start
        results = []
        for (label, link, device), first in zip(runs, before):
            now = link.stats
            up = now["bytes_up"] - first["bytes_up"]
            down = now["bytes_down"] - first["bytes_down"]
            simulated_hours = elapsed * TIME_SCALE / 3600
            results.append((label, up, down, (up + down) / simulated_hours, link.stats["accepted"]))
        return results
    finally:
        for _, link, device in runs:
            device.stop()
            link.stop()


def measure_deaths(micropython, work, server):
    """Black holes at random moments over the GPRS profile; (detection ms, back online ms, flights) each."""
    rng = random.Random(SEED)
    probe_interval = PROBE_INTERVAL_MS // DEATH_SCALE
    probe_timeout = PROBE_TIMEOUT_MS // DEATH_SCALE
    link = LinkEmulator(target=("127.0.0.1", server.c2s_port), profile=PROFILES["gprs"], seed=SEED).start()
    device = Device(micropython, work, "deaths", settings(
        server, link.port, "deaths", ws_interval_ms=WS_INTERVAL_MS // DEATH_SCALE,
        probe_interval_ms=probe_interval, probe_timeout_ms=probe_timeout, backoff_initial_ms=100))
    deaths = []
    try:
        _, line = device.wait_for("STATE online fresh", timeout=60)
        login_flights = flights(line)
        for _ in range(DEATHS):
            time.sleep(rng.uniform(1.0, probe_interval / 1000))
            died = time.monotonic()
            link.blackhole()
            detected, _ = device.wait_for("STATE offline", timeout=60)
            online, line = device.wait_for("STATE online", timeout=60)
            deaths.append(((detected - died) * 1000, (online - detected) * 1000, line.split()[3], flights(line)))
        return probe_interval + probe_timeout, login_flights, deaths
    finally:
        device.stop()
        link.stop()


def main():
    micropython = find_tool("micropython")
    if micropython is None:
        raise SystemExit("bench_resilience: no micropython binary; run `make bootstrap`")
    work = tempfile.mkdtemp(prefix="xmpp-lite-bench-")
    servers = []
    try:
        smacks = start_server(work, "smacks", True)
        servers.append(smacks)
        plain = start_server(work, "no-smacks", False)
        servers.append(plain)
        print("Idle link, liveness proven every %d s, whitespace after %d s without sending "
              "(time x%d, %.0f s measured = %.0f simulated min), MicroPython VM:"
              % (LIVENESS_MS // 1000, IDLE_WS_MS // 1000, TIME_SCALE, IDLE_WINDOW_S,
                 IDLE_WINDOW_S * TIME_SCALE / 60))
        idle = measure_idle(micropython, work, [("XEP-0198 <r/>", smacks), ("XEP-0199 ping (anchor)", plain)])
        anchor = idle[1][3]
        print("  %-24s %10s %10s %12s %10s %s" % ("probe", "up B", "down B", "bytes/hour", "x anchor",
                                                   "connections"))
        for label, up, down, per_hour, accepted in idle:
            print("  %-24s %10d %10d %12.0f %10.2f %d" % (label, up, down, per_hour, per_hour / anchor, accepted))
        ours = idle[0][3]
        print("  target <= %d B/h with stream management: %s" % (
            TARGET_BYTES_PER_HOUR, "met" if ours <= TARGET_BYTES_PER_HOUR else "NOT met"))

        bound, login_flights, deaths = measure_deaths(micropython, work, smacks)
        print("Silent link death over the GPRS profile, heartbeat at 1/%d of the defaults "
              "(probe after %d ms silence, %d ms to answer; detection bound %d ms):"
              % (DEATH_SCALE, PROBE_INTERVAL_MS // DEATH_SCALE, PROBE_TIMEOUT_MS // DEATH_SCALE, bound))
        print("  %-6s %14s %12s %20s %8s" % ("death", "detected (ms)", "x bound", "back online (ms)", "how"))
        for index, (detect_ms, back_ms, how, count) in enumerate(deaths):
            print("  %-6d %14.0f %12.2f %20.0f %8s" % (index + 1, detect_ms, detect_ms / bound, back_ms, how))
        worst = max(death[0] for death in deaths)
        print("  worst detection %.0f ms = %.2f x the bound; with the defaults the bound is %d s"
              % (worst, worst / bound, (PROBE_INTERVAL_MS + PROBE_TIMEOUT_MS) // 1000))
        print("Round trips to online (plaintext, PLAIN pinned): full login %d, resumption %s"
              % (login_flights, ", ".join(str(death[3]) for death in deaths)))
    finally:
        for server in servers:
            server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
