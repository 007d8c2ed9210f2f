"""SASL client mechanisms for XMPP (RFC 6120 section 6): SCRAM-SHA-256, SCRAM-SHA-1, PLAIN.

Sans-I/O: the session moves bytes between this module and the stream.

    name = choose_mechanism(offered_names, allow_plain=tls_is_on)
    mech = Mechanism(name, username, password, salted_cache=cache)
    <auth mechanism=name>  text = b64encode_initial(mech.initial())
    <challenge> text       ->  <response> b64encode(mech.challenge(b64decode(text)))
    <success> text         ->  mech.success(b64decode(text))   # SCRAM: checks the server
    <failure><cond/>       ->  AuthError(cond, text); mech.discard_cache()

Every problem with what the server sent raises AuthError; misuse by the caller
(bad arguments, calls out of order) raises ValueError.

The SASL and SASL2 (XEP-0388) elements are read and written here too: a
session imports this module (with xmpp_lite.login) only while logging in, and
unloads both once the login is over.

Not done, by choice:
- SASLprep (RFC 4013) is not applied. The SCRAM username is only escaped
  ("=" -> "=3D", "," -> "=2C") and the password is used as its UTF-8 bytes.
  ASCII credentials are unaffected; a non-ASCII password works only if SASLprep
  would leave it unchanged (already NFKC, no non-ASCII spaces, no characters
  that SASLprep maps to nothing). Use ASCII credentials on devices.
- No channel binding: the GS2 header is "n,,", and *-PLUS mechanisms are not
  chosen. No authorization identity (authzid) is sent.

Salted-key cache. PBKDF2 with thousands of iterations takes seconds on a
microcontroller, so a SCRAM mechanism can take ``salted_cache``: a dict (or an
object with get, item assignment, ``del``, ``pop`` and iteration over keys).
Keys are ``"<mechanism>,<salt base64>,<iterations>"``; values are
ClientKey + ServerKey (RFC 5802 section 3), 40 bytes for SHA-1, 64 for SHA-256.
These keys are password-equivalent for this account on this server: ClientKey
alone is enough to compute a valid proof at every later login while the
server keeps the same salt and iteration count (the server stores only
H(ClientKey)), and ServerKey lets its holder pose as the server to the device.
They do not reveal the password itself. Protect the cache like the password.
An entry is written only after the server proved that it knows the password
(its signature matched), so a mistyped password never enters the cache; the
cache holds one entry per mechanism. It belongs to one account: clear it when
the username or password changes.
"""

import binascii
import hashlib
import os

from xmpp_lite._compat import const, pbkdf2_hmac
from xmpp_lite.errors import AuthError

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388, Extensible SASL Profile
NS_BIND2 = "urn:xmpp:bind:0"  # XEP-0386, Bind 2

# RFC 5802 section 5.1: the iteration count SHOULD be at least 4096. A lower
# count from the server would make an offline attack on the proof cheap; a
# much higher one would stall the board for minutes.
MIN_ITERATIONS = const(4096)
MAX_ITERATIONS = const(100000)

_NONCE_BYTES = const(18)  # 24 base64 characters of client nonce
_MAX_B64_CHARS = const(4096)  # longest base64 text accepted from the server
_MAX_ITERATION_DIGITS = const(9)
_BLOCK_SIZE = const(64)  # HMAC block size of SHA-1 and SHA-256

# SCRAM progress (PLAIN uses _START and _FIRST_SENT only).
_START = const(0)
_FIRST_SENT = const(1)  # client-first (or the PLAIN message) sent
_FINAL_SENT = const(2)  # client-final sent, server-final not seen yet
_VERIFIED = const(3)  # server-final seen in a challenge and verified
_DONE = const(4)

# Conditions of AuthError raised by this module. Conditions of a <failure/>
# from the server (RFC 6120 section 6.5) are passed through by the session.
INVALID_MECHANISM = "invalid-mechanism"
INCORRECT_ENCODING = "incorrect-encoding"
MALFORMED_CHALLENGE = "malformed-challenge"
NONCE_MISMATCH = "nonce-mismatch"
BAD_ITERATION_COUNT = "bad-iteration-count"
SERVER_SIGNATURE_MISMATCH = "server-signature-mismatch"
SERVER_ERROR = "server-error"

# Strongest first.
_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}

_GS2_HEADER = b"n,,"  # no channel binding, no authzid
_GS2_HEADER_B64 = b"biws"  # base64 of _GS2_HEADER, sent as c=


# --- base64 ---------------------------------------------------------------


def b64encode(data):
    """Base64 text of ``data`` as str, no newline; "" for empty data."""
    return binascii.b2a_base64(data).rstrip(b"\n").decode()


def b64encode_initial(data):
    """Text for <auth/>: an empty initial response is "=" (RFC 6120 6.4.2)."""
    if not data:
        return "="
    return b64encode(data)


def b64decode(text):
    """Bytes of base64 ``text`` (str or bytes) from the server.

    Surrounding whitespace is ignored; "" and "=" are empty data. Anything that
    is not canonical base64 (inner whitespace, stray characters, bad padding)
    raises AuthError(INCORRECT_ENCODING).
    """
    if isinstance(text, str):
        text = text.encode()
    text = bytes(text).strip()
    if not text or text == b"=":
        return b""
    if len(text) > _MAX_B64_CHARS:
        raise AuthError(INCORRECT_ENCODING, "base64 data longer than %d characters" % _MAX_B64_CHARS)
    try:
        data = binascii.a2b_base64(text)
    except ValueError:
        raise AuthError(INCORRECT_ENCODING, "not base64")
    # Both runtimes' decoders skip characters outside the alphabet; encoding
    # back and comparing rejects everything that is not canonical base64.
    if binascii.b2a_base64(data).rstrip(b"\n") != text:
        raise AuthError(INCORRECT_ENCODING, "not canonical base64")
    return data


# --- HMAC and PBKDF2 --------------------------------------------------------


def _hash_constructor(hash_name):
    ctor = getattr(hashlib, hash_name, None)
    if ctor is None:
        raise ValueError("hashlib has no " + hash_name)
    return ctor


def _pads(ctor, key):
    """The HMAC key XOR ipad and key XOR opad (RFC 2104), one block each."""
    if len(key) > _BLOCK_SIZE:
        key = ctor(key).digest()
    inner = bytearray(_BLOCK_SIZE)
    outer = bytearray(_BLOCK_SIZE)
    key_len = len(key)
    for i in range(_BLOCK_SIZE):
        k = key[i] if i < key_len else 0
        inner[i] = k ^ 0x36
        outer[i] = k ^ 0x5C
    return inner, outer


def hmac_digest(hash_name, key, msg):
    """HMAC (RFC 2104) of ``msg`` with ``key``; ``hash_name`` is "sha1" or "sha256"."""
    ctor = _hash_constructor(hash_name)
    inner, outer = _pads(ctor, key)
    h = ctor(inner)
    h.update(msg)
    h2 = ctor(outer)
    h2.update(h.digest())
    return h2.digest()


def _pbkdf2_loop(hash_name, password, salt, iterations, dklen=None):
    """PBKDF2-HMAC (RFC 8018) in Python, for runtimes without it in C.

    MicroPython hash objects have no copy() and refuse update() after
    digest(), so every HMAC hashes its padded key block again. The running
    XOR is kept as one integer: a few small allocations per iteration and no
    per-byte Python loop.
    """
    ctor = _hash_constructor(hash_name)
    size = len(ctor().digest())
    if dklen is None:
        dklen = size
    inner, outer = _pads(ctor, password)
    out = b""
    block = 1
    while len(out) < dklen:
        h = ctor(inner)
        h.update(salt)
        h.update(block.to_bytes(4, "big"))
        h2 = ctor(outer)
        h2.update(h.digest())
        u = h2.digest()
        acc = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            h = ctor(inner)
            h.update(u)
            h2 = ctor(outer)
            h2.update(h.digest())
            u = h2.digest()
            acc ^= int.from_bytes(u, "big")
        out += acc.to_bytes(size, "big")
        block += 1
    return out[:dklen]


def pbkdf2(hash_name, password, salt, iterations, dklen=None):
    """PBKDF2-HMAC; same arguments as CPython's ``hashlib.pbkdf2_hmac``."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if pbkdf2_hmac is not None:
        return pbkdf2_hmac(hash_name, password, salt, iterations, dklen)
    return _pbkdf2_loop(hash_name, password, salt, iterations, dklen)  # pragma: no cover


# --- choosing a mechanism ---------------------------------------------------


def supported_mechanisms():
    """Names this runtime can do, strongest first."""
    names = []
    for name in _PREFERENCE:
        hash_name = _SCRAM_HASHES.get(name)
        if hash_name is None or getattr(hashlib, hash_name, None) is not None:
            names.append(name)
    return names


def choose_mechanism(offered, allow_plain=True):
    """The strongest mechanism from ``offered`` (the server's <mechanism/> texts).

    Unknown names are ignored. Raises AuthError(INVALID_MECHANISM) when
    nothing usable is offered, or only PLAIN while ``allow_plain`` is false
    (PLAIN sends the password itself: allow it only over TLS).
    """
    names = []
    for name in offered:
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode()
        names.append(name.strip())
    plain_refused = False
    for name in supported_mechanisms():
        if name in names:
            if name == "PLAIN" and not allow_plain:
                plain_refused = True
                continue
            return name
    if plain_refused:
        raise AuthError(INVALID_MECHANISM, "the server offers only PLAIN and PLAIN is not allowed")
    raise AuthError(
        INVALID_MECHANISM,
        "no supported mechanism offered (offered: %s; supported: %s)"
        % (", ".join(names), ", ".join(supported_mechanisms())),
    )


# --- mechanisms -------------------------------------------------------------


def _utf8(value, what):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ValueError(what + " must be str or bytes")


def _printable(value):
    """True if ``value`` is printable ASCII without "," (the SCRAM nonce rule)."""
    for c in value:
        if c < 0x21 or c > 0x7E or c == 0x2C:
            return False
    return True


class Mechanism:
    """One login attempt with ``name`` ("SCRAM-SHA-256", "SCRAM-SHA-1" or "PLAIN").

    ``initial()`` gives the initial response, ``challenge(data)`` the answer to
    a server challenge, ``success(data)`` checks the data of <success/>. All
    take and return raw bytes (not base64). ``client_nonce`` fixes the SCRAM
    client nonce, for tests only; by default it comes from os.urandom.

    After a SCRAM success, ``cache_entry`` is the (key, value) pair described
    in the module docstring and ``cache_hit`` tells whether PBKDF2 was skipped.
    """

    def __init__(self, name, username, password, salted_cache=None, client_nonce=None):
        self.name = name
        self.cache_entry = None
        self.cache_hit = False
        self.username = _utf8(username, "username")
        self.password = _utf8(password, "password")
        if not self.username:
            raise ValueError("empty username")
        self.salted_cache = salted_cache
        self._state = _START
        self.hash_name = None
        self.client_nonce = None
        self._first_bare = None
        self._server_signature = None
        self._cache_key = None
        self._cache_value = None
        if name == "PLAIN":
            if b"\0" in self.username or b"\0" in self.password:
                raise ValueError("PLAIN cannot carry a NUL in the username or password")
            return
        hash_name = _SCRAM_HASHES.get(name)
        if hash_name is None or getattr(hashlib, hash_name, None) is None:
            raise AuthError(INVALID_MECHANISM, "unsupported mechanism " + str(name))
        self.hash_name = hash_name
        if client_nonce is None:
            self.client_nonce = b64encode(os.urandom(_NONCE_BYTES)).encode()
        else:
            self.client_nonce = _utf8(client_nonce, "client_nonce")
            if not self.client_nonce or not _printable(self.client_nonce):
                raise ValueError("client nonce must be printable ASCII without ','")

    def initial(self):
        """The initial response (RFC 6120 6.4.2), raw bytes."""
        if self._state != _START:
            raise ValueError("initial() called twice")
        self._state = _FIRST_SENT
        if self.hash_name is None:
            # RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
            message = b"\0" + self.username + b"\0" + self.password
            self.password = None
            return message
        user = self.username.replace(b"=", b"=3D").replace(b",", b"=2C")
        self._first_bare = b"n=" + user + b",r=" + self.client_nonce
        return _GS2_HEADER + self._first_bare

    def challenge(self, data):
        """The response to a server challenge, raw bytes."""
        if self.hash_name is None:
            raise AuthError(MALFORMED_CHALLENGE, "PLAIN takes no challenge")
        data = bytes(data)
        if self._state == _FIRST_SENT:
            response = self._client_final(data)
            self._state = _FINAL_SENT
            return response
        if self._state == _FINAL_SENT:
            # Server-final sent as a challenge (RFC 6120 6.3.10): check it and
            # answer with an empty response; <success/> follows without data.
            self._verify(data)
            self._state = _VERIFIED
            return b""
        raise AuthError(MALFORMED_CHALLENGE, "unexpected challenge")

    def success(self, data):
        """Accept <success/>; for SCRAM the server must have proved itself."""
        data = bytes(data)
        if self.hash_name is None:
            if self._state != _FIRST_SENT:
                raise AuthError(MALFORMED_CHALLENGE, "unexpected success")
            self._state = _DONE
            return
        if self._state == _FINAL_SENT:
            if not data:
                raise AuthError(SERVER_SIGNATURE_MISMATCH, "success without a server signature")
            self._verify(data)
        elif self._state == _VERIFIED:
            if data:
                self._verify(data)
        elif self._state == _DONE:
            raise AuthError(MALFORMED_CHALLENGE, "unexpected success")
        else:
            raise AuthError(
                SERVER_SIGNATURE_MISMATCH, "success before the server proved it knows the password"
            )
        self._state = _DONE
        self._server_signature = None
        self.cache_entry = (self._cache_key, self._cache_value)
        cache = self.salted_cache
        if cache is not None and not self.cache_hit:
            # One entry per mechanism: drop entries of older salts or counts.
            prefix = self.name + ","
            for old in [k for k in cache if isinstance(k, str) and k.startswith(prefix)]:
                if old != self._cache_key:
                    del cache[old]
            cache[self._cache_key] = self._cache_value

    @property
    def client_done(self):
        """True once our last message is out: only the server's outcome is left (PLAIN: the initial response)."""
        return self._state == _FINAL_SENT or (self.hash_name is None and self._state == _FIRST_SENT)

    def discard_cache(self):
        """Forget the cache entry this login used (call it on <failure/>).

        A cached entry goes stale if the server changes the password but keeps
        salt and iteration count; dropping it makes the next login run PBKDF2.
        """
        if self.salted_cache is not None and self.cache_hit:
            self.salted_cache.pop(self._cache_key, None)
        self.cache_hit = False
        self.cache_entry = None

    # -- SCRAM internals --

    def _client_final(self, server_first):
        parts = server_first.split(b",")
        if parts[0].startswith(b"m="):
            raise AuthError(MALFORMED_CHALLENGE, "server requires an unsupported SCRAM extension")
        if len(parts) < 3 or not (
            parts[0].startswith(b"r=") and parts[1].startswith(b"s=") and parts[2].startswith(b"i=")
        ):
            raise AuthError(MALFORMED_CHALLENGE, "server-first message is not r=...,s=...,i=...")
        nonce = parts[0][2:]
        if len(nonce) <= len(self.client_nonce) or not nonce.startswith(self.client_nonce):
            raise AuthError(NONCE_MISMATCH, "server nonce does not extend the client nonce")
        if not _printable(nonce):
            raise AuthError(MALFORMED_CHALLENGE, "server nonce has forbidden characters")
        salt_b64 = parts[1][2:]
        salt = b64decode(salt_b64)
        if not salt:
            raise AuthError(MALFORMED_CHALLENGE, "empty salt")
        count = parts[2][2:]
        if not count.isdigit() or len(count) > _MAX_ITERATION_DIGITS:
            raise AuthError(BAD_ITERATION_COUNT, "iteration count is not a number")
        iterations = int(count)
        if iterations < MIN_ITERATIONS or iterations > MAX_ITERATIONS:
            raise AuthError(
                BAD_ITERATION_COUNT,
                "server asks for %d iterations; accepted: %d to %d"
                % (iterations, MIN_ITERATIONS, MAX_ITERATIONS),
            )
        # ClientKey and ServerKey, from the cache or through PBKDF2.
        size = len(_hash_constructor(self.hash_name)().digest())
        key = "%s,%s,%d" % (self.name, salt_b64.decode(), iterations)
        cached = self.salted_cache.get(key) if self.salted_cache is not None else None
        if isinstance(cached, (bytes, bytearray)) and len(cached) == 2 * size:
            self.cache_hit = True
            value = bytes(cached)
        else:
            salted = pbkdf2(self.hash_name, self.password, salt, iterations)
            value = hmac_digest(self.hash_name, salted, b"Client Key") + hmac_digest(
                self.hash_name, salted, b"Server Key"
            )
        self.password = None
        self._cache_key = key
        self._cache_value = value
        client_key = value[:size]
        server_key = value[size:]
        without_proof = b"c=" + _GS2_HEADER_B64 + b",r=" + nonce
        auth_message = self._first_bare + b"," + server_first + b"," + without_proof
        stored_key = _hash_constructor(self.hash_name)(client_key).digest()
        signature = hmac_digest(self.hash_name, stored_key, auth_message)
        proof = (int.from_bytes(client_key, "big") ^ int.from_bytes(signature, "big")).to_bytes(len(client_key), "big")
        self._server_signature = hmac_digest(self.hash_name, server_key, auth_message)
        return without_proof + b",p=" + b64encode(proof).encode()

    def _verify(self, server_final):
        if server_final.startswith(b"e="):
            try:
                text = str(server_final[2:].split(b",")[0], "utf-8")
            except UnicodeError:
                text = "(not UTF-8)"
            raise AuthError(SERVER_ERROR, text)
        if not server_final.startswith(b"v="):
            raise AuthError(MALFORMED_CHALLENGE, "server-final message has no v=")
        signature = b64decode(server_final[2:].split(b",")[0])
        if signature != self._server_signature:
            raise AuthError(
                SERVER_SIGNATURE_MISMATCH, "the server does not know the password (or someone is in between)"
            )


# --- the SASL and SASL2 elements (RFC 6120 section 6, XEP-0388) -------------------------------------

# SASL2: the Bind2 request inside <authenticate/> (XEP-0386); the server picks the resource.
BIND2 = b"<bind xmlns='urn:xmpp:bind:0'/>"


def auth(mechanism, initial):
    return ("<auth xmlns='%s' mechanism='%s'>%s</auth>"
            % (NS_SASL, mechanism, b64encode_initial(initial))).encode()


def response(data, xmlns=NS_SASL):
    """A SASL <response/>; ``xmlns=NS_SASL2`` for SASL2."""
    return ("<response xmlns='%s'>%s</response>" % (xmlns, b64encode(data))).encode()


def authenticate(mechanism, initial, inline=b""):
    """A SASL2 <authenticate/> with its initial response and the inline requests (bytes)."""
    return ("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>"
            % (NS_SASL2, mechanism, b64encode(initial))).encode() + inline + b"</authenticate>"


def failure(elem):
    """The AuthError for a SASL <failure/> (RFC 6120 6.5)."""
    condition = "not-authorized"
    text = ""
    for child in elem.children:
        if child.local == "text":
            text = child.text
        else:
            condition = child.local
    return AuthError(condition, text)
