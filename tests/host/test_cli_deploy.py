"""`xmpp-lite deploy` to a simboard with the real mpremote, against a real Prosody.

A deploy compiles the library for the board's .mpy version, copies it with the firmware, the board
profile, the CA and config.json (last), checks every file's sha256 on the board and resets it; the
board then boots main.py and its first report reaches the controller (slixmpp). A bad config, a
missing CA and an unreachable board fail in one line before anything is copied.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from host_tools import cmd_deploy
from host_tools.cli import CommandError
from host_tools.server import free_port
from host_tools.tools import LIBRARY, find_tool
from slixpeer import Controller
from test_cli_simboard import ENV, ROOT, Simboard, pid_alive

BOARD = "esp32-devkitc"
DEPLOY_TIMEOUT = 120


def xmpp_lite(*args, timeout=DEPLOY_TIMEOUT):
    return subprocess.run([sys.executable, "-m", "host_tools"] + [str(arg) for arg in args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=timeout)


def one_line_error(result, *fragments):
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("xmpp-lite: error: deploy: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture
def board(tmp_path):
    simboard = Simboard(tmp_path / "flash")
    yield simboard
    simboard.stop()
    for pid in simboard.vm_pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def write_config(folder, server, with_ca=True, **sections):
    config = {
        "network": {"kind": "none"},
        "xmpp": {"jid": server.jid("device1"), "password": server.accounts["device1"], "server": "127.0.0.1",
                 "port": server.c2s_port, "ca": "ca.der", "resource": "simboard"},
        "controller": server.jid("controller"),
        "device": {"ntp": False},
    }
    for name, values in sections.items():
        config[name].update(values)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    if with_ca:
        shutil.copy(server.ca_der_path, folder / "ca.der")
    return path


def report_from(controller, sender, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stanza = controller.messages.get(timeout=0.2)
        except queue.Empty:
            continue
        if str(stanza["from"]) == sender:
            return str(stanza["body"])
    pytest.fail("no message from %s within %d s" % (sender, timeout), pytrace=False)


def test_deploy_and_the_board_comes_online(prosody, board, tmp_path):
    controller = Controller(prosody)
    try:
        controller.send_presence()  # available, so that the board's reports to the bare JID reach it
        config = write_config(tmp_path, prosody)
        result = xmpp_lite("deploy", "--port", board.url, "--config", config, "--board", BOARD)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        modules = sorted(name[:-3] for name in os.listdir(LIBRARY) if name.endswith(".py"))
        files = re.findall(r"^  \[(\d+)/(\d+)\] :(.+?) +(\d+) bytes  (copied|up to date)$", out, re.M)
        names = [name for _, _, name, _, _ in files]
        assert names == (["lib/xmpp_lite/%s.mpy" % module for module in modules]
                         + ["boot.py", "main.py", "board.json (%s)" % BOARD, "ca.der", "config.json"])  # config last
        assert all(state == "copied" for *_, state in files)
        assert "the board runs MicroPython 1.29" in out and ".mpy v6.3, x64" in out
        assert "verified %d files on the board (sha256" % len(names) in out
        assert "the board was reset and starts main.py" in out

        # What landed is what a board needs, byte for byte.
        flash = board.flash
        assert sorted(os.listdir(os.path.join(flash, "lib", "xmpp_lite"))) == sorted(m + ".mpy" for m in modules)
        with open(os.path.join(flash, "lib", "xmpp_lite", "client.mpy"), "rb") as f:
            assert f.read(2) == b"M\x06"
        for local, remote in ((os.path.join(ROOT, "boards", BOARD + ".json"), "board.json"),
                              (os.path.join(ROOT, "firmware", "main.py"), "main.py"),
                              (prosody.ca_der_path, "ca.der"), (str(config), "config.json")):
            with open(local, "rb") as mine, open(os.path.join(flash, remote), "rb") as theirs:
                assert mine.read() == theirs.read(), remote

        # The reset boots boot.py and main.py, which logs in and reports.
        board.wait_for_boot("hard reset")
        board.wait_for("xmpp_lite: boot (power on)")
        board.wait_for("xmpp_lite: online (fresh)", timeout=30)
        body = report_from(controller, prosody.jid("device1") + "/simboard")
        assert re.fullmatch(r"temp=\S+ light=\d+ button=1", body), body

        # Again: nothing changed, so every file is up to date; a module the library no longer has goes.
        with open(os.path.join(flash, "lib", "xmpp_lite", "gone.py"), "w") as f:
            f.write("raise ImportError\n")
        again = xmpp_lite("deploy", "--port", board.url, "--config", config, "--board", BOARD, "--no-reset")
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("  up to date") == len(names) and "  copied" not in again.stdout
        assert "removed :lib/xmpp_lite/gone.py (not part of this deploy)" in again.stdout
        assert not os.path.exists(os.path.join(flash, "lib", "xmpp_lite", "gone.py"))
        assert "not reset (--no-reset)" in again.stdout
    finally:
        controller.stop()


def test_bad_config_fails_before_copying(prosody, board, tmp_path):
    config = write_config(tmp_path, prosody, xmpp={"port": 70000})
    result = xmpp_lite("deploy", "--port", board.url, "--config", config, "--board", BOARD)
    one_line_error(result, "xmpp.port: 70000 is not a number from 1 to 65535")
    assert os.listdir(board.flash) == ["lib"] and os.listdir(os.path.join(board.flash, "lib")) == []
    board.process.drain()
    assert "client connected" not in board.output()  # the board was never even asked


def test_inputs_checked_before_the_board(prosody, tmp_path):
    nobody = "socket://127.0.0.1:%d" % free_port()
    config = write_config(tmp_path, prosody, with_ca=False)
    one_line_error(xmpp_lite("deploy", "--port", nobody, "--config", config),
                   "xmpp.ca is 'ca.der' but there is no", "give the CA with --ca FILE")
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("hello")
    one_line_error(xmpp_lite("deploy", "--port", nobody, "--config", config, "--ca", not_a_certificate),
                   "is not a certificate (PEM or DER)")
    one_line_error(xmpp_lite("deploy", "--port", nobody, "--config", config, "--ca", prosody.ca_path,
                             "--board", "no-such-board"), "no board 'no-such-board'")
    modem = write_config(tmp_path, prosody, network={"kind": "modem", "apn": "internet"})
    one_line_error(xmpp_lite("deploy", "--port", nobody, "--config", modem, "--board", BOARD),
                   'network.kind is "modem" but board esp32-devkitc has no modem')
    # Everything fine but the board: mpremote's own reason, in one line.
    one_line_error(xmpp_lite("deploy", "--port", nobody, "--config", write_config(tmp_path, prosody)),
                   "cannot reach the board at %s: failed to access %s" % (nobody, nobody))


@pytest.mark.parametrize("mpy, flags", [
    (6 | 3 << 8 | 2 << 10, ["-march=x64"]),  # this VM: what mpy-cross writes by default
    (6 | 3 << 8 | 10 << 10, ["-march=xtensawin"]),  # ESP32 and S3 on MicroPython 1.23 and later
    (6 | 3 << 8 | 11 << 10, ["-march=rv32imc"]),  # C3
    (6 | 2 << 8 | 10 << 10, ["-b", "6.2", "-march=xtensawin"]),  # MicroPython 1.22
    (6 | 1 << 8 | 10 << 10, ["-b", "6.1", "-march=xtensawin"]),  # 1.20 and 1.21
    (6 | 0 << 8 | 10 << 10, ["-b", "6", "-march=xtensawin"]),  # 1.19
    (5 | 10 << 10, ["-b", "5", "-march=xtensawin"]),  # 1.12 to 1.18
])
def test_mpy_cross_flags_follow_the_board(mpy, flags):
    mpy_cross = find_tool("mpy-cross")
    command, version = cmd_deploy._mpy_flags(mpy)
    assert command == [mpy_cross] + flags and version == mpy & 0xFF
    emits = subprocess.run(command[:-1] + ["--version"], capture_output=True, text=True, timeout=30).stdout
    assert ("emitting mpy v%d" % (mpy & 0xFF)) in emits


@pytest.mark.parametrize("mpy, message", [
    (0, "does not say which .mpy version it loads"),
    (7 | 10 << 10, "the board loads .mpy v7.0 but"),
    (6 | 3 << 8 | 13 << 10, "the board runs native code for v6.3, arch 13, which this mpy-cross does not know"),
    (6 | 3 << 8 | 40 << 10, "arch 40, which this mpy-cross does not know"),
])
def test_mpy_versions_this_mpy_cross_cannot_write(mpy, message):
    with pytest.raises(CommandError) as error:
        cmd_deploy._mpy_flags(mpy)
    assert message in str(error.value) and "--no-mpy" in str(error.value)


def test_a_board_without_the_native_emitter_is_refused():
    """The parser's loop is native code: the source would not compile there either, so there is no way out."""
    with pytest.raises(CommandError) as error:
        cmd_deploy._mpy_flags(6 | 3 << 8)
    assert str(error.value) == ("deploy: the board's MicroPython has no native code emitter (its .mpy version v6.3 "
                                "names no architecture), and the parser of xmpp_lite needs one")
