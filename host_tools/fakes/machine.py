"""A fake of MicroPython's ESP32 ``machine`` module (see README.md beside this file)."""

import math
import sys

from _fakeenv import env, env_int

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time as _time

    def ticks_ms():
        return _time.monotonic_ns() // 1000000

    def ticks_diff(a, b):
        return a - b

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_pin_writes = [0]
_start = ticks_ms()


def _exit(status):
    sys.exit(status)


def reset():
    print("fake: machine.reset()")
    _exit(0)


def soft_reset():
    reset()


def deepsleep(ms=0):
    print("fake: deepsleep %d ms" % ms)
    _exit(0)


def lightsleep(ms=0):
    print("fake: lightsleep %d ms" % ms)


def reset_cause():
    return PWRON_RESET


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(hz=None):
    return 240000000


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        self.__init__(self.id, mode, pull, value)

    def value(self, value=None):
        if value is None:
            return self._value
        self._value = 1 if value else 0
        if self.mode == Pin.OUT:
            _pin_writes[0] += 1
            limit = env_int("FAKE_MAX_PIN_WRITES", 0)
            if limit and _pin_writes[0] >= limit:
                print("fake: %d pin writes, stopping" % _pin_writes[0])
                _exit(0)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, value=None):
        return self.value(value)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin

    def atten(self, value):
        self._atten = value

    def read_u16(self):
        # A slow sine (one period a minute), different phase per pin.
        phase = ticks_diff(ticks_ms(), _start) / 60000 + (getattr(self.pin, "id", 0) or 0) / 7
        return int(32768 + 16000 * math.sin(2 * math.pi * phase))

    def read(self):
        return self.read_u16() >> 4


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self._last = ticks_ms()
        self.feeds = 0
        print("fake: watchdog started, %d ms" % timeout)

    def feed(self):
        now = ticks_ms()
        late = ticks_diff(now, self._last)
        if late > self.timeout:
            print("fake: watchdog would have reset the board (not fed for %d ms)" % late)
        self._last = now
        self.feeds += 1
        if self.feeds == 1 or self.feeds % 50 == 0:
            print("fake: watchdog fed %d times" % self.feeds)


class UART:
    """A SIM800-class modem on a UART: answers the AT commands of a PPP bring-up."""

    def __init__(self, id, baudrate=115200, tx=None, rx=None, **kw):
        self.id = id
        self.baudrate = baudrate
        self._out = b""
        self._pin_ok = env("FAKE_SIM_PIN") is None
        self._dead = env("FAKE_MODEM_DEAD") is not None
        self._line = b""

    def init(self, *args, **kw):
        pass

    def write(self, data):
        if self._dead:
            return len(data)
        self._line += bytes(data)
        while b"\r" in self._line:
            index = self._line.find(b"\r")
            command = self._line[:index].strip()
            self._line = self._line[index + 1:]
            if command:
                self._out += self._answer(command.decode())
        return len(data)

    def _answer(self, command):
        ok = b"\r\nOK\r\n"
        upper = command.upper()
        if upper in ("AT", "ATE0", "ATH", "AT+CFUN=1") or upper.startswith("AT+CGDCONT="):
            return ok
        if upper == "AT+CPIN?":
            return (b"\r\n+CPIN: READY\r\n" if self._pin_ok else b"\r\n+CPIN: SIM PIN\r\n") + ok
        if upper.startswith("AT+CPIN="):
            if command[8:].strip('"') == env("FAKE_SIM_PIN"):
                self._pin_ok = True
                return ok
            return b"\r\n+CME ERROR: 16\r\n"
        if upper == "AT+CREG?":
            return b"\r\n+CREG: 0,1\r\n" + ok
        if upper == "AT+CSQ":
            return b"\r\n+CSQ: 18,0\r\n" + ok
        if upper.startswith("ATD*99"):
            return b"\r\nCONNECT 115200\r\n"
        return b"\r\nERROR\r\n"

    def any(self):
        return len(self._out)

    def read(self, n=None):
        if not self._out:
            return None
        if n is None:
            n = len(self._out)
        data, self._out = self._out[:n], self._out[n:]
        return data
