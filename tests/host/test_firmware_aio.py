"""firmware/main.py with ``device.driver`` "asyncio" on the MicroPython VM, as a board runs it, against Prosody.

The same boards, fakes and peers as tests/host/test_firmware.py (whose helpers these tests use): the link
(xmpp_lite.aio) and the node's report timer run as asyncio tasks, and commands are answered by the link's
reader task.
"""

import re

from host_tools.linkemu import LinkEmulator
from slixpeer import Controller
from test_firmware import NS_COMMAND, ask, body_from, boot, iq_command, make_board

ASYNCIO = {"driver": "asyncio", "watchdog_s": 10, "max_offline_s": 60}


def test_asyncio_board_reports_answers_and_survives_a_cut(prosody, mpy_lib, running, tmp_path):
    controller = Controller(prosody)
    running.append(controller)
    controller.send_presence()
    link = LinkEmulator(target=("127.0.0.1", prosody.c2s_port), seed=5).start()
    running.append(link)
    folder = make_board(tmp_path, prosody, "esp32-s3-devkitc-1", port=link.port, resource="aio", device=ASYNCIO)
    board = boot(folder, mpy_lib)
    running.append(board)
    board.wait_for("xmpp_lite: online (fresh)")
    device = prosody.jid("device1") + "/aio"
    body_from(controller, device, r"temp=50C light=\d+ button=1")  # the report task's first report
    assert re.fullmatch(r"temp=50C light=\d+ button=1", ask(controller, device, "read", r"temp=.*"))
    assert ask(controller, device, "interval 1", "interval.*") == "interval 1 s"
    body_from(controller, device, r"temp=50C light=\d+ button=1")  # the timer task reports again
    result = controller.call(iq_command(controller, device, "status"))
    command = result.find("{%s}command" % NS_COMMAND)
    assert command.get("status") == "ok" and command.text.startswith("reports ")
    assert controller.call(controller.ping(device)) is not None
    link.cut()
    board.wait_for("xmpp_lite: offline")
    board.wait_for("xmpp_lite: online (resumed)")
    assert re.fullmatch(r"temp=50C light=\d+ button=1", ask(controller, device, "read", r"temp=.*"))
    output = board.output()
    assert "fake: watchdog fed" in output and "would have reset" not in output and "Traceback" not in output


def test_asyncio_board_wrong_password_is_shown_not_retried(prosody, mpy_lib, running, tmp_path):
    folder = make_board(tmp_path, prosody, "lilygo-t-call", resource="aio-bad", xmpp={"password": "wrong"},
                        device=ASYNCIO)
    board = boot(folder, mpy_lib, FAKE_MAX_PIN_WRITES="9")
    running.append(board)
    assert board.finish() == 0
    output = board.output()
    assert "xmpp_lite: the server refused %s: not-authorized" % prosody.jid("device1") in output
    assert output.count("xmpp_lite: online") == 0 and "Traceback" not in output


def test_asyncio_board_deep_sleep_duty_cycle(prosody, mpy_lib, running, tmp_path):
    controller = Controller(prosody)
    running.append(controller)
    controller.send_presence()
    folder = make_board(tmp_path, prosody, "esp32-c3-devkitm-1", resource="aio-c3",
                        device=dict(ASYNCIO, deep_sleep_s=300))
    board = boot(folder, mpy_lib)
    running.append(board)
    board.wait_for("xmpp_lite: report sent (0 unacked); sleeping 300 s")
    board.wait_for("fake: deepsleep 300000 ms")
    assert board.finish() == 0
    body_from(controller, prosody.jid("device1") + "/aio-c3", r"temp=50C light=\d+ button=1")
