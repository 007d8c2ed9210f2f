"""The board's configuration file (``config.json``): read, checked, defaults filled in.

    config = load("config.json")          # raises ConfigError("xmpp.jid: missing")
    config["xmpp"]["port"]                 # 5222 unless set

Every problem is one ConfigError whose message names the key and what is
wrong with it, so that the board can say it on the REPL and by LED instead
of looping on a traceback. The schema (README, "Configuration") is the
``_SCHEMA`` table below: for each section, each key's type, default (or
_REQUIRED) and check.
"""

from xmpp_lite.stream import split_jid

CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 8192  # a config is a few hundred bytes; more is a wrong file
MAX_SENSORS = 8
MAX_OUTPUTS = 8
MAX_ADMINS = 8
MAX_SERVERS = 8  # entries of xmpp.servers (the client tries as many)
MAX_GPIO = 48  # the highest GPIO number on any supported chip (ESP32-S3)

NETWORK_KINDS = ("wifi", "modem", "none")
TLS_MODES = ("required", "direct", "none")
REPORT_MESSAGES = ("every", "change", "off")
REPORT_FORMATS = ("compact", "full")  # xmpp_lite.node.REPORT_FORMATS (not imported: config loads alone)
SENSOR_KINDS = ("adc", "digital", "dht11", "dht22", "internal_temp", "simulated", "blinka_analog")
PULLS = ("up", "down", None)
DRIVERS = ("poll", "asyncio")  # device.driver: RobustClient's poll loop, or xmpp_lite.aio's tasks


class ConfigError(ValueError):
    """The configuration is unusable; ``str()`` names the key."""


_REQUIRED = object()


class _Check:
    """A test of one value and the words for what it must be (MicroPython functions take no attributes)."""

    def __init__(self, test, text):
        self.test = test
        self.text = text

    def __call__(self, value):
        return self.test(value)


def _is_jid(value):
    if not isinstance(value, str):
        return False
    local, domain, _ = split_jid(value)
    return bool(local) and bool(domain) and value.find(" ") < 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(low, high):
    return _Check(lambda value: _is_number(value) and low <= value <= high, "a number from %s to %s" % (low, high))


def _one_of(choices):
    return _Check(lambda value: value in choices, "one of " + ", ".join(str(choice) for choice in choices))


_text = _Check(lambda value: isinstance(value, str), "a string")
_jid = _Check(_is_jid, "a JID like name@example.net")
_servers = _Check(lambda value: isinstance(value, list) and 0 < len(value) <= MAX_SERVERS
                  and all(isinstance(entry, str) and entry and entry.find(" ") < 0 for entry in value),
                  "a list of 1 to %d \"host\" or \"host:port\" strings" % MAX_SERVERS)
_boolean = _Check(lambda value: value is True or value is False, "true or false")

# section -> ((key, default, check), ...)
_SCHEMA = {
    "network": (
        ("kind", "wifi", _one_of(NETWORK_KINDS)),
        ("ssid", None, _text),
        ("password", "", _text),
        ("apn", None, _text),
        ("user", "", _text),
        ("pin", None, _text),
        ("connect_timeout_s", 30, _number(1, 600)),
    ),
    "xmpp": (
        ("jid", _REQUIRED, _jid),
        ("password", _REQUIRED, _text),
        ("server", None, _text),
        ("servers", None, _servers),
        ("dns", None, _text),
        ("port", 5222, _number(1, 65535)),
        ("tls", "required", _one_of(TLS_MODES)),
        ("ca", None, _text),
        ("resource", "board", _text),
        ("insecure_plain", False, _boolean),
    ),
    "report": (
        ("interval_s", 60, _number(1, 86400)),
        ("message", "every", _one_of(REPORT_MESSAGES)),
        ("format", "compact", _one_of(REPORT_FORMATS)),
        ("presence_interval_s", 3600, _number(1, 86400 * 7)),
    ),
    "keepalive": (
        ("ws_interval_s", 50, _number(0, 3600)),
        ("probe_interval_s", 240, _number(0, 3600)),
        ("probe_timeout_s", 20, _number(1, 600)),
        ("nat_timeout_s", 60, _number(1, 3600)),
        ("connect_timeout_s", 30, _number(1, 600)),
    ),
    "device": (
        ("watchdog_s", 120, _number(0, 3600)),
        ("max_offline_s", 1800, _number(0, 86400 * 7)),
        ("ntp", True, _boolean),
        ("deep_sleep_s", 0, _number(0, 86400)),
        ("driver", "poll", _one_of(DRIVERS)),
    ),
}
_TOP_LEVEL = ("network", "xmpp", "report", "keepalive", "device", "controller", "admins", "sensors", "outputs")


def _section(config, name):
    given = config.get(name, {})
    if not isinstance(given, dict):
        raise ConfigError("%s: must be an object" % name)
    known = [entry[0] for entry in _SCHEMA[name]]
    for key in given:
        if key not in known:
            raise ConfigError("%s.%s: unknown key (known: %s)" % (name, key, ", ".join(known)))
    out = {}
    for key, default, check in _SCHEMA[name]:
        if key not in given or given[key] is None:
            if default is _REQUIRED:
                raise ConfigError("%s.%s: missing (%s)" % (name, key, check.text))
            out[key] = default
        elif not check(given[key]):
            raise ConfigError("%s.%s: %r is not %s" % (name, key, given[key], check.text))
        else:
            out[key] = given[key]
    return out


def _pin(where, spec, key="pin"):
    pin = spec.get(key)
    if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= MAX_GPIO:
        raise ConfigError("%s.%s: %r is not a GPIO number from 0 to %d" % (where, key, pin, MAX_GPIO))
    return pin


def _entries(specs, section, max_count, check_entry):
    """Check a list of named objects (sensors, outputs): shape, count, unique names, then each one."""
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
        check_entry(where, spec)
    return specs


def _sensor(where, spec):
    kind = spec.get("kind")
    if kind not in SENSOR_KINDS:
        raise ConfigError("%s.kind: %r is not one of %s" % (where, kind, ", ".join(SENSOR_KINDS)))
    if kind in ("adc", "digital", "dht11", "dht22"):
        _pin(where, spec)
    if kind == "digital" and spec.get("pull") not in PULLS:
        raise ConfigError(where + ".pull: must be \"up\", \"down\" or absent")
    if kind == "blinka_analog" and not isinstance(spec.get("pin"), str):
        raise ConfigError(where + ".pin: a blinka board pin name, e.g. \"Ax_INPUT_WAVE_SINE\"")
    for key in ("scale", "offset", "threshold"):
        if key in spec and not _number(-1e9, 1e9)(spec[key]):
            raise ConfigError("%s.%s: %r is not a number" % (where, key, spec[key]))
    if "unit" in spec and not isinstance(spec["unit"], str):
        raise ConfigError(where + ".unit: must be a string")


def check(config):
    """A complete configuration (defaults filled in) from a parsed one; raises ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a JSON object")
    for key in config:
        if key not in _TOP_LEVEL:
            raise ConfigError("%s: unknown key (known: %s)" % (key, ", ".join(_TOP_LEVEL)))
    out = {}
    for name in _SCHEMA:
        out[name] = _section(config, name)
    controller = config.get("controller")
    if not _jid(controller):
        raise ConfigError("controller: %s (%s)" % ("missing" if controller is None else repr(controller),
                                                  _jid.text))
    out["controller"] = controller
    admins = config.get("admins", [])
    if not isinstance(admins, list) or len(admins) > MAX_ADMINS:
        raise ConfigError("admins: must be a list of at most %d JIDs" % MAX_ADMINS)
    for index in range(len(admins)):
        if not _jid(admins[index]):
            raise ConfigError("admins[%d]: %r is not %s" % (index, admins[index], _jid.text))
    out["admins"] = admins
    out["sensors"] = _entries(config.get("sensors", []), "sensors", MAX_SENSORS, _sensor)
    out["outputs"] = _entries(config.get("outputs", []), "outputs", MAX_OUTPUTS, _pin)
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
    keepalive = out["keepalive"]
    if device["watchdog_s"] and device["watchdog_s"] <= keepalive["connect_timeout_s"] + network["connect_timeout_s"]:
        raise ConfigError("device.watchdog_s: %s s is too short: a connection attempt may take "
                          "network.connect_timeout_s + keepalive.connect_timeout_s = %s s"
                          % (device["watchdog_s"], keepalive["connect_timeout_s"] + network["connect_timeout_s"]))
    return out


def load(path=CONFIG_FILE):
    """Read and check the configuration file; raises ConfigError (with the file name) for every problem."""
    import json

    try:
        with open(path) as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        raise ConfigError("%s: cannot be read (is it on the board? see the README, \"Configuration\")" % path)
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("%s: larger than %d bytes" % (path, MAX_CONFIG_BYTES))
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError("%s: not valid JSON (%s)" % (path, error))
    try:
        return check(config)
    except ConfigError as error:
        raise ConfigError("%s: %s" % (path, error))
