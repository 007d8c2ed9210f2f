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

RAM: one class for every kind (each class costs a type object and a method table on a board), the
kind's device kept in ``_device``; ``read`` branches on the kind. Setting a sensor up is done once, at
boot, by xmpp_lite.device (``sensor_parts``), which the firmware unloads once the node is made.
"""

from xmpp_lite._compat import ticks_diff, ticks_ms


class Sensor:
    """One configured sensor (a checked ``sensors`` entry, see xmpp_lite.config); ``read()`` gives
    [(name, value or None, unit)]. ``failures`` counts the reads that raised OSError (a DHT that did
    not answer, ...)."""

    def __init__(self, spec):
        # The set-up by kind runs once, at boot: its code is xmpp_lite.device's, which the firmware unloads after.
        from xmpp_lite.device import sensor_parts

        (self.kind, self.name, self.unit, self.threshold, self.scale, self.offset, self.humidity_name,
         self._device) = sensor_parts(spec)
        self.failures = 0

    def read(self):
        kind = self.kind
        device = self._device
        value = None
        try:
            if kind == "adc":
                value = device.read_u16()
            elif kind == "digital":
                value = device.value()
            elif kind == "blinka_analog":
                value = device.value
            elif kind == "internal_temp":
                if hasattr(device, "mcu_temperature"):  # ESP32-S2/S3/C3 and newer MicroPython
                    value = round(device.mcu_temperature(), 1)
                else:  # the original ESP32 reports Fahrenheit
                    value = round((device.raw_temperature() - 32) / 1.8, 1)
            elif kind == "simulated":
                import math

                base, amplitude, period_ms, start = device
                phase = (ticks_diff(ticks_ms(), start) % period_ms) / period_ms
                value = round(base + amplitude * math.sin(2 * math.pi * phase), 1)
            else:
                device.measure()
                return [(self.name, device.temperature(), self.unit), (self.humidity_name, device.humidity(), "%")]
        except OSError:
            self.failures += 1
            value = None
            if kind[:3] == "dht":
                return [(self.name, None, self.unit), (self.humidity_name, None, "%")]
        if value is not None and kind in ("adc", "blinka_analog") and (self.scale != 1 or self.offset != 0):
            value = round(value * self.scale + self.offset, 2)
        return [(self.name, value, self.unit)]


make_sensor = Sensor  # the Sensor for one checked ``sensors`` entry


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
