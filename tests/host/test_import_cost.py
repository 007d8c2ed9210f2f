"""What importing the library loads, on the MicroPython VM from .mpy (as a board runs it) and on CPython.

The device path loads only what a board uses all the time; the login's mechanisms, registration, the
configuration check and the network bring-up are imported on demand, and ``xmpp_lite.unload`` gives
their heap back. tests/bench/bench_heap.py measures what each module costs.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.tools import find_tool

LIB = str(Path(__file__).resolve().parent.parent.parent / "lib")
HEAP_SIZE = "256k"
TIMEOUT_SECONDS = 60
ON_DEMAND = ("xmpp_lite.login", "xmpp_lite.bind", "xmpp_lite.sasl", "xmpp_lite.responder", "xmpp_lite.register", "xmpp_lite.config",
             "xmpp_lite.netup", "xmpp_lite.stanza_equal", "xmpp_lite.modem", "xmpp_lite.nodecmd",
             "xmpp_lite.streamerror", "xmpp_lite.checks")

LOADED = """
import sys
sys.path.insert(0, sys.argv[1])
import xmpp_lite.robust, xmpp_lite.node, xmpp_lite.device
print(" ".join(sorted(name for name in sys.modules if name.startswith("xmpp_lite"))))
"""

# Unloading gives the heap back; the next import loads the module afresh; its errors stay the same class.
UNLOAD = """
import gc, sys
sys.path.insert(0, sys.argv[1])
import xmpp_lite
import xmpp_lite.session  # the device path: what sasl imports is loaded already
from xmpp_lite import errors, unload
gc.collect()
before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
from xmpp_lite import sasl
first = sasl
del sasl
gc.collect()
loaded = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
unload("xmpp_lite.sasl")
assert "xmpp_lite.sasl" not in sys.modules and not hasattr(xmpp_lite, "sasl")
del first
gc.collect()
after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
from xmpp_lite import sasl
assert sasl.AuthError is errors.AuthError
assert sasl.choose_mechanism(["PLAIN", "SCRAM-SHA-1"]) == "SCRAM-SHA-1"
unload("xmpp_lite.sasl")
unload("xmpp_lite.sasl")  # twice: nothing left to do, no error
print("loaded", loaded - before, "kept", after - before)
"""


def _run(runtime, script, lib):
    if runtime == "micropython":
        exe = find_tool("micropython")
        if exe is None:
            pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
        command = [exe, "-X", "heapsize=" + HEAP_SIZE, "-c", script, lib]
    else:
        command = [sys.executable, "-c", script, lib]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output
    return output.strip()


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_the_device_path_loads_nothing_on_demand(runtime, mpy_lib):
    loaded = _run(runtime, LOADED, mpy_lib if runtime == "micropython" else LIB).split()
    assert "xmpp_lite.robust" in loaded and "xmpp_lite.session" in loaded
    for name in ON_DEMAND:
        assert name not in loaded, loaded


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_unload_gives_the_heap_back_and_the_module_loads_again(runtime, mpy_lib):
    output = _run(runtime, UNLOAD, mpy_lib if runtime == "micropython" else LIB)
    if runtime == "micropython":
        # What stays is its interned names (never freed, and the qstr pool may have grown for them).
        _, loaded, _, kept = output.split()
        assert int(kept) < int(loaded) // 2, output


def test_bench_heap_prints_every_module_of_the_device_path():
    # The command docs/ram.md gives; a benchmark measures, this checks that it does and says what it found.
    bench = Path(LIB).parent / "tests" / "bench" / "bench_heap.py"
    result = subprocess.run([sys.executable, str(bench)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=TIMEOUT_SECONDS * 3)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines() if line.startswith("  xmpp_lite")}
    for module in ("xmpp_lite.parser", "xmpp_lite.session", "xmpp_lite.client", "xmpp_lite.robust",
                   "xmpp_lite.node", "xmpp_lite.sasl"):
        assert float(rows[module][0]) > 0, output  # heap KB that importing it added
    assert "device path (import xmpp_lite.robust, xmpp_lite.node):" in output
    assert "imported inside functions only" in output and "sasl" in output
    assert "frozen into the firmware" in output
