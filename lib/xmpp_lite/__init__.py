"""xmpp_lite: an XMPP client for microcontrollers (MicroPython) that also runs on CPython.

Nothing runs at import time: import the submodule you need (``xmpp_lite.parser``,
``xmpp_lite.stanza``, ...).
"""

__version__ = "0.1.0"
