"""SASL client mechanisms for XMPP (RFC 6120 section 6): SCRAM-SHA-256, SCRAM-SHA-1, PLAIN.

Sans-I/O: the session moves bytes between this module and the stream.

    name = choose_mechanism(offered_names, allow_plain=tls_is_on)
    mech = Mechanism(name, username, password, sasl_cache=cache)
    auth(name, mech.initial())                  -> <auth mechanism=name>, base64
    <challenge> text  ->  response(mech.challenge(b64decode(text)), NS_SASL)
    <success> text    ->  mech.success(b64decode(text))   # SCRAM: checks the server
    <failure><cond/>  ->  failure(elem) is the AuthError; mech.discard_cache()

Every problem with what the server sent raises AuthError; misuse by the caller
(bad arguments, calls out of order) raises ValueError. The conditions this
module gives an AuthError are "invalid-mechanism" (INVALID_MECHANISM),
"server-signature-mismatch" (SERVER_SIGNATURE_MISMATCH), "incorrect-encoding",
"malformed-challenge", "nonce-mismatch", "bad-iteration-count" and
"server-error" (the e= of a SCRAM server-final, the server's text as the text).

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
microcontroller, so a SCRAM mechanism can take ``sasl_cache``: a dict (or an
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

Heap: this module is loaded during every login, at the login's peak. It
keeps to few functions and names (private constants are const(), folded into
the code; one function does both HMAC and PBKDF2) and to few constant objects:
the SCRAM messages are handled as str, whose short literals are interned
names, while each bytes or longer str literal is an object of its own on the heap.
"""

import binascii
import hashlib

from xmpp_lite._compat import const
from xmpp_lite.errors import AuthError

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388, Extensible SASL Profile
NS_BIND2 = "urn:xmpp:bind:0"  # XEP-0386, Bind 2

# SASL2: the Bind2 request inside <authenticate/> (XEP-0386); the server picks the resource.
BIND2 = b"<bind xmlns='urn:xmpp:bind:0'/>"

# Conditions of AuthError raised by this module (the module docstring lists them all).
# Conditions of a <failure/> from the server (RFC 6120 section 6.5) are passed through.
INVALID_MECHANISM = "invalid-mechanism"
SERVER_SIGNATURE_MISMATCH = "server-signature-mismatch"

# RFC 5802 section 5.1: the iteration count SHOULD be at least 4096. A lower
# count from the server would make an offline attack on the proof cheap; a
# much higher one would stall the board for minutes.
_MIN_ITERATIONS = const(4096)
_MAX_ITERATIONS = const(100000)
_MAX_ITERATION_DIGITS = const(9)

_NONCE_BYTES = const(18)  # 24 base64 characters of client nonce
_MAX_B64_CHARS = const(4096)  # longest base64 text accepted from the server
_BLOCK_SIZE = const(64)  # HMAC block size of SHA-1 and SHA-256

# Progress of a Mechanism. PLAIN goes from _START to _FINAL_SENT: its one message is its last.
_START = const(0)
_FIRST_SENT = const(1)  # client-first sent
_FINAL_SENT = const(2)  # our last message sent (SCRAM: client-final), the server's outcome not seen yet
_VERIFIED = const(3)  # server-final seen in a challenge and verified
_DONE = const(4)


def b64encode(data):
    """Base64 text of ``data`` as str, no newline; "" for empty data."""
    return binascii.b2a_base64(data)[:-1].decode()


def b64decode(text):
    """Bytes of base64 ``text`` (str or bytes) from the server.

    Surrounding whitespace is ignored; "" and "=" are empty data. Anything that
    is not canonical base64 (inner whitespace, stray characters, bad padding)
    or is longer than _MAX_B64_CHARS raises AuthError("incorrect-encoding").
    """
    text = text.strip()
    if len(text) <= _MAX_B64_CHARS:
        try:
            if not isinstance(text, str):
                text = str(text, "utf-8")
            if not text or text == "=":
                return b""
            data = binascii.a2b_base64(text)
            # Both runtimes' decoders skip characters outside the alphabet; encoding
            # back and comparing rejects everything that is not canonical base64.
            if b64encode(data) == text:
                return data
        except ValueError:  # UnicodeError too
            pass
    raise AuthError("incorrect-encoding", "not base64 or over %d chars" % _MAX_B64_CHARS)


def pbkdf2_hmac(name, key, data, count):
    """PBKDF2-HMAC (RFC 8018) as hashlib's, one block; with ``count`` 0, the HMAC (RFC 2104) itself.

    ``name`` is the hashlib hash ("sha1", "sha256"). ``count`` >= 1: PBKDF2
    of password ``key`` and salt ``data`` with ``count`` iterations, its first
    block (as long as the digest: what SCRAM needs), in C where the runtime
    has it. ``count`` 0: HMAC of ``data`` with ``key``. MicroPython hash
    objects have no copy() and refuse update() after digest(), so every HMAC
    hashes its padded key block again; the running XOR of PBKDF2 is kept as
    one integer, with no per-byte loop.
    """
    from xmpp_lite import _compat  # here: one module global less

    if count and _compat.pbkdf2_hmac:
        return _compat.pbkdf2_hmac(name, key, data, count)
    hash_new = getattr(hashlib, name)
    if len(key) > _BLOCK_SIZE:
        key = hash_new(key).digest()
    key += bytes(_BLOCK_SIZE - len(key))
    inner = bytearray(_BLOCK_SIZE)  # key XOR ipad
    outer = bytearray(_BLOCK_SIZE)  # key XOR opad
    for i in range(_BLOCK_SIZE):
        inner[i] = key[i] ^ 0x36
        outer[i] = key[i] ^ 0x5C
    if count:
        data += (1).to_bytes(4, "big")  # the block number, INT(1)
    result = 0
    for _ in range(count or 1):
        # Hashes fed with update(): no key-block + data concatenations, 4096 pairs of them a PBKDF2.
        h = hash_new(inner)
        h.update(data)
        data = hash_new(outer)
        data.update(h.digest())
        data = data.digest()
        result ^= int.from_bytes(data, "big")
    return result.to_bytes(len(data), "big")


def supported_mechanisms():
    """Names this runtime can do, strongest first."""
    names = "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN".split()
    for name in names[:2]:
        if not hasattr(hashlib, name[6:9].lower() + name[10:]):  # SCRAM-SHA-256: hashlib.sha256
            names.remove(name)
    return names


def choose_mechanism(mechanisms, allow_plain=True):
    """The strongest of ``mechanisms``, the server's <mechanism/> texts (str or bytes).

    Unknown names are ignored. Raises AuthError(INVALID_MECHANISM) when
    nothing usable is offered; PLAIN is not usable while ``allow_plain`` is
    false (PLAIN sends the password itself: allow it only over TLS).
    """
    names = []
    for name in mechanisms:
        if not isinstance(name, str):
            name = bytes(name).decode()
        names.append(name.strip())
    usable = supported_mechanisms()
    if not allow_plain:
        usable.remove("PLAIN")
    for name in usable:
        if name in names:
            return name
    raise AuthError(INVALID_MECHANISM, "offered: %s; usable%s: %s"
                    % (", ".join(names), "" if allow_plain else " without TLS", ", ".join(usable)))


class Mechanism:
    """One login attempt with ``name`` ("SCRAM-SHA-256", "SCRAM-SHA-1" or "PLAIN").

    ``initial()`` gives the initial response, ``challenge(data)`` the answer to
    a server challenge, ``success(data)`` checks the data of <success/>. All
    take and return raw bytes (not base64). ``client_nonce`` (str) fixes the
    SCRAM client nonce, for tests only; by default it comes from os.urandom.

    ``client_done`` is true once our last message is out and only the server's
    outcome is left.
    """

    def __init__(self, name, username, password, sasl_cache=None, client_nonce=None):
        usable = supported_mechanisms()
        if name not in usable:
            raise AuthError(INVALID_MECHANISM, "offered: %s; usable%s: %s" % (name, "", ", ".join(usable)))
        credentials = []
        for value in (username, password):
            if isinstance(value, str):
                value = value.encode()  # UTF-8
            if not isinstance(value, (bytes, bytearray)):
                raise ValueError("credentials must be str/bytes")
            credentials.append(bytes(value))
        username, password = credentials
        if not username:
            raise ValueError("empty username")
        self.name = name
        self.sasl_cache = sasl_cache
        self.state = _START
        self.client_done = False
        # data: what the next step needs. PLAIN: its message. SCRAM: the client-first-message-bare
        # (RFC 5802 section 7) and the password, then (ServerSignature, cache key, cache value,
        # whether that value came from the cache).
        if name == "PLAIN":
            nul = bytes(1)  # one NUL byte (made here: a bytes literal would be an object on the heap)
            if nul in username or nul in password:
                raise ValueError("NUL in a PLAIN credential")
            # RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
            self.data = nul + username + nul + password
            return
        if client_nonce is None:
            from os import urandom

            client_nonce = b64encode(urandom(_NONCE_BYTES))
        # Printable ASCII without "," (RFC 5802 section 5.1). As bytes: on MicroPython every character
        # taken from a str (min, max, an index) is interned as a name, for good.
        raw = client_nonce.encode() if isinstance(client_nonce, str) else b""
        if not raw or min(raw) < 0x21 or max(raw) > 0x7E or b"," in raw:
            raise ValueError("nonce: not printable")  # or not str: the client nonce given
        # The client-first message: the GS2 header "n,," (no channel binding, no authzid), then the bare part.
        self.data = ("n,,n=" + username.decode().replace("=", "=3D").replace(",", "=2C") + ",r=" + client_nonce,
                     password)

    def initial(self):
        """The initial response (RFC 6120 6.4.2), raw bytes."""
        if self.state != _START:
            raise ValueError("initial() called twice")
        data = self.data
        if self.name == "PLAIN":
            self.data = None  # no password kept
            self.state = _FINAL_SENT
            self.client_done = True
            return data
        self.state = _FIRST_SENT
        return data[0].encode()  # type: ignore[attr-defined]  # SCRAM: data is (str, bytes), not PLAIN's bytes

    def challenge(self, data):
        """The response to a server challenge, raw bytes."""
        state = self.state
        if self.name == "PLAIN" or state == _START or state > _FINAL_SENT:  # PLAIN takes none
            raise AuthError("malformed-challenge", "unexpected %s" % "challenge")
        try:
            data = str(data, "utf-8")  # SCRAM's messages are UTF-8 text
        except UnicodeError:
            data = ""  # not SCRAM: fails the checks below
        parts = data.split(",")
        if state == _FINAL_SENT:
            # The server-final: sent as a challenge (RFC 6120 6.3.10), we answer
            # with an empty response and <success/> follows without data;
            # success() brings the one it carries here too.
            text = parts[0][2:]
            if data[:2] == "e=":
                raise AuthError("server-error", text)
            if data[:2] != "v=":
                raise AuthError("malformed-challenge", "server-final message has no v=")
            if b64decode(text) != self.data[0]:
                raise AuthError(SERVER_SIGNATURE_MISMATCH,
                                "server does not know the password (or someone is in between)")
            self.state = _VERIFIED
            self.client_done = False
            return b""
        # The server-first: r=nonce,s=salt,i=iterations (RFC 5802 section 7); an
        # m= first (a mandatory extension) is not supported.
        if len(parts) < 3 or parts[0][:2] + parts[1][:2] + parts[2][:2] != "r=s=i=":
            raise AuthError("malformed-challenge", "server-first is not r=,s=,i=")
        first, password = self.data
        # n,,n=name,r=nonce: neither the escaped name nor the nonce has a ",".
        mine = first.split(",")[3][2:]  # type: ignore[attr-defined]  # data is (str, bytes) here
        nonce = parts[0][2:]
        if len(nonce) <= len(mine) or not nonce.startswith(mine):
            raise AuthError("nonce-mismatch", "server nonce must extend ours")
        raw = nonce.encode()  # as bytes: see __init__
        if min(raw) < 0x21 or max(raw) > 0x7E:
            raise AuthError("malformed-challenge", "nonce: not printable")  # the server's
        salt = b64decode(parts[1][2:])
        if not salt:
            raise AuthError("malformed-challenge", "server-first is not r=,s=,i=")  # an empty salt
        count = parts[2][2:]
        if (not count.encode().isdigit() or len(count) > _MAX_ITERATION_DIGITS  # ASCII digits only
                or int(count) < _MIN_ITERATIONS or int(count) > _MAX_ITERATIONS):
            raise AuthError("bad-iteration-count", "iterations %s not in %d..%d" % (count, _MIN_ITERATIONS, _MAX_ITERATIONS))
        count = int(count)
        # ClientKey + ServerKey, from the cache or through PBKDF2.
        name = self.name[6:9].lower() + self.name[10:]  # SCRAM-SHA-256: sha256
        size = 20 if name == "sha1" else 32  # the digest
        key = ",".join((self.name, parts[1][2:], str(count)))
        cache = self.sasl_cache
        value = cache is not None and cache.get(key)
        hit = isinstance(value, (bytes, bytearray)) and len(value) == 2 * size
        if hit:
            value = bytes(value)
        else:
            salted = pbkdf2_hmac(name, password, salt, count)
            value = (pbkdf2_hmac(name, salted, "Client Key".encode(), 0)
                     + pbkdf2_hmac(name, salted, "Server Key".encode(), 0))
        without_proof = "c=biws,r=" + nonce  # biws: the GS2 header in base64
        message = (first[3:] + "," + data + "," + without_proof).encode()  # the AuthMessage
        signature = pbkdf2_hmac(name, getattr(hashlib, name)(value[:size]).digest(), message, 0)
        proof = (int.from_bytes(value[:size], "big") ^ int.from_bytes(signature, "big")).to_bytes(size, "big")
        self.data = (pbkdf2_hmac(name, value[size:], message, 0), key, value, hit)  # the password is dropped
        self.state = _FINAL_SENT
        self.client_done = True
        return (without_proof + ",p=" + b64encode(proof)).encode()

    def success(self, data):
        """Accept <success/>; for SCRAM the server must have proved itself."""
        state = self.state
        if state == _DONE or self.name == "PLAIN" and state != _FINAL_SENT:
            raise AuthError("malformed-challenge", "unexpected %s" % "success")
        if self.name != "PLAIN":
            if data and state >= _FINAL_SENT:
                self.state = _FINAL_SENT
                self.challenge(data)  # checks the server-final
            elif state != _VERIFIED:
                raise AuthError(SERVER_SIGNATURE_MISMATCH, "success without server proof")
            key, value, hit = self.data[1:]
            cache = self.sasl_cache
            if cache is not None and not hit:  # a hit: the cache has it already
                # One entry per mechanism: drop entries of older salts or counts.
                for old in list(cache):
                    if old != key and isinstance(old, str) and old.startswith(self.name + ","):
                        del cache[old]
                cache[key] = value
        self.state = _DONE
        self.client_done = False

    def discard_cache(self):
        """Forget the cache entry this login used (call it on <failure/>).

        A cached entry goes stale if the server changes the password but keeps
        salt and iteration count; dropping it makes the next login run PBKDF2.
        """
        data = self.data
        if self.state >= _FINAL_SENT and data and data[3]:  # SCRAM, past the client-final, cache hit
            self.sasl_cache.pop(data[1], None)


# --- the SASL and SASL2 elements (RFC 6120 section 6, XEP-0388) ---------------------------------


def auth(mechanism, initial):
    """A SASL <auth/> with the initial response; an empty one is "=" (RFC 6120 6.4.2)."""
    return ("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mechanism, b64encode(initial) or "=")).encode()


def response(data, xmlns):
    """A SASL <response/>: ``xmlns`` is NS_SASL, or NS_SASL2 for SASL2."""
    return ("<response xmlns='%s'>%s</response>" % (xmlns, b64encode(data))).encode()


def authenticate(mechanism, initial, inline):
    """A SASL2 <authenticate/> with its initial response and the inline requests (bytes)."""
    return ("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>%s</authenticate>"
            % (NS_SASL2, mechanism, b64encode(initial), inline.decode())).encode()


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
