"""Helpers for device tests; runs unchanged on CPython and MicroPython.

The device tests use no pytest, so that the same file runs under pytest and
under tests/mp_runner.py on the MicroPython VM.
"""


def raises(exc_type, fn, *args, **kw):
    """Call fn(*args, **kw), which must raise exc_type; return the exception.

    Other exceptions propagate, so a wrong error fails the test with its own
    traceback.
    """
    try:
        fn(*args, **kw)
    except exc_type as error:
        return error
    raise AssertionError("%s not raised" % exc_type.__name__)


_MASK32 = 0xFFFFFFFF


class Prng:
    """Xorshift32 (Marsaglia, 2003): the same sequence on every runtime.

    `random` differs between CPython and MicroPython, and a failing chunking
    must be reproducible on both, so tests draw from this instead.
    """

    def __init__(self, seed=1):
        # Zero is a fixed point of xorshift: it would yield zeros forever.
        self.state = (seed & _MASK32) or 0x9E3779B9

    def next(self):
        """The next 32-bit value, never zero."""
        x = self.state
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self.state = x
        return x

    def randrange(self, low, high):
        """An int in [low, high); the modulo bias is irrelevant for tests."""
        if high <= low:
            raise ValueError("empty range")
        return low + self.next() % (high - low)


# How many random splits chunkings() yields; the largest chunk of split k is
# 2 ** (k + 2) - 1 bytes (3, 7, 15, 31), from many small pieces to a few big ones.
RANDOM_SPLITS = 4


def chunkings(data, seed=1):
    """Yield data cut in different ways, each as a list of bytes chunks.

    First the data whole, then one byte per chunk (which cuts every tag, entity
    and UTF-8 sequence), then RANDOM_SPLITS random cuts drawn from Prng(seed).
    Joining any of the lists gives the data back.
    """
    data = bytes(data)
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    prng = Prng(seed)
    for split in range(RANDOM_SPLITS):
        largest = (1 << (split + 2)) - 1
        chunks = []
        pos = 0
        while pos < len(data):
            size = prng.randrange(1, largest + 1)
            chunks.append(data[pos:pos + size])
            pos += size
        yield chunks


def use_fake_board():
    """Put host_tools/fakes (fake machine, network, esp32, dht, ...) first on the module path.

    Returns the fakes' settings dict (``_fakeenv.overrides``), emptied.
    """
    import sys

    parts = __file__.replace("\\", "/").split("/")
    root = "/".join(parts[:-3]) or "."
    path = root + "/host_tools/fakes"
    if path not in sys.path:
        sys.path.insert(0, path)
    import _fakeenv

    _fakeenv.overrides.clear()
    return _fakeenv.overrides
