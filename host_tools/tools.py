"""Finding the commands the project installs into its virtual environment."""

import os
import shutil
import sys


def find_tool(name):
    """Path of command `name` beside the running Python (the project's venv), else on PATH.

    None when neither has it. The venv's python is a symlink out of the venv,
    so sys.executable is deliberately not resolved.
    """
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside_python):
        return beside_python
    return shutil.which(name)
