"""Fleet benchmark: how many simulated devices stay online and report every 10 s against one local Prosody.

Starts its own Prosody (STARTTLS, test CA), creates the accounts by in-band registration, and runs
host_tools.fleet's devices in this process (runtime "cpython": the real xmpp_lite link and node code, a
thread each) through the link emulator ("wifi" profile). After every device is online, it watches for
OBSERVE_S seconds and prints: devices online at the end, devices whose reports reached the controller
in the last REPORTED_WINDOW_S, reports per second against the expected rate, reconnections, and the CPU
time this process and Prosody spent. Target: >= 1000 devices.

Then three devices on the MicroPython VM (firmware/main.py, the library as .mpy): each VM's resident
memory and its GC heap (the cap, and what the status command says is free once online).

Run: make bench   (or .venv/bin/python tests/bench/bench_fleet.py [DEVICES])
"""

import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (ROOT, os.path.join(ROOT, "lib")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.fleet import CONNECT_SPREAD_S, Fleet, create_accounts  # noqa: E402
from host_tools.server import ProsodyServer  # noqa: E402

TARGET_DEVICES = 1000
REPORT_INTERVAL_S = 10
ONLINE_TIMEOUT_S = 300  # for the whole fleet to log in
OBSERVE_S = 60
REPORTED_WINDOW_S = 2 * REPORT_INTERVAL_S + 5  # a device counts as reporting if heard from this recently
VM_DEVICES = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


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


def measure_cpython(server, work, devices):
    start = time.time()
    accounts = create_accounts(server, ["bench-%d" % n for n in range(1, devices + 1)] + ["bench-controller"])
    print("  %d accounts created in %.1f s" % (devices + 1, time.time() - start))
    fleet = Fleet(server, accounts[:-1], accounts[-1], runtime="cpython", profile="wifi",
                  interval_s=REPORT_INTERVAL_S, work_dir=work)
    try:
        started = time.time()
        fleet.start()
        took = wait_online(fleet, devices, ONLINE_TIMEOUT_S)
        took = None if took is None else time.time() - started
        snapshot = fleet.snapshot()
        if took is None:
            print("  only %d of %d online after %d s; errors: %s" % (snapshot["online"], devices, ONLINE_TIMEOUT_S,
                                                                   snapshot["errors"]))
            return snapshot["online"]
        print("  all %d online %.1f s after the fleet started (logins spread %.0f ms apart)"
              % (devices, took, 1000 * CONNECT_SPREAD_S))
        messages_before = fleet.observer.messages
        cpu_before = (cpu_seconds(os.getpid()), cpu_seconds(server.pid))
        time.sleep(OBSERVE_S)
        now = time.time()
        snapshot = fleet.snapshot()
        view = fleet.observer.view()
        reporting = sum(1 for entry in view.values()
                        if entry["last_report"] is not None and now - entry["last_report"] <= REPORTED_WINDOW_S)
        rate = (fleet.observer.messages - messages_before) / OBSERVE_S
        cpu_host = cpu_seconds(os.getpid()) - cpu_before[0]
        cpu_server = cpu_seconds(server.pid) - cpu_before[1]
        print("  after %d s: %d online, %d reported in the last %d s, %.1f reports/s (expected %.1f), "
              "%d reconnects, errors %s" % (OBSERVE_S, snapshot["online"], reporting, REPORTED_WINDOW_S, rate,
                                          devices / REPORT_INTERVAL_S, snapshot["reconnects"], snapshot["errors"]))
        print("  CPU over those %d s: devices+controller %.0f %%, Prosody %.0f %% of one core"
              % (OBSERVE_S, 100 * cpu_host / OBSERVE_S, 100 * cpu_server / OBSERVE_S))
        return min(snapshot["online"], reporting)
    finally:
        fleet.stop()


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


def main():
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else TARGET_DEVICES
    work = tempfile.mkdtemp(prefix="xmpp-lite-bench-fleet-")
    server = ProsodyServer(os.path.join(work, "server"))
    server.start()
    try:
        print("Fleet scale: %d in-process CPython devices reporting every %d s, through the link emulator "
              "(wifi), one local Prosody, %d cores:" % (devices, REPORT_INTERVAL_S, os.cpu_count()))
        kept = measure_cpython(server, work, devices)
        print("  devices online and reporting: %d; target >= %d: %s"
              % (kept, TARGET_DEVICES, "met" if kept >= TARGET_DEVICES else "NOT met"))
        print("Memory per device on the MicroPython VM (firmware/main.py, %d devices):" % VM_DEVICES)
        measure_vm(server, work)
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
