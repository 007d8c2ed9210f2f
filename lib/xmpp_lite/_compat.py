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

    class micropython:  # noqa: N801 - stands in for the module, for its decorators
        """What CPython sees of ``@micropython.native``: the function as it is."""

        @staticmethod
        def native(function):
            return function


# Millisecond ticks for timeouts: MicroPython's wrap around, so compare them
# with ticks_diff only. PBKDF2 in C where the runtime has it (CPython);
# MicroPython has no hashlib.pbkdf2_hmac and xmpp_lite.sasl falls back to
# its own loop.
if MICROPYTHON:  # pragma: no cover - MicroPython
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms

    pbkdf2_hmac = None
else:
    import time as _time
    from hashlib import pbkdf2_hmac

    def ticks_ms():
        return _time.monotonic_ns() // 1000000

    def ticks_diff(a, b):
        return a - b

    def ticks_add(ticks, delta):
        return ticks + delta

    def sleep_ms(ms):
        _time.sleep(ms / 1000)


# -- sockets and TLS -----------------------------------------------------------
#
# Sockets are non-blocking. MicroPython reads and writes plain and TLS sockets
# alike with read()/write(), which return None when nothing can move now;
# CPython has recv()/send() and raises for that. What only connecting needs
# (the connect's outcome, the TLS context and wrapping) is xmpp_lite.connecting's.

if MICROPYTHON:  # pragma: no cover - MicroPython
    import errno as _errno

    _AGAIN = (_errno.EAGAIN, getattr(_errno, "EWOULDBLOCK", _errno.EAGAIN))

    def sock_recv_into(sock, buf):
        """Bytes read into ``buf``; 0 at end of stream; None if nothing is there now."""
        try:
            return sock.readinto(buf)
        except OSError as error:
            if error.args and error.args[0] in _AGAIN:
                return None
            raise

    def sock_send(sock, data):
        """How many bytes of ``data`` were taken (0: none can be now)."""
        try:
            return sock.write(data) or 0
        except OSError as error:
            if error.args and error.args[0] in _AGAIN:
                return 0
            raise

    # What mbedTLS raises for a failed handshake or a rejected certificate.
    TLS_ERRORS = (OSError, ValueError)

else:
    import ssl as _ssl

    _WOULD_BLOCK = (BlockingIOError, InterruptedError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError)
    TLS_ERRORS = (_ssl.SSLError, _ssl.CertificateError)

    def sock_recv_into(sock, buf):
        """Bytes read into ``buf``; 0 at end of stream; None if nothing is there now."""
        try:
            return sock.recv_into(buf)
        except _WOULD_BLOCK:
            return None

    def sock_send(sock, data):
        """How many bytes of ``data`` were taken (0: none can be now)."""
        try:
            return sock.send(data)
        except _WOULD_BLOCK:
            return 0
