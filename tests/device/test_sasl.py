"""Tests of xmpp_lite.sasl: HMAC, PBKDF2, PLAIN, SCRAM-SHA-1/256, base64, mechanism choice, key cache."""

from binascii import unhexlify

from support import raises
from xmpp_lite import _compat, sasl
from xmpp_lite.sasl import (
    INVALID_MECHANISM,
    SERVER_SIGNATURE_MISMATCH,
    AuthError,
    Mechanism,
    b64decode,
    b64encode,
    choose_mechanism,
)

# The module's other conditions are private constants (folded into its code on MicroPython): the
# documented strings are the contract.
INCORRECT_ENCODING = "incorrect-encoding"
MALFORMED_CHALLENGE = "malformed-challenge"
NONCE_MISMATCH = "nonce-mismatch"
BAD_ITERATION_COUNT = "bad-iteration-count"
SERVER_ERROR = "server-error"
# The iteration counts accepted from the server (RFC 5802 section 5.1's minimum; the cap keeps a board responsive).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 100000

# RFC 5802 section 5: the SCRAM-SHA-1 example exchange (user "user", password "pencil").
SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SHA1_CLIENT_FIRST = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
SHA1_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
SHA1_CACHE_KEY = "SCRAM-SHA-1,QSXCR+Q6sek8bf92,4096"

# RFC 7677 section 3: the SCRAM-SHA-256 example exchange (same credentials).
SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SHA256_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
SHA256_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _scram_sha1(cache=None, password="pencil"):
    mech = Mechanism("SCRAM-SHA-1", "user", password, sasl_cache=cache, client_nonce=SHA1_NONCE)
    assert mech.initial() == SHA1_CLIENT_FIRST
    return mech


def _server_first(iterations=b"4096", salt=b"QSXCR+Q6sek8bf92", nonce=None):
    """SHA1_SERVER_FIRST with one attribute changed."""
    if nonce is None:
        nonce = b"fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
    return b"r=" + nonce + b",s=" + salt + b",i=" + iterations


class _CountingPbkdf2:
    """Stands in for sasl.pbkdf2_hmac and counts the PBKDF2 calls (those with an iteration count)."""

    def __init__(self):
        self.calls = 0
        self.original = sasl.pbkdf2_hmac

    def __call__(self, *args):
        if args[3]:
            self.calls += 1
        return self.original(*args)


def _with_counting_pbkdf2(fn):
    counter = _CountingPbkdf2()
    sasl.pbkdf2_hmac = counter
    try:
        fn(counter)
    finally:
        sasl.pbkdf2_hmac = counter.original


def _without_c_pbkdf2(fn):
    """Runs fn with sasl's own PBKDF2 loop, the one MicroPython runs (CPython has hashlib's in C)."""
    original = _compat.pbkdf2_hmac
    _compat.pbkdf2_hmac = None
    try:
        fn()
    finally:
        _compat.pbkdf2_hmac = original


# --- HMAC -------------------------------------------------------------------


def test_hmac_sha1_rfc2202_vectors():
    vectors = (
        (b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
        (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (b"\xaa" * 20, b"\xdd" * 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        (bytes(range(1, 26)), b"\xcd" * 50, "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
        (b"\x0c" * 20, b"Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
        (
            b"\xaa" * 80,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ),
        (
            b"\xaa" * 80,
            b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
            "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
        ),
    )
    for key, msg, expected in vectors:
        assert sasl.pbkdf2_hmac("sha1", key, msg, 0) == unhexlify(expected)


def test_hmac_sha256_rfc4231_vectors():
    assert sasl.pbkdf2_hmac("sha256", b"\x0b" * 20, b"Hi There", 0) == unhexlify(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )
    assert sasl.pbkdf2_hmac("sha256", b"Jefe", b"what do ya want for nothing?", 0) == unhexlify(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


# --- PBKDF2 -----------------------------------------------------------------

# RFC 6070 (PBKDF2-HMAC-SHA1); the 16777216-iteration vector is left out as too slow.
_RFC6070 = (
    (b"password", b"salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
    (b"password", b"salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
    (b"password", b"salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"),
    (
        b"passwordPASSWORDpassword",
        b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
        4096,
        25,
        "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
    ),
    (b"pass\0word", b"sa\0lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"),
)


def test_pbkdf2_rfc6070_vectors():
    # sasl.pbkdf2_hmac gives PBKDF2's first block, as long as the digest (all SCRAM needs): the first 20 bytes here.
    for password, salt, iterations, dklen, expected in _RFC6070:
        assert sasl.pbkdf2_hmac("sha1", password, salt, iterations)[:dklen] == unhexlify(expected)[:20]


def test_pbkdf2_python_loop_rfc6070_vectors():
    # The loop MicroPython runs; on CPython sasl.pbkdf2_hmac takes hashlib's C version instead.
    def check():
        for password, salt, iterations, dklen, expected in _RFC6070:
            assert sasl.pbkdf2_hmac("sha1", password, salt, iterations)[:dklen] == unhexlify(expected)[:20]

    _without_c_pbkdf2(check)


def test_pbkdf2_length_is_the_digest_size():
    expected = sasl.pbkdf2_hmac("sha256", b"password", b"salt", 2)
    assert len(expected) == 32 and len(sasl.pbkdf2_hmac("sha1", b"password", b"salt", 2)) == 20

    def check():
        assert sasl.pbkdf2_hmac("sha256", b"password", b"salt", 2) == expected

    _without_c_pbkdf2(check)


# --- base64 -----------------------------------------------------------------


def test_b64encode_has_no_newline():
    assert b64encode(b"ab") == "YWI="
    assert b64encode(b"") == ""
    assert b64encode(b"\0user\0pencil") == "AHVzZXIAcGVuY2ls"


def test_empty_initial_response_is_an_equals_sign():
    assert sasl.auth("PLAIN", b"") == b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>"
    assert sasl.auth("PLAIN", b"ab") == b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>YWI=</auth>"


def test_b64decode_accepts_str_bytes_and_empty_forms():
    assert b64decode("YWI=") == b"ab"
    assert b64decode(b"YWJj") == b"abc"
    assert b64decode(" YWI=\n") == b"ab"
    assert b64decode("") == b""
    assert b64decode("=") == b""
    assert b64decode(b"=") == b""


def test_b64decode_rejects_bad_input():
    for bad in ("YWI", "Y!I=", "YW I=", "YWI=YWI=", "YQ==x", "YR==", "====", "\u00e9"):
        error = raises(AuthError, b64decode, bad)
        assert error.condition == INCORRECT_ENCODING, bad


def test_b64decode_rejects_overlong_input():
    error = raises(AuthError, b64decode, "QUJD" * 2000)
    assert error.condition == INCORRECT_ENCODING


# --- AuthError --------------------------------------------------------------


def test_auth_error_carries_condition_and_text():
    error = AuthError("not-authorized", "Invalid username or password")
    assert error.condition == "not-authorized"
    assert error.text == "Invalid username or password"
    assert str(error) == "not-authorized: Invalid username or password"
    assert str(AuthError("aborted")) == "aborted"
    assert AuthError("aborted").text == ""


# --- choosing a mechanism ---------------------------------------------------


def test_choose_prefers_scram_sha256_then_sha1_then_plain():
    assert choose_mechanism(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]) == "SCRAM-SHA-256"
    assert choose_mechanism(["PLAIN", "SCRAM-SHA-1"]) == "SCRAM-SHA-1"
    assert choose_mechanism(["PLAIN"]) == "PLAIN"


def test_choose_ignores_unknown_and_plus_mechanisms():
    offered = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "DIGEST-MD5", "SCRAM-SHA-1", "X-OAUTH2"]
    assert choose_mechanism(offered) == "SCRAM-SHA-1"


def test_choose_takes_plain_from_a_gloox_style_list():
    assert choose_mechanism(["DIGEST-MD5", "PLAIN", "ANONYMOUS", "CRAM-MD5"]) == "PLAIN"


def test_choose_strips_whitespace_and_accepts_bytes():
    assert choose_mechanism([" PLAIN\n", b"SCRAM-SHA-1"]) == "SCRAM-SHA-1"


def test_choose_refuses_plain_when_not_allowed():
    error = raises(AuthError, choose_mechanism, ["DIGEST-MD5", "PLAIN", "ANONYMOUS", "CRAM-MD5"], False)
    assert error.condition == INVALID_MECHANISM
    assert "PLAIN" in error.text and "without TLS" in error.text
    assert choose_mechanism(["PLAIN", "SCRAM-SHA-1"], allow_plain=False) == "SCRAM-SHA-1"


def test_choose_fails_when_nothing_usable_is_offered():
    for offered in ([], ["ANONYMOUS", "CRAM-MD5"], ["SCRAM-SHA-1-PLUS"], ["scram-sha-1"]):
        error = raises(AuthError, choose_mechanism, offered)
        assert error.condition == INVALID_MECHANISM


def test_unknown_mechanism_name_is_refused():
    error = raises(AuthError, Mechanism, "DIGEST-MD5", "user", "pencil")
    assert error.condition == INVALID_MECHANISM


# --- PLAIN ------------------------------------------------------------------


def test_plain_initial_response():
    mech = Mechanism("PLAIN", "user", "pencil")
    assert mech.initial() == b"\0user\0pencil"
    mech.success(b"")


def test_plain_sends_non_ascii_password_as_utf8():
    mech = Mechanism("PLAIN", "user", "p\u00e4ss")
    assert mech.initial() == b"\0user\0p\xc3\xa4ss"


def test_plain_rejects_nul_in_credentials():
    raises(ValueError, Mechanism, "PLAIN", "us\0er", "pencil")
    raises(ValueError, Mechanism, "PLAIN", "user", "pen\0cil")


def test_credentials_must_be_str_or_bytes():
    raises(ValueError, Mechanism, "PLAIN", 5, "pencil")
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "user", None)
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "", "pencil")  # nor empty, the username
    assert Mechanism("PLAIN", b"user", bytearray(b"pencil")).initial() == b"\0user\0pencil"


def test_plain_rejects_a_challenge():
    mech = Mechanism("PLAIN", "user", "pencil")
    mech.initial()
    error = raises(AuthError, mech.challenge, b"anything")
    assert error.condition == MALFORMED_CHALLENGE


def test_initial_twice_is_a_caller_error():
    mech = Mechanism("PLAIN", "user", "pencil")
    mech.initial()
    raises(ValueError, mech.initial)


# --- SCRAM ------------------------------------------------------------------


def test_scram_sha1_rfc5802_exchange():
    cache = {}
    mech = _scram_sha1(cache)
    assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
    mech.success(SHA1_SERVER_FINAL)
    assert list(cache) == [SHA1_CACHE_KEY]
    assert len(cache[SHA1_CACHE_KEY]) == 40  # ClientKey + ServerKey


def test_scram_sha1_exchange_through_base64():
    # What the session does: base64 text on the wire, raw bytes in the mechanism.
    mech = Mechanism("SCRAM-SHA-1", "user", "pencil", client_nonce=SHA1_NONCE)
    auth_text = b64encode(mech.initial())
    assert b64decode(auth_text) == SHA1_CLIENT_FIRST
    response_text = b64encode(mech.challenge(b64decode(b64encode(SHA1_SERVER_FIRST))))
    assert b64decode(response_text) == SHA1_CLIENT_FINAL
    mech.success(b64decode(b64encode(SHA1_SERVER_FINAL)))


def test_scram_sha256_rfc7677_exchange():
    cache = {}
    mech = Mechanism("SCRAM-SHA-256", "user", "pencil", sasl_cache=cache, client_nonce=SHA256_NONCE)
    assert mech.initial() == SHA256_CLIENT_FIRST
    assert mech.challenge(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL
    mech.success(SHA256_SERVER_FINAL)
    assert len(cache["SCRAM-SHA-256,W22ZaJ0SNY7soEsUEjb6gQ==,4096"]) == 64


def test_scram_server_final_as_challenge_then_empty_success():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    assert mech.challenge(SHA1_SERVER_FINAL) == b""
    mech.success(b"")


def test_scram_wrong_server_signature_is_rejected():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    wrong = b"v=" + b64encode(b"\x01" * 20).encode()
    error = raises(AuthError, mech.success, wrong)
    assert error.condition == SERVER_SIGNATURE_MISMATCH


def test_scram_wrong_server_signature_in_a_challenge_is_rejected():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    error = raises(AuthError, mech.challenge, b"v=" + b64encode(b"\x02" * 20).encode())
    assert error.condition == SERVER_SIGNATURE_MISMATCH


def test_scram_success_without_server_signature_is_rejected():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    error = raises(AuthError, mech.success, b"")
    assert error.condition == SERVER_SIGNATURE_MISMATCH


def test_scram_success_before_the_exchange_is_rejected():
    # A server that says <success/> right after the initial response never proved anything.
    mech = _scram_sha1()
    error = raises(AuthError, mech.success, b"")
    assert error.condition == SERVER_SIGNATURE_MISMATCH
    error = raises(AuthError, mech.success, SHA1_SERVER_FINAL)
    assert error.condition == SERVER_SIGNATURE_MISMATCH


def test_scram_nonce_must_extend_the_client_nonce():
    for nonce in (b"3rfcNHYJY1ZVvWVs7jfyko+d2lbbFgONRv9qkxdawL", b"fyko+d2lbbFgONRv9qkxdawL", b"fyko"):
        mech = _scram_sha1()
        error = raises(AuthError, mech.challenge, _server_first(nonce=nonce))
        assert error.condition == NONCE_MISMATCH


def test_scram_nonce_with_forbidden_characters_is_rejected():
    mech = _scram_sha1()
    error = raises(AuthError, mech.challenge, _server_first(nonce=b"fyko+d2lbbFgONRv9qkxdawL\x01x"))
    assert error.condition == MALFORMED_CHALLENGE


def test_scram_non_utf8_server_messages_are_malformed():
    mech = _scram_sha1()
    error = raises(AuthError, mech.challenge, SHA1_SERVER_FIRST + b",x=\xff")
    assert error.condition == MALFORMED_CHALLENGE
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    error = raises(AuthError, mech.success, b"e=\xff")
    assert error.condition == MALFORMED_CHALLENGE


def test_scram_server_error_attribute():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    error = raises(AuthError, mech.success, b"e=invalid-proof")
    assert error.condition == SERVER_ERROR
    assert error.text == "invalid-proof"
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    error = raises(AuthError, mech.challenge, b"e=unknown-user")
    assert error.condition == SERVER_ERROR
    assert error.text == "unknown-user"


def test_scram_iteration_count_too_high_is_rejected():
    mech = _scram_sha1()
    error = raises(AuthError, mech.challenge, _server_first(iterations=str(MAX_ITERATIONS + 1).encode()))
    assert error.condition == BAD_ITERATION_COUNT
    assert str(MAX_ITERATIONS) in error.text


def test_scram_iteration_count_too_low_is_rejected():
    mech = _scram_sha1()
    error = raises(AuthError, mech.challenge, _server_first(iterations=str(MIN_ITERATIONS - 1).encode()))
    assert error.condition == BAD_ITERATION_COUNT


def test_scram_iteration_count_must_be_digits():
    for count in (b"", b"4k96", b"-4096", b"+4096", b" 4096", b"1" * 40):
        mech = _scram_sha1()
        error = raises(AuthError, mech.challenge, _server_first(iterations=count))
        assert error.condition == BAD_ITERATION_COUNT, count


def test_scram_malformed_server_first_is_rejected():
    for server_first in (
        b"",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc",
        b"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",
        b"m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
        _server_first(salt=b""),
    ):
        mech = _scram_sha1()
        error = raises(AuthError, mech.challenge, server_first)
        assert error.condition == MALFORMED_CHALLENGE, server_first


def test_scram_bad_salt_encoding_is_rejected():
    mech = _scram_sha1()
    error = raises(AuthError, mech.challenge, _server_first(salt=b"QSXCR!Q6sek8bf92"))
    assert error.condition == INCORRECT_ENCODING


def test_scram_ignores_server_first_extensions():
    mech = _scram_sha1()
    # The extension is part of the AuthMessage, so the proof changes; the exchange itself goes on.
    response = mech.challenge(SHA1_SERVER_FIRST + b",x=extra")
    assert response.startswith(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=")
    assert response != SHA1_CLIENT_FINAL


def test_scram_escapes_the_username():
    mech = Mechanism("SCRAM-SHA-1", "a=b,c", "pencil", client_nonce="abc")
    assert mech.initial() == b"n,,n=a=3Db=2Cc,r=abc"


def test_scram_random_nonces_differ_and_are_printable():
    first = Mechanism("SCRAM-SHA-1", "user", "pencil").initial()
    second = Mechanism("SCRAM-SHA-1", "user", "pencil").initial()
    assert first != second
    nonce = first[len(b"n,,n=user,r="):]
    assert len(nonce) == 24
    assert min(nonce) > 0x20 and max(nonce) < 0x7F and b"," not in nonce


def test_scram_rejects_a_bad_client_nonce():
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "user", "pencil", None, "a,b")
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "user", "pencil", None, "")
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "user", "pencil", None, "a b")
    raises(ValueError, Mechanism, "SCRAM-SHA-1", "user", "pencil", None, b"abc")


def test_scram_challenge_after_success_is_rejected():
    mech = _scram_sha1()
    mech.challenge(SHA1_SERVER_FIRST)
    mech.success(SHA1_SERVER_FINAL)
    error = raises(AuthError, mech.challenge, SHA1_SERVER_FINAL)
    assert error.condition == MALFORMED_CHALLENGE


# --- salted-key cache -------------------------------------------------------


def test_cache_is_filled_after_a_verified_login():
    cache = {}
    mech = _scram_sha1(cache)
    mech.challenge(SHA1_SERVER_FIRST)
    assert cache == {}  # not before the server proved itself
    mech.success(SHA1_SERVER_FINAL)
    assert list(cache) == [SHA1_CACHE_KEY]
    # The keys themselves: a login with them and a wrong password still gives the RFC's proof.
    mech = _scram_sha1(cache, password="not the password")
    assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL


def test_cache_hit_skips_pbkdf2():
    def check(counter):
        cache = {}
        mech = _scram_sha1(cache)
        assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
        mech.success(SHA1_SERVER_FINAL)
        assert counter.calls == 1

        mech = _scram_sha1(cache)
        assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
        mech.success(SHA1_SERVER_FINAL)
        assert counter.calls == 1

    _with_counting_pbkdf2(check)


class _RecordingCache:
    """A salted-key cache (get, item assignment, del, pop, iteration) that records what is written to it."""

    def __init__(self, entries):
        self.entries = dict(entries)
        self.writes = []

    def get(self, key, default=None):
        return self.entries.get(key, default)

    def __setitem__(self, key, value):
        self.writes.append(("set", key))
        self.entries[key] = value

    def __delitem__(self, key):
        self.writes.append(("del", key))
        del self.entries[key]

    def pop(self, key, default=None):
        self.writes.append(("pop", key))
        return self.entries.pop(key, default)

    def __iter__(self):
        return iter(list(self.entries))


def test_cache_hit_writes_nothing():
    # A cache kept in flash must not be rewritten at every login.
    cache = {}
    mech = _scram_sha1(cache)
    mech.challenge(SHA1_SERVER_FIRST)
    mech.success(SHA1_SERVER_FINAL)
    recording = _RecordingCache(cache)
    mech = _scram_sha1(recording)
    assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
    mech.success(SHA1_SERVER_FINAL)
    assert recording.writes == []
    recording = _RecordingCache({"SCRAM-SHA-1,b2xkc2FsdA==,4096": b"\x00" * 40})
    mech = _scram_sha1(recording)
    mech.challenge(SHA1_SERVER_FIRST)
    mech.success(SHA1_SERVER_FINAL)  # a miss: the new entry replaces the old one
    assert recording.writes == [("del", "SCRAM-SHA-1,b2xkc2FsdA==,4096"), ("set", SHA1_CACHE_KEY)]


def test_cached_keys_are_used_instead_of_the_password():
    # A deliberately wrong cached value changes the proof even with the right password.
    cache = {SHA1_CACHE_KEY: b"\x00" * 40}
    mech = _scram_sha1(cache)
    response = mech.challenge(SHA1_SERVER_FIRST)
    assert response != SHA1_CLIENT_FINAL
    # ... and the server's real signature no longer matches the cached ServerKey.
    error = raises(AuthError, mech.success, SHA1_SERVER_FINAL)
    assert error.condition == SERVER_SIGNATURE_MISMATCH


def test_cache_with_right_keys_works_with_a_wrong_password():
    cache = {}
    mech = _scram_sha1(cache)
    mech.challenge(SHA1_SERVER_FIRST)
    mech.success(SHA1_SERVER_FINAL)
    mech = _scram_sha1(cache, password="not the password")
    assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL


def test_cache_entry_of_wrong_size_is_ignored():
    def check(counter):
        cache = {SHA1_CACHE_KEY: b"\x00" * 20}
        mech = _scram_sha1(cache)
        assert mech.challenge(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
        assert counter.calls == 1
        mech.success(SHA1_SERVER_FINAL)
        assert len(cache[SHA1_CACHE_KEY]) == 40

    _with_counting_pbkdf2(check)


def test_cache_is_not_written_when_the_server_fails_to_prove_itself():
    cache = {}
    mech = _scram_sha1(cache, password="wrong")
    mech.challenge(SHA1_SERVER_FIRST)
    raises(AuthError, mech.success, SHA1_SERVER_FINAL)
    assert cache == {}


def test_cache_keeps_one_entry_per_mechanism():
    cache = {"SCRAM-SHA-1,b2xkc2FsdA==,4096": b"\x00" * 40, "SCRAM-SHA-256,c2FsdA==,4096": b"\x00" * 64}
    mech = _scram_sha1(cache)
    mech.challenge(SHA1_SERVER_FIRST)
    mech.success(SHA1_SERVER_FINAL)
    assert sorted(cache) == [SHA1_CACHE_KEY, "SCRAM-SHA-256,c2FsdA==,4096"]


def test_discard_cache_drops_a_used_entry():
    cache = {SHA1_CACHE_KEY: b"\x00" * 40}
    mech = _scram_sha1(cache)
    mech.challenge(SHA1_SERVER_FIRST)
    mech.discard_cache()  # e.g. the server answered <failure><not-authorized/></failure>
    assert cache == {}


def test_discard_cache_keeps_entries_this_login_did_not_use():
    entry = {SHA1_CACHE_KEY: b"\x00" * 20}  # wrong size: not used, PBKDF2 runs
    cache = dict(entry)
    mech = _scram_sha1(cache)
    mech.discard_cache()  # before the client-final
    mech.challenge(SHA1_SERVER_FIRST)
    mech.discard_cache()
    assert cache == entry
    mech = Mechanism("PLAIN", "user", "pencil", sasl_cache=cache)
    mech.discard_cache()
    mech.initial()
    mech.discard_cache()
    assert cache == entry


def test_plain_never_touches_the_cache():
    cache = {}
    mech = Mechanism("PLAIN", "user", "pencil", sasl_cache=cache)
    mech.initial()
    mech.success(b"")
    assert cache == {}


# --- the SASL and SASL2 elements --------------------------------------------


def test_response_and_authenticate_elements():
    assert sasl.response(b"ab", sasl.NS_SASL) == b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>YWI=</response>"
    assert sasl.response(b"", sasl.NS_SASL2) == b"<response xmlns='urn:xmpp:sasl:2'></response>"
    assert sasl.authenticate("PLAIN", b"ab", sasl.BIND2) == (
        b"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>YWI=</initial-response>"
        b"<bind xmlns='urn:xmpp:bind:0'/></authenticate>")
    assert sasl.authenticate("SCRAM-SHA-1", b"", b"").endswith(b"<initial-response></initial-response></authenticate>")


def test_failure_element_gives_condition_and_text():
    from xmpp_lite.stanza import Element

    failure = Element("failure", xmlns=sasl.NS_SASL, children=[
        Element("not-authorized"), Element("text", text="Invalid username or password")])
    error = sasl.failure(failure)
    assert isinstance(error, AuthError) and error.condition == "not-authorized"
    assert error.text == "Invalid username or password"
    error = sasl.failure(Element("failure", xmlns=sasl.NS_SASL))
    assert error.condition == "not-authorized" and error.text == ""
    assert sasl.failure(Element("failure", xmlns=sasl.NS_SASL, children=[Element("aborted")])).condition == "aborted"
