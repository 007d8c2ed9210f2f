"""Throw-away certificates for a local test server.

One call writes a small PKI into a directory:

- ``ca.pem`` / ``ca.der`` / ``ca.key``: a test certificate authority. Clients trust ``ca.pem`` (CPython) or
  ``ca.der`` (MicroPython's ``ssl`` takes DER ``cadata`` on some ports).
- ``server.pem`` / ``server.key``: the server certificate, signed by the CA, for the XMPP domain (plus
  ``localhost`` and ``127.0.0.1`` unless told otherwise, and any host names and addresses the server
  listens on).
- ``wrong.pem`` / ``wrong.key``: an unrelated self-signed certificate for the same names, for negative tests
  (a client that trusts ``wrong.pem`` must reject the real server; a server presenting it must be rejected).

RSA 2048 with SHA-256: the one choice that mbedTLS builds (MicroPython on ESP32), LuaSec/OpenSSL (Prosody)
and CPython's ``ssl`` all accept. Certificates are valid from yesterday (clock skew between host and board)
to ten years ahead. Files use ``.pem`` rather than ``.crt`` so that Prosody's certificate directory scan does
not pick ``wrong.pem`` for the domain.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSA_KEY_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537
VALID_BEFORE_NOW = datetime.timedelta(days=1)
VALID_AFTER_NOW = datetime.timedelta(days=3650)

CA_CERT = "ca.pem"
CA_DER = "ca.der"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
WRONG_CERT = "wrong.pem"
WRONG_KEY = "wrong.key"
ALL_FILES = (CA_CERT, CA_DER, CA_KEY, SERVER_CERT, SERVER_KEY, WRONG_CERT, WRONG_KEY)


class TestPKI:
    """Paths of one generated PKI (all absolute)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        self.ca_cert = os.path.join(self.directory, CA_CERT)
        self.ca_der = os.path.join(self.directory, CA_DER)
        self.ca_key = os.path.join(self.directory, CA_KEY)
        self.server_cert = os.path.join(self.directory, SERVER_CERT)
        self.server_key = os.path.join(self.directory, SERVER_KEY)
        self.wrong_cert = os.path.join(self.directory, WRONG_CERT)
        self.wrong_key = os.path.join(self.directory, WRONG_KEY)

    def exists(self):
        return all(os.path.isfile(os.path.join(self.directory, name)) for name in ALL_FILES)

    def __repr__(self):
        return "TestPKI(%r)" % self.directory


def _new_key():
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)


def _name(common_name):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xmpp_lite test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _subject_alt_names(dns_names, ip_addresses):
    entries = [x509.DNSName(name) for name in dns_names]
    entries += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    return x509.SubjectAlternativeName(entries)


def _unique(names):
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def _builder(subject, issuer, public_key, now):
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - VALID_BEFORE_NOW)
            .not_valid_after(now + VALID_AFTER_NOW))


def _leaf_extensions(builder, dns_names, ip_addresses):
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_subject_alt_names(dns_names, ip_addresses), critical=False))


def _write(path, data, private=False):
    # Keys are created 0600 from the start, never world-readable even briefly.
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _names(domain, include_localhost, include_loopback_ip, extra_names):
    """(DNS names, IP addresses) for the server certificate's subjectAltName."""
    names = [domain] + (["localhost"] if include_localhost else [])
    addresses = ["127.0.0.1"] if include_loopback_ip else []
    for name in extra_names:
        if _is_address(name):
            addresses.append(str(ipaddress.ip_address(name)))
        else:
            names.append(name)
    return _unique(names), _unique(addresses)


def _is_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def create(directory, domain="localhost", include_localhost=True, include_loopback_ip=True, extra_names=()):
    """Generate a fresh CA, server certificate and wrong certificate in ``directory``; return a TestPKI.

    ``extra_names``: more host names and IP addresses for the server certificate (a server that listens
    beyond loopback is reached by its host name or address).
    """
    os.makedirs(directory, exist_ok=True)
    pki = TestPKI(directory)
    now = datetime.datetime.now(datetime.timezone.utc)

    ca_key = _new_key()
    ca_name = _name("xmpp_lite test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (_builder(ca_name, ca_name, ca_key.public_key(), now)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=False, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                   encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))
    _write(pki.ca_key, _key_pem(ca_key), private=True)
    _write(pki.ca_cert, _cert_pem(ca_cert))
    _write(pki.ca_der, ca_cert.public_bytes(serialization.Encoding.DER))
    _issue_server(pki, ca_key, ca_cert, domain, _names(domain, include_localhost, include_loopback_ip,
                                                       extra_names), now)
    return pki


def _issue_server(pki, ca_key, ca_cert, domain, names, now):
    """Write the server certificate (signed by the CA) and the wrong certificate for ``names``."""
    dns_names, ip_addresses = names
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    server_key = _new_key()
    server_cert = (_leaf_extensions(_builder(_name(domain), ca_cert.subject, server_key.public_key(), now),
                                    dns_names, ip_addresses)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))

    # Same names as the real server certificate, but no relation to the CA: only a client that
    # actually verifies the chain can tell them apart.
    wrong_key = _new_key()
    wrong_name = _name(domain)
    wrong_ski = x509.SubjectKeyIdentifier.from_public_key(wrong_key.public_key())
    wrong_cert = (_leaf_extensions(_builder(wrong_name, wrong_name, wrong_key.public_key(), now),
                                   dns_names, ip_addresses)
                  .add_extension(wrong_ski, critical=False)
                  .sign(wrong_key, hashes.SHA256()))

    _write(pki.server_key, _key_pem(server_key), private=True)
    _write(pki.server_cert, _cert_pem(server_cert))
    _write(pki.wrong_key, _key_pem(wrong_key), private=True)
    _write(pki.wrong_cert, _cert_pem(wrong_cert))


def certificate_names(cert_path):
    """DNS names and IP addresses (as strings) in a PEM certificate's subjectAltName."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName) + [str(a) for a in san.get_values_for_type(x509.IPAddress)]


def _still_valid(cert_path, margin=datetime.timedelta(days=1)):
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    not_after = getattr(cert, "not_valid_after_utc", None)
    if not_after is None:  # cryptography < 42: naive datetime in UTC
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return not_after > datetime.datetime.now(datetime.timezone.utc) + margin


def ensure(directory, domain="localhost", include_localhost=True, include_loopback_ip=True, extra_names=()):
    """Reuse the PKI in ``directory`` if it is complete, valid and covers ``domain``; else create one.

    Reuse matters for a server restarted on the same state directory: boards already given ``ca.der``
    keep trusting it. A server certificate that lacks one of ``extra_names`` is issued again by the
    same CA, so boards keep trusting the server when it listens on another address.
    """
    pki = TestPKI(directory)
    if pki.exists():
        try:
            names = certificate_names(pki.server_cert)
            if domain in names and _still_valid(pki.server_cert) and _still_valid(pki.ca_cert):
                wanted = _names(domain, include_localhost, include_loopback_ip, extra_names)
                if all(name in names for name in wanted[0] + wanted[1]):
                    return pki
                with open(pki.ca_key, "rb") as f:
                    ca_key = serialization.load_pem_private_key(f.read(), password=None)
                with open(pki.ca_cert, "rb") as f:
                    ca_cert = x509.load_pem_x509_certificate(f.read())
                _issue_server(pki, ca_key, ca_cert, domain, wanted, datetime.datetime.now(datetime.timezone.utc))
                return pki
        except ValueError:  # unreadable certificate or key: start over
            pass
    return create(directory, domain, include_localhost, include_loopback_ip, extra_names)
