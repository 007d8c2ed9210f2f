"""Tests of the device test helpers; they also prove the dual-runtime setup works."""

from support import RANDOM_SPLITS, Prng, chunkings, raises


def _fail(exc_type, message):
    raise exc_type(message)


def _fail_with(kind=ValueError, text=""):
    raise kind(text)


def _join(chunks):
    return b"".join(chunks)


def test_raises_returns_the_exception():
    error = raises(ValueError, _fail, ValueError, "bad value")
    assert isinstance(error, ValueError)
    assert error.args == ("bad value",)


def test_raises_passes_keyword_arguments():
    error = raises(KeyError, _fail_with, kind=KeyError, text="k")
    assert error.args == ("k",)


def test_raises_accepts_a_base_class():
    error = raises(Exception, _fail, ValueError, "x")
    assert isinstance(error, ValueError)


def test_raises_fails_when_nothing_is_raised():
    error = raises(AssertionError, raises, ValueError, lambda: None)
    assert "ValueError" in str(error)


def test_raises_lets_other_exceptions_through():
    # A TypeError where a ValueError is expected must not pass for success.
    error = raises(TypeError, raises, ValueError, _fail, TypeError, "other")
    assert error.args == ("other",)


def test_prng_known_sequence():
    # The published xorshift32 sequence for seed 1: same values on every runtime.
    prng = Prng(1)
    assert [prng.next() for _ in range(5)] == [270369, 67634689, 2647435461, 307599695, 2398689233]


def test_prng_same_seed_same_sequence():
    first = Prng(42)
    second = Prng(42)
    assert [first.next() for _ in range(20)] == [second.next() for _ in range(20)]


def test_prng_different_seeds_differ():
    first = Prng(1)
    second = Prng(2)
    assert [first.next() for _ in range(5)] != [second.next() for _ in range(5)]


def test_prng_zero_seed_does_not_stick():
    prng = Prng(0)
    values = [prng.next() for _ in range(5)]
    assert 0 not in values
    assert len(set(values)) == 5


def test_prng_randrange_stays_in_bounds():
    prng = Prng(7)
    seen = set()
    for _ in range(500):
        value = prng.randrange(3, 9)
        assert 3 <= value < 9
        seen.add(value)
    assert seen == set(range(3, 9))


def test_prng_randrange_rejects_empty_range():
    raises(ValueError, Prng().randrange, 5, 5)


def test_chunkings_whole_then_byte_by_byte():
    data = b"<a x='1'>\xc3\xa9</a>"
    variants = list(chunkings(data))
    assert variants[0] == [data]
    assert variants[1] == [bytes([byte]) for byte in data]
    assert len(variants) == 2 + RANDOM_SPLITS


def test_chunkings_rejoin_to_the_data():
    data = b"<stream:stream xmlns='jabber:client'><message to='a@b'><body>hi &amp; bye</body></message>"
    for chunks in chunkings(data, seed=3):
        assert _join(chunks) == data
        for chunk in chunks:
            assert isinstance(chunk, bytes)
            assert len(chunk) > 0


def test_chunkings_random_splits_cut_inside_the_data():
    data = bytes(range(200))
    for chunks in list(chunkings(data))[2:]:
        assert len(chunks) > 1


def test_chunkings_are_reproducible_per_seed():
    data = bytes(range(100))
    assert list(chunkings(data, seed=5)) == list(chunkings(data, seed=5))
    assert list(chunkings(data, seed=5)) != list(chunkings(data, seed=6))


def test_chunkings_accept_bytearray():
    data = bytearray(b"abc")
    variants = list(chunkings(data))
    assert variants[0] == [b"abc"]
    assert isinstance(variants[0][0], bytes)


def test_chunkings_of_empty_data():
    variants = list(chunkings(b""))
    assert variants[0] == [b""]
    for chunks in variants[1:]:
        assert chunks == []
