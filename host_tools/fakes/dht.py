"""A fake of MicroPython's ``dht`` module: a DHT11/DHT22 that answers (see README.md beside this file)."""

import errno

from _fakeenv import env


class _DHT:
    def __init__(self, pin):
        self.pin = pin
        self._count = 0

    def measure(self):
        if env("FAKE_DHT_FAIL") is not None:
            raise OSError(errno.ETIMEDOUT)
        self._count += 1

    def temperature(self):
        return 21.5 + (self._count % 5) / 10

    def humidity(self):
        return 40.0 + self._count % 3


class DHT11(_DHT):
    pass


class DHT22(_DHT):
    pass
