"""`xmpp-lite monitor` as a person sees it: a live screen in a real terminal (tmux), its table, plot and commands.

A simulated device (firmware/main.py on the VM, host_tools.fleet) reports to the controller account through a
real Prosody; the monitor logs in as that controller with a credentials file, as provision writes it.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from host_tools.fleet import Fleet
from host_tools.monitor import DeviceNumbers, MonitorScreen, parse_command, sparkline, table_lines

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SESSION = "monitor"
# A tmux server of this test run's own (-L): another run's kill-session cannot end our session.
TMUX_SOCKET = "xmpp-lite-test-%d" % os.getpid()
WAIT = 30.0  # for what the monitor shows; the board is up and reporting before the screen starts
# A board on the VM boots and logs in with SCRAM, slow on a loaded machine; its first report then.
BOARD_UP_S = 120.0


def test_sparkline_scales_between_min_and_max():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    assert sparkline([]) == "" and len(sparkline(range(100))) == 24
    assert len(set(sparkline([5, 5, 5]))) == 1


def test_table_and_command_parsing():
    view = {
        "sensor-1@example.net": {"available": True, "status": "", "reading": "temp=21.5C", "last_report": 100.0,
                                 "reports": 3, "reconnects": 1, "history": [21.0, 21.5]},
        "sensor-2@example.net": {"available": False, "status": "", "reading": "", "last_report": None,
                                 "reports": 0, "reconnects": 0, "history": []},
    }
    lines = table_lines(view, now=130.0)
    assert lines[0].split()[:4] == ["#", "device", "presence", "last"]
    assert lines[1].split()[:6] == ["1", "sensor-1@example.net", "online", "temp=21.5C", "30s", "3"]
    assert lines[2].split()[:4] == ["2", "sensor-2@example.net", "offline", "-"]
    assert parse_command(view, "2 set relay on") == ("sensor-2@example.net", "set relay on")
    assert parse_command(view, "sensor-1 read") == ("sensor-1@example.net", "read")
    assert parse_command(view, "sensor read")[0] is None  # two devices match
    assert parse_command(view, "read")[0] is None


def entry(reports=0):
    return {"available": True, "status": "", "reading": "", "last_report": None, "reports": reports,
            "reconnects": 0, "history": []}


def rows(lines):
    """(number, device) of each row of a table."""
    return [(int(line.split()[0]), line.split()[1]) for line in lines[1:]]


def test_twelve_devices_sort_naturally_and_an_exact_name_wins():
    view = {"sensor-%d@example.net" % n: entry() for n in range(1, 13)}
    numbers = DeviceNumbers()
    table = rows(table_lines(view, now=0, numbers=numbers))
    assert [device for _, device in table] == ["sensor-%d@example.net" % n for n in range(1, 13)]
    assert [number for number, _ in table] == list(range(1, 13))
    # sensor-1 is a whole name: it wins over sensor-10, -11 and -12, which start with it.
    assert parse_command(view, "sensor-1 read", numbers) == ("sensor-1@example.net", "read")
    assert parse_command(view, "sensor-1@example.net read", numbers) == ("sensor-1@example.net", "read")
    assert parse_command(view, "10 read", numbers) == ("sensor-10@example.net", "read")
    assert parse_command(view, "sensor-12@ex read", numbers) == ("sensor-12@example.net", "read")


def test_an_ambiguous_name_says_which_devices_match():
    view = {"sensor-%d@example.net" % n: entry() for n in (1, 2, 10, 11)}
    view["pump@example.net"] = entry()
    numbers = DeviceNumbers()
    table_lines(view, now=0, numbers=numbers)
    assert parse_command(view, "sensor-1@ read", numbers) == ("sensor-1@example.net", "read")
    jid, why = parse_command(view, "sensor read", numbers)
    assert jid is None and why == ("'sensor' matches 4 devices: sensor-1@example.net (2), sensor-2@example.net (3), "
                                   "sensor-10@example.net (4), sensor-11@example.net (5); type more of the name, "
                                   "or the number")
    jid, why = parse_command(view, "sensor-1 read", numbers)
    assert jid == "sensor-1@example.net"
    assert parse_command(view, "lamp read", numbers) == (None, "no single device matches 'lamp'")
    assert parse_command(view, "6 read", numbers) == (None, "no single device matches '6'")


def test_a_device_keeps_its_number_as_others_arrive():
    numbers = DeviceNumbers()
    view = {"sensor-3@example.net": entry(), "sensor-10@example.net": entry()}
    assert rows(table_lines(view, now=0, numbers=numbers)) == [(1, "sensor-3@example.net"),
                                                                 (2, "sensor-10@example.net")]
    view["sensor-1@example.net"] = entry()  # arrives later, sorts first, gets the next number
    view["sensor-20@example.net"] = entry()
    assert rows(table_lines(view, now=0, numbers=numbers)) == [(3, "sensor-1@example.net"),
                                                                 (1, "sensor-3@example.net"),
                                                                 (2, "sensor-10@example.net"),
                                                                 (4, "sensor-20@example.net")]
    assert parse_command(view, "1 read", numbers) == ("sensor-3@example.net", "read")
    assert parse_command(view, "3 read", numbers) == ("sensor-1@example.net", "read")


class FakeWindow:
    """What MonitorScreen._draw uses of a curses window: the text drawn, row by row."""

    def __init__(self):
        self.rows = {}

    def getmaxyx(self):
        return 30, 170

    def erase(self):
        self.rows = {}

    def addstr(self, y, x, text):
        self.rows[y] = text

    def move(self, y, x):
        pass

    def refresh(self):
        pass


class FakeObserver:
    jid = "controller@example.net"
    messages = 0
    error = None
    replies = []


def test_a_screen_with_a_duration_says_when_it_closes():
    screen = MonitorScreen(FakeObserver(), duration=30)
    window = FakeWindow()
    screen.closes_at = 1000.0 + 30
    screen._draw(window, {"sensor-1@example.net": entry()}, now=1000.0 + 18.2)
    assert window.rows[0].endswith(" - 1 devices, 1 online - 0 reports - closes in 12s")
    endless = MonitorScreen(FakeObserver())
    endless._draw(window, {}, now=0)
    assert "closes" not in window.rows[0]


@pytest.fixture
def reporting_device(prosody, tmp_path):
    """One simulated board (device1) reporting every 2 s; yields the controller's credentials file."""
    fleet = Fleet(prosody, [("device1", prosody.accounts["device1"])], ("controller", prosody.accounts["controller"]),
                  runtime="micropython", profile="wifi", interval_s=2, work_dir=str(tmp_path))
    fleet.start()
    deadline = time.monotonic() + BOARD_UP_S
    while fleet.snapshot()["reporting"] < 1:
        if time.monotonic() > deadline:
            fleet.stop()
            pytest.fail("the simulated board did not report within %.0f s: %s" % (
                BOARD_UP_S, [getattr(device, "lines", [])[-5:] for device in fleet.devices]), pytrace=False)
        time.sleep(0.2)
    account = tmp_path / "controller.json"
    account.write_text(json.dumps({"jid": prosody.jid("controller"), "password": prosody.accounts["controller"],
                                   "host": "127.0.0.1", "port": prosody.c2s_port, "ca": prosody.ca_path}))
    try:
        yield account
    finally:
        fleet.stop()


def tmux(*args):
    # -u: UTF-8 for the plot's block characters, whatever the locale of the test run.
    return subprocess.run(["tmux", "-u", "-L", TMUX_SOCKET, *args], capture_output=True, text=True, timeout=10,
                          env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8"))


def screen_until(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = tmux("capture-pane", "-p", "-t", SESSION).stdout
        if predicate(text):
            return text
        time.sleep(0.3)
    pytest.fail("the screen never showed what was expected; it shows:\n" + text, pytrace=False)


def test_live_screen_in_a_terminal(prosody, reporting_device):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: `make bootstrap` installs it", pytrace=False)
    device = prosody.jid("device1")
    command = "%s -m host_tools monitor --account %s --device %s" % (sys.executable, reporting_device, device)
    started = tmux("new-session", "-d", "-s", SESSION, "-x", "170", "-y", "30", "-c", ROOT, command)
    assert started.returncode == 0, started.stderr
    try:
        # The row: number, device, presence, a reading, and a plot once a few reports are in.
        text = screen_until(lambda t: any(device in line and "online" in line and "temp=" in line
                                          for line in t.splitlines()))
        row = [line for line in text.splitlines() if device in line][0]
        assert row.split()[0] == "1" and "light=" in row
        screen_until(lambda t: sum(1 for c in t if "\u2581" <= c <= "\u2588") >= 3)
        # A command typed at the prompt reaches the device, and its answer shows under the table.
        tmux("send-keys", "-t", SESSION, "1 interval 5", "Enter")
        screen_until(lambda t: "%s: interval 5 s" % device in t)
        tmux("send-keys", "-t", SESSION, "9 read", "Enter")
        screen_until(lambda t: "no single device matches '9'" in t)
        tmux("send-keys", "-t", SESSION, "q")
        deadline = time.monotonic() + 10
        while tmux("has-session", "-t", SESSION).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tmux("has-session", "-t", SESSION).returncode != 0, "q did not end the monitor"
    finally:
        tmux("kill-server")


def test_plain_table_without_a_terminal(prosody, reporting_device):
    result = subprocess.run([sys.executable, "-m", "host_tools", "monitor", "--account", str(reporting_device),
                             "--plain", "--duration", "7"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if prosody.jid("device1") in line]
    assert rows and "temp=" in rows[-1] and prosody.accounts["controller"] not in result.stdout


def test_bad_credentials_are_one_line(prosody, tmp_path):
    account = tmp_path / "bad.json"
    account.write_text(json.dumps({"jid": prosody.jid("controller"), "password": "wrong", "host": "127.0.0.1",
                                   "port": prosody.c2s_port, "ca": prosody.ca_path}))
    for args, expected in ((["--account", str(account)], "the server refused"),
                           (["--jid", "c@localhost"], "set the controller's password in $XMPP_LITE_PASSWORD"),
                           ([], "say who the controller is")):
        env = dict(os.environ)
        env.pop("XMPP_LITE_PASSWORD", None)
        result = subprocess.run([sys.executable, "-m", "host_tools", "monitor", "--plain", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and expected in lines[0], result.stderr
