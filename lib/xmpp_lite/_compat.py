"""The one place for differences between MicroPython and CPython.

Device modules import runtime-specific helpers from here instead of testing the
runtime themselves.
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:  # pragma: no cover - CPython
    def const(value):
        return value


# PBKDF2 in C where the runtime has it (CPython); MicroPython has no
# hashlib.pbkdf2_hmac and xmpp_lite.sasl falls back to its own loop.
try:
    from hashlib import pbkdf2_hmac
except ImportError:  # pragma: no cover - MicroPython
    pbkdf2_hmac = None
