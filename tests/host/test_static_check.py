"""Device code checked against the API of MicroPython's ESP32 port, with mypy and micropython-esp32-stubs.

mypy runs with tests/host/mypy_device.ini and, as its typeshed, a folder laid out here
from the installed micropython-stdlib-stubs and micropython-esp32-stubs: socket, time,
ssl, machine, network, esp32, ... are then MicroPython's, and CPython's standard
library is not seen at all. Probe files show that the check fails a call the port does
not have and passes one it has.

By hand, on the device code or any file: .venv/bin/python tests/host/test_static_check.py [FILE ...]
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("mypy_device.ini")
STUB_DISTRIBUTIONS = ("micropython-stdlib-stubs", "micropython-esp32-stubs")
MYPY_TIMEOUT_S = 120
_FINDING = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)  \[(?P<code>[a-z-]+)\]$", re.M)

def device_files():
    """The device code as it is now: lib/xmpp_lite/*.py and firmware/*.py, relative to the root."""
    # manifest.py is read by the firmware build, not run by a board.
    firmware = sorted(path for path in ROOT.glob("firmware/*.py") if path.name != "manifest.py")
    files = sorted(ROOT.glob("lib/xmpp_lite/*.py")) + firmware
    return [str(path.relative_to(ROOT)) for path in files]


def build_typeshed(dest):
    """Lay out a typeshed folder in ``dest`` from the installed MicroPython stub packages.

    mypy takes the modules listed in stdlib/VERSIONS from the typeshed folder and
    nowhere else, so the ESP32 modules (machine, socket, time, ...) go into stdlib/
    beside the reduced standard library, and VERSIONS names them too.
    """
    stdlib = Path(dest) / "stdlib"
    stdlib_stubs = importlib.metadata.distribution("micropython-stdlib-stubs")
    esp32_stubs = importlib.metadata.distribution("micropython-esp32-stubs")

    def copy(distribution, prefix, into):
        """Copy the distribution's .pyi files under ``prefix``; the top-level module names."""
        modules = set()
        for file in distribution.files or ():
            name = file.as_posix()
            if name.endswith(".pyi") and name.startswith(prefix):
                relative = name[len(prefix):]
                target = into / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file.locate(), target)
                top = relative.split("/")[0]
                modules.add(top[:-len(".pyi")] if top.endswith(".pyi") else top)
        return modules

    copy(stdlib_stubs, "stdlib/", stdlib)
    copy(stdlib_stubs, "stubs/", Path(dest) / "stubs")
    copy(stdlib_stubs, "_mpy_shed/", stdlib / "_mpy_shed")  # helpers the stubs import
    added = copy(esp32_stubs, "", stdlib) | {"_mpy_shed"}
    added.discard("__builtins__")  # a Pyright convention; mypy has no such module
    versions = Path(stdlib_stubs.locate_file("stdlib/VERSIONS")).read_text()
    versions += "# micropython-esp32-stubs\n" + "".join("%s: 3.0-\n" % name for name in sorted(added))
    (stdlib / "VERSIONS").write_text(versions)
    return str(dest)


def run_mypy(typeshed, cache_dir, files):
    """mypy over ``files`` (paths relative to the root): (exit status, findings, full output).

    A finding is (path, line, code, message); only errors count, notes are left out.
    """
    env = {key: value for key, value in os.environ.items() if key not in ("MYPYPATH", "MYPY_CACHE_DIR")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--custom-typeshed-dir", typeshed,
         "--cache-dir", str(cache_dir), "--no-color-output", "--no-pretty", *files],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=MYPY_TIMEOUT_S)
    output = result.stdout + result.stderr
    findings = [(match["path"], int(match["line"]), match["code"], match["message"])
                for match in _FINDING.finditer(result.stdout)]
    if result.returncode not in (0, 1) or (result.returncode == 1 and not findings):
        raise AssertionError("mypy did not run (exit %d):\n%s" % (result.returncode, output))
    return result.returncode, findings, output


@pytest.fixture(scope="module")
def mypy_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("mypy-device")
    return build_typeshed(base / "typeshed"), base / "cache"


@pytest.fixture(scope="module")
def device_check(mypy_dirs):
    files = device_files()
    assert "lib/xmpp_lite/_compat.py" in files
    return run_mypy(*mypy_dirs, files)


def check_probe(mypy_dirs, tmp_path, source):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    return run_mypy(*mypy_dirs, [str(probe)])


def test_the_stubs_are_the_pinned_version():
    pinned = re.search(r'"micropython-esp32-stubs==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "pyproject.toml: the dev extras pin micropython-esp32-stubs"
    assert importlib.metadata.version("micropython-esp32-stubs") == pinned.group(1)


def test_a_call_the_port_does_not_have_fails(mypy_dirs, tmp_path):
    status, findings, output = check_probe(mypy_dirs, tmp_path, (
        "import machine\n"
        "import time\n"
        "machine.no_such_function()\n"
        "def uptime_ns():\n"
        "    return time.monotonic_ns()  # CPython has it, MicroPython does not\n"
        "def wifi():\n"
        "    import network\n"
        "    network.WLAN(network.STA_IF).connect('ssid', 'key', 'one too many', 'and another')\n"
    ))
    assert status == 1, output
    found = {(line, code, message) for _, line, code, message in findings}
    assert (3, "attr-defined", 'Module has no attribute "no_such_function"') in found, output
    assert (5, "attr-defined", 'Module has no attribute "monotonic_ns"') in found, output
    assert [line for line, code, _ in found if code == "call-arg"] == [8], output


def test_a_cpython_only_module_is_not_found(mypy_dirs, tmp_path):
    status, findings, output = check_probe(mypy_dirs, tmp_path, "import hmac\nimport threading\n")
    assert status == 1, output
    assert [(line, code) for _, line, code, _ in findings] == [(1, "import-not-found"), (2, "import-not-found")]


def test_correct_device_code_passes(mypy_dirs, tmp_path):
    status, findings, output = check_probe(mypy_dirs, tmp_path, (
        "import esp32\n"
        "import machine\n"
        "import network\n"
        "import select\n"
        "import socket\n"
        "import time\n"
        "from micropython import const\n"
        "from xmpp_lite._compat import MICROPYTHON, ticks_diff, ticks_ms\n"
        "_PORT = const(5222)\n"
        "def main():\n"
        "    led = machine.Pin(2, machine.Pin.OUT)\n"
        "    led.value(1)\n"
        "    adc = machine.ADC(machine.Pin(34))\n"
        "    adc.atten(machine.ADC.ATTN_11DB)\n"
        "    level = adc.read_u16()\n"
        "    wlan = network.WLAN(network.STA_IF)\n"
        "    wlan.active(True)\n"
        "    wlan.connect('ssid', 'key')\n"
        "    sock = socket.socket()\n"
        "    sock.setblocking(False)\n"
        "    poller = select.poll()\n"
        "    poller.register(sock, select.POLLIN | select.POLLOUT)\n"
        "    address = socket.getaddrinfo('example.net', _PORT)[0][-1]\n"
        "    start = time.ticks_ms()\n"
        "    time.sleep_ms(10)\n"
        "    elapsed = time.ticks_diff(time.ticks_ms(), start) + ticks_diff(ticks_ms(), start)\n"
        "    fahrenheit = esp32.raw_temperature()\n"
        "    machine.WDT(timeout=120000).feed()\n"
        "    return level, address, elapsed, fahrenheit\n"
        "if not MICROPYTHON:\n"
        "    time.monotonic_ns()  # the CPython side of a runtime branch is not checked\n"
    ))
    assert (status, findings) == (0, []), output


def test_device_code_passes_the_check(device_check):
    """Device code calls only what MicroPython's ESP32 port has (or says on the line why the stubs are wrong)."""
    status, findings, output = device_check
    assert (status, findings) == (0, []), ("device code calls what MicroPython's ESP32 port lacks (or the stubs "
                                           "do not know):\n" + output)


def main(argv):
    """Check the given files (default: the device code) and print mypy's report."""
    with tempfile.TemporaryDirectory() as base:
        typeshed = build_typeshed(os.path.join(base, "typeshed"))
        files = [os.path.relpath(os.path.abspath(path), ROOT) for path in argv] or device_files()
        status, _, output = run_mypy(typeshed, os.path.join(base, "cache"), files)
    sys.stdout.write(output)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


_STATE = re.compile(r"^(_(?:IDLE|OPENING|STARTTLS|TLS|AUTH|BIND|SESSION|ONLINE|REGISTER|RESUME|CLOSING|CLOSED|ERROR))"
                    r" = const\((\d+)\)", re.M)


def test_the_session_states_have_the_same_numbers_everywhere():
    # login, bind and streamerror fold the session's state numbers into their code (const: no names on the
    # heap) rather than importing them, so nothing but this keeps the copies in step with session's.
    def states(module):
        return {name: int(value) for name, value in _STATE.findall((ROOT / "lib/xmpp_lite" / module).read_text())}

    session = states("session.py")
    assert len(session) == 13 and sorted(session.values()) == list(range(13))
    for module in ("login.py", "bind.py", "streamerror.py"):
        copy = states(module)
        assert copy, module
        assert {name: session[name] for name in copy} == copy, module
