"""Board profiles: one JSON file per board in boards/, checked against what its chip can do.

    board = load_board("esp32-devkitc")      # or a path to any profile file
    board["flash_offset"], board["firmware"].format(version="1.29.0")
    list_boards()                            # ["esp32-c3-devkitm-1", "esp32-devkitc", ...]
    validate_board(data)                     # [] or ["flash_offset: ...", ...]

A profile that fails its checks never loads: load_board raises BoardError, one
line that names the file and the first key at fault.
"""

import json
import os
import re

from host_tools.resources import boards_dir

BOARDS_DIR = boards_dir()  # boards/ of the repository, shipped as package data


class Chip:
    """What a profile is checked against: one entry per chip MicroPython is flashed to."""

    def __init__(self, flash_offset, firmware_prefix, gpios, input_only, adc1, uarts):
        self.flash_offset = flash_offset        # where the MicroPython image goes
        self.firmware_prefix = firmware_prefix  # MicroPython's download name for this chip
        self.gpios = gpios                      # GPIO numbers that exist
        self.input_only = input_only            # GPIOs without an output driver
        self.adc1 = adc1                        # ADC1 channels (ADC2 is taken by Wi-Fi)
        self.uarts = uarts                      # UARTs free for peripherals (UART0 is the REPL)


def _gpios(last, missing=()):
    return frozenset(pin for pin in range(last + 1) if pin not in missing)


CHIPS = {
    "esp32": Chip("0x1000", "ESP32_GENERIC-", _gpios(39, missing=(20, 24, 28, 29, 30, 31)),
                  input_only=frozenset(range(34, 40)), adc1=frozenset(range(32, 40)), uarts=(1, 2)),
    "esp32s3": Chip("0x0", "ESP32_GENERIC_S3-", _gpios(48, missing=(22, 23, 24, 25)),
                    input_only=frozenset(), adc1=frozenset(range(1, 11)), uarts=(1, 2)),
    "esp32c3": Chip("0x0", "ESP32_GENERIC_C3-", _gpios(21),
                    input_only=frozenset(), adc1=frozenset(range(0, 5)), uarts=(1,)),
}
# The documented MicroPython offsets, kept in one table for the check and for readers.
CHIP_FLASH_OFFSETS = {name: chip.flash_offset for name, chip in CHIPS.items()}

FLASH_SIZES = ("2MB", "4MB", "8MB", "16MB", "32MB")
LED_KINDS = ("gpio", "neopixel")
PULLS = ("up", "down")
MODEM_KINDS = ("sim800",)
MIN_BAUD, MAX_BAUD = 9600, 2000000

# Sensor kinds a board profile may list, with the keys each one requires and allows.
# The optional keys are those the device configuration accepts (lib/xmpp_lite/config.py).
_SENSOR_OPTIONAL = ("unit", "scale", "offset", "threshold")
SENSOR_KEYS = {
    "internal_temp": ((), _SENSOR_OPTIONAL),
    "adc": (("pin",), _SENSOR_OPTIONAL),
    "digital": (("pin",), ("pull",) + _SENSOR_OPTIONAL),
    "dht11": (("pin",), ("humidity_name",) + _SENSOR_OPTIONAL),
    "dht22": (("pin",), ("humidity_name",) + _SENSOR_OPTIONAL),
}

# key: (types accepted, may it be null)
_TOP_LEVEL = {
    "id": (str, False),
    "name": (str, False),
    "chip": (str, False),
    "flash_offset": (str, False),
    "flash_size": (str, False),
    "firmware": (str, False),
    "baud": (int, False),
    "led": (dict, True),
    "sensors": (list, False),
    "outputs": (list, False),
    "modem": (dict, True),
    "notes": (str, False),
}
_LED_KEYS = ("pin", "active_low", "kind")
_OUTPUT_KEYS, _OUTPUT_OPTIONAL = ("name", "pin"), ("active_low", "initial")
_MODEM_PINS = ("tx", "rx", "power_pin", "pwrkey_pin", "reset_pin")
_MODEM_NULLABLE = ("power_pin", "reset_pin")  # a modem may lack these; tx, rx and pwrkey it needs
_MODEM_KEYS = ("kind", "uart", "baud") + _MODEM_PINS
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class BoardError(Exception):
    """A board profile that cannot be used; the message is one line naming the file and the key."""

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.errors = list(errors)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _type_ok(value, types):
    return _is_int(value) if types is int else isinstance(value, types)


def _keys(errors, prefix, given, required, optional=()):
    """Check that dict ``given`` has every required key and no unknown one; ``prefix``: "led." etc."""
    for key in required:
        if key not in given:
            errors.append("%s%s: missing" % (prefix, key))
    for key in given:
        if key not in required and key not in optional:
            errors.append("%s%s: unknown key (known: %s)" % (prefix, key, ", ".join(required + optional)))


class _Pins:
    """Every pin a board uses, to check each against the chip and to catch one used twice."""

    def __init__(self, errors, chip):
        self.errors = errors
        self.chip = chip
        self.used = {}  # pin -> where

    def check(self, where, pin, output=False, adc=False, shared_with=None):
        """Check one pin; ``shared_with``: the one place that may use the same pin."""
        if not _is_int(pin):
            self.errors.append("%s: %r is not a GPIO number" % (where, pin))
            return
        if self.chip is None:
            return  # unknown chip, already reported: the ranges are unknown too
        if pin not in self.chip.gpios:
            self.errors.append("%s: GPIO%d does not exist on this chip (GPIO %d..%d)"
                               % (where, pin, min(self.chip.gpios), max(self.chip.gpios)))
            return
        if output and pin in self.chip.input_only:
            self.errors.append("%s: GPIO%d is input only, it cannot drive an output" % (where, pin))
        if adc and pin not in self.chip.adc1:
            self.errors.append("%s: GPIO%d is not an ADC1 pin (ADC1: GPIO%s)"
                               % (where, pin, ", ".join(str(p) for p in sorted(self.chip.adc1))))
        before = self.used.get(pin)
        if before is not None and before != shared_with:
            self.errors.append("%s: GPIO%d is already used by %s" % (where, pin, before))
        elif before is None:
            self.used[pin] = where


def validate_board(data, expected_id=None):
    """Everything wrong with a parsed profile, as "key: problem" strings; [] when it is fine.

    ``expected_id``: the id the file name gives, which the profile's ``id`` must match.
    """
    if not isinstance(data, dict):
        return ["the profile must be a JSON object"]
    errors = []
    _keys(errors, "", data, tuple(_TOP_LEVEL))
    for key, (types, nullable) in _TOP_LEVEL.items():
        if key in data and not (data[key] is None and nullable) and not _type_ok(data[key], types):
            errors.append("%s: %r is not %s%s" % (key, data[key], _TYPE_NAMES[types], " or null" if nullable else ""))

    def field(key, types):
        value = data.get(key)
        return value if _type_ok(value, types) else None

    board_id = field("id", str)
    if board_id is not None:
        if not _ID.match(board_id):
            errors.append("id: %r must be lowercase letters, digits and single hyphens" % board_id)
        if expected_id is not None and board_id != expected_id:
            errors.append("id: %r does not match the file name (%s.json)" % (board_id, expected_id))
    if field("name", str) == "":
        errors.append("name: must not be empty")

    chip_name = field("chip", str)
    chip = CHIPS.get(chip_name) if chip_name is not None else None
    if chip_name is not None and chip is None:
        errors.append("chip: %r is not a known chip (%s)" % (chip_name, ", ".join(sorted(CHIPS))))
    offset = field("flash_offset", str)
    if offset is not None and chip is not None and offset != chip.flash_offset:
        errors.append("flash_offset: %r is not the %s offset %r" % (offset, chip_name, chip.flash_offset))
    size = field("flash_size", str)
    if size is not None and size not in FLASH_SIZES:
        errors.append("flash_size: %r is not one of %s" % (size, ", ".join(FLASH_SIZES)))
    firmware = field("firmware", str)
    if firmware is not None:
        if "{version}" not in firmware or not firmware.endswith(".bin"):
            errors.append("firmware: %r must name a .bin image with {version} in it" % firmware)
        elif chip is not None and not firmware.startswith(chip.firmware_prefix):
            errors.append("firmware: %r is not a MicroPython image for %s (%s...)"
                          % (firmware, chip_name, chip.firmware_prefix))
    baud = field("baud", int)
    if baud is not None and not MIN_BAUD <= baud <= MAX_BAUD:
        errors.append("baud: %d is not between %d and %d" % (baud, MIN_BAUD, MAX_BAUD))

    pins = _Pins(errors, chip)
    led = field("led", dict)
    if led is not None:
        _keys(errors, "led.", led, _LED_KEYS)
        if "pin" in led:
            pins.check("led.pin", led["pin"], output=True)
        if "active_low" in led and not isinstance(led["active_low"], bool):
            errors.append("led.active_low: %r is not true or false" % (led["active_low"],))
        if "kind" in led and led["kind"] not in LED_KINDS:
            errors.append("led.kind: %r is not one of %s" % (led["kind"], ", ".join(LED_KINDS)))
    _check_sensors(errors, pins, field("sensors", list))
    _check_outputs(errors, pins, field("outputs", list), led)
    _check_modem(errors, pins, field("modem", dict), chip)
    return errors


def _named_entries(errors, section, entries):
    """The dict entries of a sensors/outputs list with a valid, unique name, as (where, entry)."""
    names = set()
    for index, entry in enumerate(entries):
        where = "%s[%d]" % (section, index)
        if not isinstance(entry, dict):
            errors.append("%s: must be an object" % where)
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append("%s.name: %r must be a word of letters, digits or _" % (where, name))
        elif name in names:
            errors.append("%s.name: %r is used twice in %s" % (where, name, section))
        else:
            names.add(name)
        yield where, entry


def _check_sensors(errors, pins, sensors):
    if sensors is None:
        return
    for where, sensor in _named_entries(errors, "sensors", sensors):
        kind = sensor.get("kind")
        if kind not in SENSOR_KEYS:
            errors.append("%s.kind: %r is not one of %s" % (where, kind, ", ".join(SENSOR_KEYS)))
            continue
        required, optional = SENSOR_KEYS[kind]
        _keys(errors, where + ".", sensor, ("name", "kind") + required, optional)
        if "pin" in sensor and "pin" in required:
            pins.check(where + ".pin", sensor["pin"], adc=kind == "adc")
        if "pull" in sensor and sensor["pull"] not in PULLS:
            errors.append("%s.pull: %r is not one of %s" % (where, sensor["pull"], ", ".join(PULLS)))


def _check_outputs(errors, pins, outputs, led):
    if outputs is None:
        return
    for where, output in _named_entries(errors, "outputs", outputs):
        _keys(errors, where + ".", output, _OUTPUT_KEYS, _OUTPUT_OPTIONAL)
        for key in _OUTPUT_OPTIONAL:
            if key in output and not isinstance(output[key], bool):
                errors.append("%s.%s: %r is not true or false" % (where, key, output[key]))
        if "pin" not in output:
            continue
        # The board's own LED, when it is a plain GPIO, may be listed as an output to switch.
        drives_led = (led is not None and led.get("kind") == "gpio" and led.get("pin") == output["pin"]
                      and _is_int(output["pin"]))
        if drives_led and output.get("active_low", False) != led.get("active_low"):
            errors.append("%s.active_low: must match led.active_low (%r) for the board's LED"
                          % (where, led.get("active_low")))
        pins.check(where + ".pin", output["pin"], output=True, shared_with="led.pin" if drives_led else None)


def _check_modem(errors, pins, modem, chip):
    if modem is None:
        return
    _keys(errors, "modem.", modem, _MODEM_KEYS)
    if "kind" in modem and modem["kind"] not in MODEM_KINDS:
        errors.append("modem.kind: %r is not one of %s" % (modem["kind"], ", ".join(MODEM_KINDS)))
    if "uart" in modem and not _is_int(modem["uart"]):
        errors.append("modem.uart: %r is not a UART number" % (modem["uart"],))
    elif "uart" in modem and chip is not None and modem["uart"] not in chip.uarts:
        errors.append("modem.uart: %r is not a free UART on this chip (%s)"
                      % (modem["uart"], ", ".join(str(uart) for uart in chip.uarts)))
    if "baud" in modem and not (_is_int(modem["baud"]) and MIN_BAUD <= modem["baud"] <= MAX_BAUD):
        errors.append("modem.baud: %r is not an integer between %d and %d" % (modem["baud"], MIN_BAUD, MAX_BAUD))
    for key in _MODEM_PINS:
        if key not in modem or (modem[key] is None and key in _MODEM_NULLABLE):
            continue
        pins.check("modem." + key, modem[key], output=key != "rx")


def _reject_duplicate_keys(pairs):
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError("key %r is given twice" % key)
        data[key] = value
    return data


def board_path(id_or_path, boards_dir=BOARDS_DIR):
    """The file of a board: a path as given, or an id looked up in ``boards_dir``."""
    if id_or_path.endswith(".json") or os.sep in id_or_path or "/" in id_or_path:
        return id_or_path
    return os.path.join(boards_dir, id_or_path + ".json")


def load_board(id_or_path, boards_dir=BOARDS_DIR):
    """The checked profile of a board, by id (``boards_dir``/ID.json) or by path; raises BoardError."""
    path = board_path(id_or_path, boards_dir)
    if not os.path.isfile(path):
        if path != id_or_path:  # an id
            raise BoardError("no board %r in %s (known: %s)"
                             % (id_or_path, boards_dir, ", ".join(list_boards(boards_dir)) or "none"))
        raise BoardError("%s: no such file" % path)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise BoardError("%s: not valid JSON: line %d column %d: %s" % (path, error.lineno, error.colno, error.msg))
    except (ValueError, UnicodeDecodeError) as error:
        raise BoardError("%s: not valid JSON: %s" % (path, error))
    except OSError as error:
        raise BoardError("%s: cannot be read: %s" % (path, error.strerror or error))
    errors = validate_board(data, expected_id=os.path.splitext(os.path.basename(path))[0])
    if errors:
        more = " (and %d more)" % (len(errors) - 1) if len(errors) > 1 else ""
        raise BoardError("%s: %s%s" % (path, errors[0], more), errors)
    return data


def list_boards(boards_dir=BOARDS_DIR):
    """The ids of the board profiles in ``boards_dir``, sorted."""
    try:
        names = os.listdir(boards_dir)
    except FileNotFoundError:
        return []
    return sorted(name[:-len(".json")] for name in names if name.endswith(".json"))
