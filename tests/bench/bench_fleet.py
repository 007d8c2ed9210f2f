"""Fleet benchmark: simulated devices that stay online and report, per server engine and on a 2-node cluster.

1. Each engine side by side (Prosody, ejabberd; one node each, started here with STARTTLS and the test
   CA): DEVICES in-process CPython devices (host_tools.fleet runtime "cpython": the real xmpp_lite link
   and node code, a thread each) reporting every REPORT_INTERVAL_S through the link emulator ("wifi"),
   accounts by in-band registration. Once all are online it watches for OBSERVE_S and prints: devices
   online, reports/s against the expected rate, reconnects, and CPU % of one core per 1000 devices for
   the server (all its processes) and for the simulator (this process: devices, link emulators, the
   controller).
2. A 2-node ejabberd cluster: CLUSTER_DEVICES devices (target 5000) reporting every CLUSTER_INTERVAL_S,
   the devices taking turns between the nodes; the same figures, and online devices per node.
3. Three devices on the MicroPython VM (firmware/main.py, the library as .mpy): each VM's resident memory
   and its GC heap (the cap, and what the status command says is free once online).

Times and CPU shares are measured on a shared machine: noisy. Device counts are not.

Run: make bench   (or .venv/bin/python tests/bench/bench_fleet.py [--devices N] [--cluster-devices N]
                   [--engines prosody,ejabberd] [--observe S] [--no-vm])
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (ROOT, os.path.join(ROOT, "lib")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.engines import create  # noqa: E402
from host_tools.fleet import CONNECT_SPREAD_S, Fleet, create_accounts  # noqa: E402

ENGINES = ("prosody", "ejabberd")
TARGET_DEVICES = 1000  # per engine, one node
REPORT_INTERVAL_S = 10
CLUSTER_TARGET_DEVICES = 5000  # on 2 ejabberd nodes
CLUSTER_INTERVAL_S = 60
CLUSTER_NODES = 2
# Thousands of logins 5 ms apart overrun one simulator process (TLS and SCRAM for each, a thread each).
CLUSTER_CONNECT_SPREAD_S = 0.02
ONLINE_TIMEOUT_S = 600  # for the whole fleet to log in
OBSERVE_S = 60
VM_DEVICES = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_cpu_seconds(server):
    """CPU time of every process of the server: each node runs in a process group (session) of its own."""
    groups = {node["pid"] for node in server.nodes() if node["pid"]}
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups or int(entry) in groups:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_online(fleet, count, timeout):
    start = time.time()
    while time.time() - start < timeout:
        snapshot = fleet.snapshot()
        if snapshot["online"] >= count:
            return time.time() - start
        if snapshot["stopped"]:
            break
        time.sleep(1)
    return None


def measure_cpython(server, work, devices, interval_s, observe_s, prefix, spread_s=CONNECT_SPREAD_S):
    """Run ``devices`` against ``server``; a dict of figures (None values when the fleet did not get online)."""
    start = time.time()
    accounts = create_accounts(server, ["%s-%d" % (prefix, n) for n in range(1, devices + 1)]
                               + ["%s-controller" % prefix], threads=16)
    print("  %d accounts created in %.1f s" % (devices + 1, time.time() - start))
    fleet = Fleet(server, accounts[:-1], accounts[-1], runtime="cpython", profile="wifi",
                  interval_s=interval_s, work_dir=work, connect_spread_s=spread_s)
    result = {"devices": devices, "online": 0, "reports_per_s": None, "expected_per_s": devices / interval_s,
              "reconnects": None, "server_cpu": None, "simulator_cpu": None, "login_s": None}
    try:
        started = time.time()
        fleet.start()
        took = wait_online(fleet, devices, ONLINE_TIMEOUT_S)
        snapshot = fleet.snapshot()
        result["online"] = snapshot["online"]
        if took is None:
            print("  only %d of %d online after %d s; errors: %s" % (snapshot["online"], devices, ONLINE_TIMEOUT_S,
                                                                   snapshot["errors"]))
            return result
        result["login_s"] = time.time() - started
        print("  all %d online %.1f s after the fleet started (logins spread %.0f ms apart)"
              % (devices, result["login_s"], 1000 * spread_s))
        messages_before = fleet.observer.messages
        reconnects_before = snapshot["reconnects"]
        cpu_before = (cpu_seconds(os.getpid()), server_cpu_seconds(server))
        time.sleep(observe_s)
        snapshot = fleet.snapshot()
        result.update(
            online=snapshot["online"],
            reports_per_s=(fleet.observer.messages - messages_before) / observe_s,
            reconnects=snapshot["reconnects"],
            reconnects_while_observed=snapshot["reconnects"] - reconnects_before,
            online_per_server=snapshot["online_per_server"],
            simulator_cpu=100 * (cpu_seconds(os.getpid()) - cpu_before[0]) / observe_s,
            server_cpu=100 * (server_cpu_seconds(server) - cpu_before[1]) / observe_s,
            errors=snapshot["errors"])
        print("  after %d s: %d online (per node %s), %.1f reports/s (expected %.1f), %d reconnects, errors %s"
              % (observe_s, result["online"], result["online_per_server"], result["reports_per_s"],
                 result["expected_per_s"], result["reconnects"], result["errors"]))
        print("  CPU over those %d s, %% of one core: simulator %.0f %%, server %.0f %%"
              % (observe_s, result["simulator_cpu"], result["server_cpu"]))
        return result
    finally:
        fleet.stop()


def per_thousand(value, devices):
    return "-" if value is None else "%.1f" % (value * 1000 / devices)


def print_side_by_side(results):
    print("Side by side (CPU: % of one core per 1000 devices; reports/s: measured / expected):")
    print("  %-22s %8s %8s %14s %11s %12s %14s" % ("server", "devices", "online", "reports/s", "reconnects",
                                                   "server CPU", "simulator CPU"))
    for name, r in results:
        rate = "-" if r["reports_per_s"] is None else "%.1f / %.1f" % (r["reports_per_s"], r["expected_per_s"])
        print("  %-22s %8d %8d %14s %11s %12s %14s" % (
            name, r["devices"], r["online"], rate, "-" if r["reconnects"] is None else r["reconnects"],
            per_thousand(r["server_cpu"], r["devices"]), per_thousand(r["simulator_cpu"], r["devices"])))


def measure_vm(server, work):
    accounts = create_accounts(server, ["vm-%d" % n for n in range(1, VM_DEVICES + 1)] + ["vm-controller"])
    fleet = Fleet(server, accounts[:-1], accounts[-1], runtime="micropython", profile="wifi",
                  interval_s=REPORT_INTERVAL_S, work_dir=os.path.join(work, "vm"))
    try:
        fleet.start()
        if wait_online(fleet, VM_DEVICES, 60) is None:
            print("  the VM devices did not come online: %s" % [d.lines[-3:] for d in fleet.devices])
            return
        for device in fleet.devices:
            fleet.observer.command(fleet.server.jid(device.name), "status")
        deadline = time.time() + 20
        free = {}
        while time.time() < deadline and len(free) < VM_DEVICES:
            for when, sender, body in list(fleet.observer.replies):
                match = re.search(r"heap free (\d+)", body)
                if match:
                    free[(sender or "").split("/")[0]] = int(match.group(1))
            time.sleep(0.2)
        rss = [rss_kb(device.process.pid) for device in fleet.devices]
        heap_kb = int(fleet.heap.rstrip("k"))
        print("  %d VMs online, STARTTLS, library from .mpy, GC heap capped at %d KB" % (VM_DEVICES, heap_kb))
        print("  resident memory per VM: %s KB (mean %.0f KB)" % (", ".join(str(r) for r in rss), sum(rss) / len(rss)))
        if free:
            used = [heap_kb - value / 1024 for value in free.values()]
            print("  GC heap in use once online (cap minus 'heap free'): %s KB"
                  % ", ".join("%.0f" % u for u in used))
    finally:
        fleet.stop()


def run_engine(engine, work, devices, interval_s, observe_s, nodes=1, prefix="bench", spread_s=CONNECT_SPREAD_S):
    options = {"nodes": nodes} if nodes > 1 else {}
    server = create(engine, os.path.join(work, "%s-%d" % (engine, nodes)), **options)
    server.start()
    try:
        return measure_cpython(server, work, devices, interval_s, observe_s, prefix, spread_s)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description="Fleet benchmark per server engine and on a 2-node cluster.")
    parser.add_argument("devices_positional", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=TARGET_DEVICES, help="devices per engine (one node)")
    parser.add_argument("--cluster-devices", type=int, default=CLUSTER_TARGET_DEVICES,
                        help="devices on the 2-node ejabberd cluster (0: skip)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="engines side by side ('' to skip)")
    parser.add_argument("--observe", type=float, default=OBSERVE_S, help="seconds watched once all are online")
    parser.add_argument("--no-vm", action="store_true", help="skip the MicroPython VM memory figures")
    parser.add_argument("--cluster-spread", type=float, default=CLUSTER_CONNECT_SPREAD_S,
                        help="seconds between two cluster devices' logins (default %s)" % CLUSTER_CONNECT_SPREAD_S)
    args = parser.parse_args()
    devices = args.devices_positional or args.devices
    work = tempfile.mkdtemp(prefix="xmpp-lite-bench-fleet-")
    results = []
    try:
        for engine in filter(None, args.engines.split(",")):
            print("Fleet on %s (one node): %d in-process CPython devices reporting every %d s, through the link "
                  "emulator (wifi), %d cores:" % (engine, devices, REPORT_INTERVAL_S, os.cpu_count()))
            results.append((engine, run_engine(engine, work, devices, REPORT_INTERVAL_S, args.observe)))
        if args.cluster_devices:
            print("Fleet on a %d-node ejabberd cluster: %d devices reporting every %d s, taking turns between "
                  "the nodes:" % (CLUSTER_NODES, args.cluster_devices, CLUSTER_INTERVAL_S))
            cluster = run_engine("ejabberd", work, args.cluster_devices, CLUSTER_INTERVAL_S, args.observe,
                                 nodes=CLUSTER_NODES, prefix="cl", spread_s=args.cluster_spread)
            results.append(("ejabberd, %d nodes" % CLUSTER_NODES, cluster))
            met = cluster["online"] == args.cluster_devices and cluster["reconnects"] == 0
            print("  target: %d devices online with 0 reconnects: %s" % (
                CLUSTER_TARGET_DEVICES, "met" if met and args.cluster_devices >= CLUSTER_TARGET_DEVICES
                else "NOT met" if not met else "met for %d devices" % args.cluster_devices))
        if results:
            print_side_by_side(results)
        if not args.no_vm:
            print("Memory per device on the MicroPython VM (firmware/main.py, %d devices, Prosody):" % VM_DEVICES)
            server = create("prosody", os.path.join(work, "vm-server"))
            server.start()
            try:
                measure_vm(server, work)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
