"""Trusted certificates for TLS: loaded while connecting (xmpp_lite.connecting), by both link drivers."""

import binascii

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def load_ca(ca):
    """DER certificates from ``ca``: a file path or bytes, PEM (one or more) or DER."""
    if isinstance(ca, str):
        with open(ca, "rb") as f:
            ca = f.read()
    ca = bytes(ca)
    if ca.find(_PEM_BEGIN) < 0:
        if not ca:
            raise ValueError("empty CA certificate")
        return [ca]
    certs = []
    start = ca.find(_PEM_BEGIN)
    while start >= 0:
        end = ca.find(_PEM_END, start)
        if end < 0:
            raise ValueError("truncated PEM certificate")
        body = ca[start + len(_PEM_BEGIN):end]
        for space in (b"\r", b"\n", b" ", b"\t"):
            body = body.replace(space, b"")
        certs.append(binascii.a2b_base64(body))
        start = ca.find(_PEM_BEGIN, end)
    return certs
