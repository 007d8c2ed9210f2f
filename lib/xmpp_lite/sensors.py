"""Sensors and outputs of a board, made from the ``sensors`` / ``outputs`` entries of the configuration.

    sensor = make_sensor({"name": "light", "kind": "adc", "pin": 34})
    sensor.read()          # [("light", 1234, "")] ; the value is None when the sensor failed

Kinds: "adc" (machine.ADC, read_u16, times ``scale`` plus ``offset``),
"digital" (machine.Pin input, 0/1, optional pull "up"/"down"), "dht11" and
"dht22" (the ``dht`` module: a temperature reading under ``name`` and a
humidity reading under ``humidity_name``, default "hum"), "internal_temp"
(the chip's own sensor, esp32 module), "simulated" (a slow sine around
``base``, for boards without hardware and for tests), "blinka_analog"
(adafruit-blinka's analogio on a host, the CircuitPython API). Hardware
modules are imported only by the sensor that needs them.
"""

import math

from xmpp_lite._compat import ticks_ms


class Sensor:
    """One configured sensor; ``read()`` gives [(name, value or None, unit)]."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.unit = spec.get("unit", "")
        self.threshold = spec.get("threshold", 0)
        self.scale = spec.get("scale", 1)
        self.offset = spec.get("offset", 0)
        self.failures = 0  # reads that raised OSError (a DHT that did not answer, ...)

    def read(self):
        try:
            return self._read()
        except OSError:
            self.failures += 1
            return [(self.name, None, self.unit)]

    def _read(self):
        raise NotImplementedError  # each kind reads its own hardware

    def _scaled(self, raw):
        if self.scale == 1 and self.offset == 0:
            return raw
        return round(raw * self.scale + self.offset, 2)


class AdcSensor(Sensor):
    def __init__(self, spec):
        super().__init__(spec)
        import machine

        self._adc = machine.ADC(machine.Pin(spec["pin"]))
        if hasattr(self._adc, "atten") and hasattr(machine.ADC, "ATTN_11DB"):
            self._adc.atten(machine.ADC.ATTN_11DB)  # the full 0-3.3 V range on ESP32

    def _read(self):
        return [(self.name, self._scaled(self._adc.read_u16()), self.unit)]


class DigitalSensor(Sensor):
    def __init__(self, spec):
        super().__init__(spec)
        import machine

        pull = {"up": machine.Pin.PULL_UP, "down": machine.Pin.PULL_DOWN}.get(spec.get("pull"))
        if pull is None:
            self._pin = machine.Pin(spec["pin"], machine.Pin.IN)
        else:
            self._pin = machine.Pin(spec["pin"], machine.Pin.IN, pull)

    def _read(self):
        return [(self.name, self._pin.value(), self.unit)]


class DhtSensor(Sensor):
    def __init__(self, spec):
        super().__init__(spec)
        import dht
        import machine

        model = dht.DHT22 if spec["kind"] == "dht22" else dht.DHT11
        self._dht = model(machine.Pin(spec["pin"]))
        self.unit = spec.get("unit", "C")
        self.humidity_name = spec.get("humidity_name", "hum")

    def read(self):
        try:
            self._dht.measure()
            return [(self.name, self._dht.temperature(), self.unit), (self.humidity_name, self._dht.humidity(), "%")]
        except OSError:
            self.failures += 1
            return [(self.name, None, self.unit), (self.humidity_name, None, "%")]


class InternalTemperature(Sensor):
    def __init__(self, spec):
        super().__init__(spec)
        import esp32

        self._esp32 = esp32
        self.unit = spec.get("unit", "C")

    def _read(self):
        if hasattr(self._esp32, "mcu_temperature"):  # ESP32-S2/S3/C3 and newer MicroPython
            celsius = self._esp32.mcu_temperature()
        else:  # the original ESP32 reports Fahrenheit
            celsius = (self._esp32.raw_temperature() - 32) / 1.8
        return [(self.name, round(celsius, 1), self.unit)]


class SimulatedSensor(Sensor):
    """A sine of ``amplitude`` around ``base`` over ``period_s``: readings that move, without hardware."""

    def __init__(self, spec):
        super().__init__(spec)
        self.base = spec.get("base", 21.0)
        self.amplitude = spec.get("amplitude", 2.0)
        self.period_ms = int(spec.get("period_s", 600) * 1000)
        self._start = ticks_ms()
        self.unit = spec.get("unit", "C")

    def _read(self):
        from xmpp_lite._compat import ticks_diff

        phase = (ticks_diff(ticks_ms(), self._start) % self.period_ms) / self.period_ms
        return [(self.name, round(self.base + self.amplitude * math.sin(2 * math.pi * phase), 1), self.unit)]


class BlinkaAnalog(Sensor):
    """An analog input through adafruit-blinka (CPython on a host; board pins like "Ax_INPUT_WAVE_SINE")."""

    def __init__(self, spec):
        super().__init__(spec)
        import analogio
        import board

        if not hasattr(board, spec["pin"]):
            raise ValueError("blinka board %s has no pin %s" % (getattr(board, "board_id", "?"), spec["pin"]))
        self._input = analogio.AnalogIn(getattr(board, spec["pin"]))

    def _read(self):
        return [(self.name, self._scaled(self._input.value), self.unit)]


_KINDS = {
    "adc": AdcSensor,
    "digital": DigitalSensor,
    "dht11": DhtSensor,
    "dht22": DhtSensor,
    "internal_temp": InternalTemperature,
    "simulated": SimulatedSensor,
    "blinka_analog": BlinkaAnalog,
}


def make_sensor(spec):
    """The Sensor for one checked ``sensors`` entry (see xmpp_lite.config)."""
    return _KINDS[spec["kind"]](spec)


class Output:
    """A digital output pin that commands switch: ``set(True)``; ``active_low`` inverts the pin."""

    def __init__(self, spec):
        import machine

        self.name = spec["name"]
        self.active_low = bool(spec.get("active_low", False))
        self._pin = machine.Pin(spec["pin"], machine.Pin.OUT)
        self.state = False
        self.set(bool(spec.get("initial", False)))

    def set(self, on):
        self.state = bool(on)
        self._pin.value(1 if self.state != self.active_low else 0)
