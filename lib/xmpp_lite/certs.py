"""TLS trust: the client's SSLContext with its CA certificates, made once per client by both link drivers.

Loaded only to make the context (on MicroPython at the client's construction, at the bottom of the heap;
on CPython at the first connection that uses TLS) and unloaded again on MicroPython: the context is kept,
this code is not. ``load_ca`` also serves the host tools; CPython's ``make_tls_context`` is in
xmpp_lite.connecting_cpython.
"""

import binascii
import errno

from xmpp_lite import unload
from xmpp_lite._compat import MICROPYTHON, TLS_ERRORS
from xmpp_lite.errors import TLSError, describe

def load_ca(ca):
    """DER certificates from ``ca``: a file path or bytes, PEM (one or more) or DER."""
    # Locals, not module constants: no global names (a str or bytes const() needs MicroPython 1.19).
    pem_begin = b"-----BEGIN CERTIFICATE-----"
    pem_end = b"-----END CERTIFICATE-----"
    if isinstance(ca, str):
        with open(ca, "rb") as f:
            ca = f.read()
    ca = bytes(ca)
    if ca.find(pem_begin) < 0:
        if not ca:
            raise ValueError("empty CA certificate")
        return [ca]
    certs = []
    start = ca.find(pem_begin)
    while start >= 0:
        end = ca.find(pem_end, start)
        if end < 0:
            raise ValueError("truncated PEM certificate")
        body = ca[start + len(pem_begin):end]
        for space in (b"\r", b"\n", b" ", b"\t"):
            body = body.replace(space, b"")
        certs.append(binascii.a2b_base64(body))
        start = ca.find(pem_begin, end)
    return certs


if MICROPYTHON:  # pragma: no cover - MicroPython

    def make_tls_context(client):
        """Make the client's SSLContext, for a connection that uses TLS; raises TLSError.

        Made once per client and kept: the CA certificates (``client._ca`` unless ``client.verify`` is off)
        are parsed into it once and their bytes are not kept. One object of about 3 KB, made before a login
        leaves the heap in pieces. The ``tls`` module directly: ``ssl`` is a Python wrapper over it that
        only costs heap.
        """
        unload(__name__)  # the running function lives on until it returns
        import tls as mbedtls

        verify = client.verify
        try:
            cadata = load_ca(client._ca) if verify and client._ca is not None else None
            context = mbedtls.SSLContext(mbedtls.PROTOCOL_TLS_CLIENT)
            if verify:
                if not cadata:
                    raise ValueError("MicroPython has no system CA store: pass ca= (or verify=False)")
                context.verify_mode = mbedtls.CERT_REQUIRED  # type: ignore[attr-defined]  # the stubs lack it
                for der in cadata:  # mbedTLS parses one DER certificate per call
                    context.load_verify_locations(der)
            else:
                context.verify_mode = mbedtls.CERT_NONE  # type: ignore[attr-defined]  # the stubs lack it
            client._tls_context = context
        except TLS_ERRORS as error:
            raise TLSError(errno.ECONNABORTED, "TLS with %s failed: %s" % (client.domain, describe(error)))

else:
    # CPython's, with the names of its ssl module, which a board never loads.
    from xmpp_lite.connecting_cpython import make_tls_context  # noqa: F401
