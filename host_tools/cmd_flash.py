"""`xmpp-lite flash`: write MicroPython to a board with esptool, where its profile says, then deploy.

    xmpp-lite flash --board esp32-devkitc --port /dev/ttyUSB0 --firmware ESP32_GENERIC-20250415-v1.25.0.bin

The image is checked first: it exists, it starts like an ESP image (magic byte 0xE9) built for the
board's chip (the chip id of its extended header), it fits the board's flash, and its name is the
profile's `firmware` pattern (only a warning when not). Then esptool 5 writes it (`write-flash` at
the profile's `flash_offset`, after `erase-flash` with --erase), with esptool's own progress.
With --config, `xmpp-lite deploy` follows; without, the deploy command to run is printed.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time

from host_tools import cmd_deploy
from host_tools.boards import BoardError, load_board
from host_tools.resources import install_hint
from host_tools.cli import CommandError
from host_tools.tools import find_tool

DESCRIPTION = "Write a MicroPython image to a board with esptool at its profile's offset, then deploy."

IMAGE_MAGIC = 0xE9
HEADER_BYTES = 24  # the image header (8 bytes) and the extended header (16), which holds the chip id
MAX_SEGMENTS = 16
# The chip id (bytes 12-13 of an ESP image, little endian) per esptool --chip name.
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c2": 12, "esp32c6": 13, "esp32h2": 16,
            "esp32p4": 18}
# MicroPython's download names: ESP32_GENERIC-20250415-v1.25.0.bin, ...-v1.27.0-preview.123.gabcdef0.bin
VERSION_PATTERN = r"[0-9]{8}-v[0-9]+\.[0-9]+[0-9A-Za-z.+-]*"
ESPTOOL_TIMEOUT_S = 900
BOOT_WAIT_S = 3.0  # MicroPython's first boot makes its filesystem before the REPL answers


def add_arguments(parser):
    parser.add_argument("--board", required=True, help="board profile id (see boards/) or path")
    parser.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--firmware", help="the MicroPython image (.bin); default: the newest file in the current "
                                           "folder named as the profile's firmware pattern")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash first (esptool erase-flash)")
    parser.add_argument("--baud", type=int, help="flashing speed (default: the profile's baud)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the image and print the esptool command lines without running them")
    parser.add_argument("--config", help="then deploy with this config.json (xmpp-lite deploy)")
    parser.add_argument("--ca", help="with --config: the CA certificate for deploy (default: beside the config)")


def say(text):
    print("flash: " + text, flush=True)


def run(args):
    try:
        board = load_board(args.board)
    except BoardError as error:
        raise CommandError("flash: %s" % error)
    baud = args.baud if args.baud is not None else board["baud"]
    if not 9600 <= baud <= 2000000:
        raise CommandError("flash: --baud %d is not between 9600 and 2000000" % baud)
    image = args.firmware if args.firmware is not None else _find_image(board)
    check_image(image, board)
    esptool = find_tool("esptool") or "esptool"
    chip = board["chip"]
    commands = []
    if args.erase:
        commands.append([esptool, "--chip", chip, "--port", args.port, "erase-flash"])
    commands.append([esptool, "--chip", chip, "--port", args.port, "--baud", str(baud), "write-flash",
                     board["flash_offset"], image])
    deploy = ["xmpp-lite", "deploy", "--port", args.port, "--board", args.board,
              "--config", args.config or "config.json"] + (["--ca", args.ca] if args.ca else [])
    if args.dry_run:
        for command in commands:
            print(shlex.join(command))
        if args.config:
            print(shlex.join(deploy))
        return
    if find_tool("esptool") is None:
        raise CommandError("flash: no esptool; " + install_hint("esptool"))
    say("%s for %s (%s) at %s on %s" % (os.path.basename(image), board["name"], chip, board["flash_offset"], args.port))
    for command in commands:
        _esptool(command)
    say("done")
    if not args.config:
        say("next, put the library and your config on it: " + shlex.join(deploy))
        return
    time.sleep(BOOT_WAIT_S)
    cmd_deploy.run(argparse.Namespace(port=args.port, config=args.config, board=args.board, ca=args.ca,
                                      no_mpy=False, no_reset=False))


def firmware_pattern(board):
    """A regex for the profile's MicroPython image names."""
    before, _, after = board["firmware"].partition("{version}")
    return re.compile("^" + re.escape(before) + VERSION_PATTERN + re.escape(after) + "$")


def _find_image(board):
    pattern = firmware_pattern(board)
    found = sorted(name for name in os.listdir(".") if pattern.match(name))
    if not found:
        page = board["firmware"].split("-", 1)[0]
        raise CommandError("flash: no --firmware given and no %s here; download it from "
                           "https://micropython.org/download/%s/" % (board["firmware"], page))
    if len(found) > 1:
        say("%d images here; taking the newest, %s" % (len(found), found[-1]))
    return found[-1]


def check_image(path, board):
    """CommandError unless ``path`` is an ESP image for the board's chip that fits its flash; warns on the name."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise CommandError("flash: no firmware image %s" % path)
    except OSError as error:
        raise CommandError("flash: %s cannot be read: %s" % (path, error.strerror or error))
    if len(header) < HEADER_BYTES or header[0] != IMAGE_MAGIC or not 1 <= header[1] <= MAX_SEGMENTS:
        raise CommandError("flash: %s is not an ESP firmware image (it does not start with the 0xE9 image header)"
                           % path)
    chip_id = header[12] | header[13] << 8
    wanted = CHIP_IDS[board["chip"]]
    if chip_id != wanted:
        names = {number: name for name, number in CHIP_IDS.items()}
        raise CommandError("flash: %s is an image for %s (chip id %d), but %s is an %s (chip id %d)"
                           % (path, names.get(chip_id, "an unknown chip"), chip_id, board["id"], board["chip"],
                              wanted))
    room = int(board["flash_size"][:-2]) * 1024 * 1024 - int(board["flash_offset"], 16)
    if size > room:
        raise CommandError("flash: %s is %d bytes, more than the %s flash of %s holds from %s"
                           % (path, size, board["flash_size"], board["id"], board["flash_offset"]))
    if not firmware_pattern(board).match(os.path.basename(path)):
        print("flash: warning: %s is not named like the %s image (%s); using it anyway"
              % (os.path.basename(path), board["id"], board["firmware"]), file=sys.stderr, flush=True)


def _esptool(command):
    """Run esptool with its own progress on our stdout; its fatal error becomes one CommandError line."""
    print("$ " + shlex.join(command), flush=True)
    try:
        result = subprocess.run(command, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                timeout=ESPTOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CommandError("flash: esptool did not finish within %d s" % ESPTOOL_TIMEOUT_S)
    except OSError as error:
        raise CommandError("flash: cannot run %s: %s" % (command[0], error.strerror or error))
    if result.returncode == 0:
        sys.stderr.write(result.stderr)
        return
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal error occurred" in line]
    reason = fatal[-1] if fatal else (lines[-1] if lines else "exit status %d" % result.returncode)
    reason = re.sub(r"^(ERROR: )?A fatal error occurred: ", "", reason)
    raise CommandError("flash: esptool %s failed: %s" % (command[-1] if command[-1] == "erase-flash" else
                                                         "write-flash", reason))
