"""The CPython side of xmpp_lite.connecting and xmpp_lite.certs: the connect's error, TLS, the SSLContext.

A module of its own so that a board never loads CPython's names and code (the MicroPython versions
are in xmpp_lite.connecting and xmpp_lite.certs, which import these on CPython only). Its code is
under ``if not MICROPYTHON``, as the CPython side of every runtime branch: the static check of device
code against the board's API leaves it out.
"""

from xmpp_lite._compat import MICROPYTHON

if not MICROPYTHON:
    import errno
    import socket
    import ssl

    from xmpp_lite._compat import TLS_ERRORS
    from xmpp_lite.errors import TLSError, describe

    def socket_error(sock, flags):
        """The errno of a failed non-blocking connect, or 0 if it worked (``flags``: its poll events, unused here)."""
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def wrap_tls(context, sock, server_hostname, timeout_ms):
        """A TLS client socket over the connected non-blocking ``sock``.

        The handshake is done here, blocking for at most ``timeout_ms``.
        """
        sock.settimeout(max(timeout_ms, 1) / 1000)
        try:
            tls = context.wrap_socket(sock, server_hostname=server_hostname)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "TLS handshake timed out")
        tls.setblocking(False)
        return tls

    def make_tls_context(client):
        """Make the client's SSLContext (xmpp_lite.certs.make_tls_context on CPython); raises TLSError.

        The CA certificates: ``client._ca`` (None: the system's), unless ``client.verify`` is off.
        """
        from xmpp_lite.certs import load_ca

        verify = client.verify
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if verify:
                if client._ca is not None:
                    context.load_verify_locations(cadata=b"".join(load_ca(client._ca)))
                    # A pinned server certificate (not a CA) is trusted as it is.
                    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
                else:
                    context.load_default_certs()
            else:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            client._tls_context = context
        except TLS_ERRORS as error:
            raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))
