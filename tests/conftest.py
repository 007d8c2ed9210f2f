"""Shared pytest setup.

Device tests import `xmpp_lite` from lib/ and their helpers as the top-level
module `support`, exactly as on the MicroPython VM, so both folders go on
sys.path whatever pytest's import mode.
"""

import sys
from pathlib import Path

_TESTS_DIR = Path(__file__).resolve().parent

for _path in (_TESTS_DIR.parent / "lib", _TESTS_DIR / "device"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
