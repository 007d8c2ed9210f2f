# Runs on the MicroPython VM (and on CPython): parse a stream file in chunks and
# print one line of figures. Usage: mp_parse_stream.py LIBDIR FILE CHUNK REPEAT
import gc
import sys
import time

sys.path.insert(0, sys.argv[1])
from xmpp_lite.parser import Parser  # noqa: E402

try:
    _ticks = time.ticks_us
    _diff = time.ticks_diff
except AttributeError:  # CPython
    def _ticks():
        return int(time.perf_counter() * 1000000)

    def _diff(a, b):
        return a - b


class Counter:
    def __init__(self):
        self.events = 0

    def start(self, name, attrs):
        self.events += 1

    def end(self, name):
        self.events += 1

    def text(self, data):
        self.events += 1


def run(path, chunk, repeat):
    buf = bytearray(chunk)
    view = memoryview(buf)
    best = None
    mem_alloc = getattr(gc, "mem_alloc", None)
    base = None
    for _ in range(repeat):
        counter = Counter()
        parser = Parser(counter)
        total = 0
        gc.collect()
        if base is None and mem_alloc is not None:
            base = mem_alloc()  # code, buffers and an idle parser: before any byte
        with open(path, "rb") as f:
            t0 = _ticks()
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                parser.feed(bytes(view[:n]))
                total += n
            us = _diff(_ticks(), t0)
        if best is None or us < best:
            best = us
    # No heap figures inside the timed loop: gc.mem_alloc() walks the whole heap.
    print("bytes={} events={} us={} base_alloc={}".format(total, counter.events, best, base or 0))


run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
