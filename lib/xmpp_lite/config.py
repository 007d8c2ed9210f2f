"""The board's configuration file (``config.json``): read, checked, defaults filled in.

    config = load("config.json")          # raises ConfigError("xmpp.jid: missing")
    config["xmpp"]["port"]                 # 5222 unless set

Every problem is one ConfigError whose message names the key and what is
wrong with it, so that the board can say it on the REPL and by LED instead
of looping on a traceback. The schema (README, "Configuration") is the
``_SCHEMA`` table below: for each section, each key's default (or
_REQUIRED) and what its value must be.
"""

from xmpp_lite._compat import const
from xmpp_lite.stream import split_jid

CONFIG_FILE = "config.json"
_MAX_CONFIG_BYTES = const(8192)  # a config is a few hundred bytes; more is a wrong file
_MAX_SENSORS = const(8)
_MAX_OUTPUTS = const(8)
_MAX_ADMINS = const(8)
_MAX_SERVERS = const(8)  # entries of xmpp.servers (the client tries as many)
_MAX_GPIO = const(48)  # the highest GPIO number on any supported chip (ESP32-S3)

_SENSOR_KINDS = ("adc", "digital", "dht11", "dht22", "internal_temp", "simulated", "blinka_analog")


class ConfigError(ValueError):
    """The configuration is unusable; ``str()`` names the key."""


# What a value must be, in the schema: "s" a string, "b" true or false, "j" a JID, "l" the server
# list, (low, high) a number in that range, a tuple of choices one of them. Plain data, no function
# per key: the module is loaded once at boot, when the heap is emptiest, and unloaded after.
# section -> ((key, default (_REQUIRED: no default), what it must be), ...)
_REQUIRED = ...
_SCHEMA = (
    ("network", (
        ("kind", "wifi", ("wifi", "modem", "none")),
        ("ssid", None, "s"),
        ("password", "", "s"),
        ("apn", None, "s"),
        ("user", "", "s"),
        ("pin", None, "s"),
        ("connect_timeout_s", 30, (1, 600)),
    )),
    ("xmpp", (
        ("jid", _REQUIRED, "j"),
        ("password", _REQUIRED, "s"),
        ("server", None, "s"),
        ("servers", None, "l"),
        ("dns", None, "s"),
        ("port", 5222, (1, 65535)),
        ("tls", "required", ("required", "direct", "none")),
        ("ca", None, "s"),
        ("resource", "board", "s"),
        ("insecure_plain", False, "b"),
    )),
    ("report", (
        ("interval_s", 60, (1, 86400)),
        ("message", "every", ("every", "change", "off")),
        ("format", "compact", ("compact", "full")),  # xmpp_lite.node's formats
        ("presence_interval_s", 3600, (1, 86400 * 7)),
    )),
    ("keepalive", (
        ("ws_interval_s", 50, (0, 3600)),
        ("probe_interval_s", 240, (0, 3600)),
        ("probe_timeout_s", 20, (1, 600)),
        ("nat_timeout_s", 60, (1, 3600)),
        ("connect_timeout_s", 30, (1, 600)),
    )),
    ("device", (
        ("watchdog_s", 120, (0, 3600)),
        ("max_offline_s", 1800, (0, 86400 * 7)),
        ("ntp", True, "b"),
        ("deep_sleep_s", 0, (0, 86400)),
        ("driver", "poll", ("poll", "asyncio")),  # RobustClient's poll loop, or xmpp_lite.aio's tasks
    )),
)
_TOP_LEVEL = ("network", "xmpp", "report", "keepalive", "device", "controller", "admins", "sensors", "outputs")


def _wrong(value, rule):
    """None if ``value`` is what ``rule`` (see _SCHEMA) asks for, else the words for what it must be."""
    if rule == "s":
        return None if isinstance(value, str) else "a string"
    if rule == "b":
        return None if value is True or value is False else "true or false"
    if rule == "j":
        if isinstance(value, str):
            local, domain, _ = split_jid(value)
            if local and domain and value.find(" ") < 0:
                return None
        return "a JID like name@example.net"
    if rule == "l":
        if isinstance(value, list) and 0 < len(value) <= _MAX_SERVERS:
            for entry in value:
                if not isinstance(entry, str) or not entry or entry.find(" ") >= 0:
                    break
            else:
                return None
        return "a list of 1 to %d \"host\" or \"host:port\" strings" % _MAX_SERVERS
    if isinstance(rule[0], str) or rule[0] is None:
        return None if value in rule else "one of " + ", ".join([str(choice) for choice in rule])
    low, high = rule
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return None
    return "a number from %s to %s" % (low, high)


def _pin(where, spec):
    pin = spec.get("pin")
    if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= _MAX_GPIO:
        raise ConfigError("%s.pin: %r is not a GPIO number from 0 to %d" % (where, pin, _MAX_GPIO))


def _entries(config, section, max_count):
    """Check a list of named objects (sensors, outputs): shape, count, unique names, then each one."""
    specs = config.get(section, [])
    if not isinstance(specs, list) or len(specs) > max_count:
        raise ConfigError("%s: must be a list of at most %d entries" % (section, max_count))
    names = []
    for index in range(len(specs)):
        spec = specs[index]
        where = "%s[%d]" % (section, index)
        if not isinstance(spec, dict):
            raise ConfigError(where + ": must be an object")
        name = spec.get("name")
        if not isinstance(name, str) or not name or name.find(" ") >= 0 or name.find("=") >= 0:
            raise ConfigError(where + ".name: must be a word without spaces or '='")
        if name in names:
            raise ConfigError(where + ".name: %r is used twice" % name)
        names.append(name)
        if section == "outputs":
            _pin(where, spec)
            continue
        kind = spec.get("kind")
        if kind not in _SENSOR_KINDS:
            raise ConfigError("%s.kind: %r is not one of %s" % (where, kind, ", ".join(_SENSOR_KINDS)))
        if kind in ("adc", "digital", "dht11", "dht22"):
            _pin(where, spec)
        if kind == "digital" and spec.get("pull") not in ("up", "down", None):
            raise ConfigError(where + ".pull: must be \"up\", \"down\" or absent")
        if kind == "blinka_analog" and not isinstance(spec.get("pin"), str):
            raise ConfigError(where + ".pin: a blinka board pin name, e.g. \"Ax_INPUT_WAVE_SINE\"")
        for key in ("scale", "offset", "threshold"):
            if key in spec and _wrong(spec[key], (-1e9, 1e9)):
                raise ConfigError("%s.%s: %r is not a number" % (where, key, spec[key]))
        if "unit" in spec and not isinstance(spec["unit"], str):
            raise ConfigError(where + ".unit: must be a string")
    return specs


def check(config):
    """A complete configuration (defaults filled in) from a parsed one; raises ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a JSON object")
    for key in config:
        if key not in _TOP_LEVEL:
            raise ConfigError("%s: unknown key (known: %s)" % (key, ", ".join(_TOP_LEVEL)))
    out = {}
    for name, entries in _SCHEMA:
        given = config.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError("%s: must be an object" % name)
        for key in given:
            for entry in entries:
                if entry[0] == key:
                    break
            else:
                raise ConfigError("%s.%s: unknown key (known: %s)"
                                  % (name, key, ", ".join([entry[0] for entry in entries])))
        section = out[name] = {}
        for key, default, rule in entries:
            value = given.get(key)
            if value is None:
                if default is _REQUIRED:
                    raise ConfigError("%s.%s: missing (%s)" % (name, key, _wrong(None, rule)))
                value = default
            else:
                wrong = _wrong(value, rule)
                if wrong:
                    raise ConfigError("%s.%s: %r is not %s" % (name, key, value, wrong))
            section[key] = value
    controller = config.get("controller")
    wrong = _wrong(controller, "j")
    if wrong:
        raise ConfigError("controller: %s (%s)" % ("missing" if controller is None else repr(controller), wrong))
    out["controller"] = controller
    admins = config.get("admins", [])
    if not isinstance(admins, list) or len(admins) > _MAX_ADMINS:
        raise ConfigError("admins: must be a list of at most %d JIDs" % _MAX_ADMINS)
    for index in range(len(admins)):
        wrong = _wrong(admins[index], "j")
        if wrong:
            raise ConfigError("admins[%d]: %r is not %s" % (index, admins[index], wrong))
    out["admins"] = admins
    out["sensors"] = _entries(config, "sensors", _MAX_SENSORS)
    out["outputs"] = _entries(config, "outputs", _MAX_OUTPUTS)
    network = out["network"]
    if network["kind"] == "wifi" and not network["ssid"]:
        raise ConfigError("network.ssid: missing (the Wi-Fi network to join)")
    if network["kind"] == "modem" and not network["apn"]:
        raise ConfigError("network.apn: missing (the carrier's access point name, e.g. \"internet\")")
    xmpp = out["xmpp"]
    if xmpp["server"] and xmpp["servers"]:
        raise ConfigError("xmpp.servers: give xmpp.server or xmpp.servers, not both")
    if xmpp["tls"] != "none" and xmpp["ca"] is None and not xmpp["insecure_plain"]:
        raise ConfigError("xmpp.ca: missing (the CA certificate file that signs the server's certificate; "
                          "MicroPython has no system CA store)")
    device = out["device"]
    attempt_s = out["keepalive"]["connect_timeout_s"] + network["connect_timeout_s"]
    if device["watchdog_s"] and device["watchdog_s"] <= attempt_s:
        raise ConfigError("device.watchdog_s: %s s is too short: a connection attempt may take "
                          "network.connect_timeout_s + keepalive.connect_timeout_s = %s s"
                          % (device["watchdog_s"], attempt_s))
    return out


def load(path=CONFIG_FILE):
    """Read and check the configuration file; raises ConfigError (with the file name) for every problem."""
    import json

    try:
        with open(path) as f:
            text = f.read(_MAX_CONFIG_BYTES + 1)
    except OSError:
        raise ConfigError("%s: cannot be read (is it on the board? see the README, \"Configuration\")" % path)
    if len(text) > _MAX_CONFIG_BYTES:
        raise ConfigError("%s: larger than %d bytes" % (path, _MAX_CONFIG_BYTES))
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError("%s: not valid JSON (%s)" % (path, error))
    try:
        return check(config)
    except ConfigError as error:
        raise ConfigError("%s: %s" % (path, error))
