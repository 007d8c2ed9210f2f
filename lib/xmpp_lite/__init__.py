"""xmpp_lite: an XMPP client for microcontrollers (MicroPython) that also runs on CPython.

Nothing runs at import time: import the submodule you need (``xmpp_lite.parser``,
``xmpp_lite.stanza``, ...). What a board needs only now and then is imported on demand
(xmpp_lite.sasl while logging in, xmpp_lite.register, ...).
"""

__version__ = "0.1.0"


def unload(name):
    """Forget the submodule ``name`` (e.g. "xmpp_lite.sasl"): the GC takes back its code, an import loads it again.

    RAM is scarce on a board: code needed for a while only (the login, the configuration check at
    boot) is unloaded once its job is done. A module is reachable from sys.modules and from its
    package's attribute; both go. Objects made by it (instances, classes) live on while in use.
    """
    import sys

    if sys.modules.pop(name, None) is None:
        return  # not loaded: nothing to forget (and no attribute name to intern for good on MicroPython)
    package = sys.modules.get(__name__)
    if package is not None and name.startswith(__name__ + "."):
        try:
            delattr(package, name[len(__name__) + 1:])
        except (AttributeError, KeyError):  # MicroPython says KeyError
            pass  # not imported, or unloaded already
