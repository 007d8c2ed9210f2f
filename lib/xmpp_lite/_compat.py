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
# CPython has recv()/send() and raises for that.

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

    def socket_error(sock, events):
        """The errno of a failed non-blocking connect, or 0 if it worked.

        There is no getsockopt: poll flags the failure, a read tells which.
        """
        import select

        if not events & (select.POLLERR | select.POLLHUP):
            return 0
        try:
            sock.read(1)
        except OSError as error:
            if error.args and isinstance(error.args[0], int):
                return error.args[0]
        return _errno.ECONNREFUSED

    # What mbedTLS raises for a failed handshake or a rejected certificate.
    TLS_ERRORS = (OSError, ValueError)
    TLS_HANDSHAKE_IN_IO = True  # the handshake happens in the first reads and writes

    def tls_context(cadata, verify):
        """The client SSLContext: made once per client and kept, it holds the CA certificates parsed.

        ``cadata``: DER certificates to trust. Made before the first login: it is one
        allocation of about 3 KB that a heap fragmented by a login may not have. The
        ``tls`` module directly: ``ssl`` is a Python wrapper over it that only costs heap.
        """
        import tls

        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        if verify:
            if not cadata:
                raise ValueError("MicroPython has no system CA store: pass ca= (or verify=False)")
            context.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]  # the stubs lack it
            for der in cadata:  # mbedTLS parses one DER certificate per call
                context.load_verify_locations(der)
        else:
            context.verify_mode = tls.CERT_NONE  # type: ignore[attr-defined]  # the stubs lack it
        return context

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake runs inside the first reads and writes; their errors are in TLS_ERRORS.
        """
        return context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)

else:
    import ssl as _ssl

    _WOULD_BLOCK = (BlockingIOError, InterruptedError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError)
    TLS_ERRORS = (_ssl.SSLError, _ssl.CertificateError)
    TLS_HANDSHAKE_IN_IO = False  # wrap_tls does the handshake

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

    def socket_error(sock, events):
        """The errno of a failed non-blocking connect, or 0 if it worked."""
        import socket

        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake is done here, blocking for at most ``timeout_ms``.
        """
        sock.settimeout(max(timeout_ms, 1) / 1000)
        try:
            tls = context.wrap_socket(sock, server_hostname=server_hostname)
        except TimeoutError:
            raise OSError(110, "TLS handshake timed out")
        tls.setblocking(False)
        return tls

    def tls_context(cadata, verify):
        """The client SSLContext, made once per client: ``cadata``, DER certificates to trust (None: the system's)."""
        context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            if cadata:
                context.load_verify_locations(cadata=b"".join(cadata))
                # A pinned server certificate (not a CA) is trusted as it is.
                context.verify_flags |= _ssl.VERIFY_X509_PARTIAL_CHAIN
            else:
                context.load_default_certs()
        else:
            context.check_hostname = False
            context.verify_mode = _ssl.CERT_NONE
        return context
