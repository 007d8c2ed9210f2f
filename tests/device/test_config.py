"""Tests of the board configuration (xmpp_lite.config): defaults, and a clear message for every mistake."""

from support import raises

from xmpp_lite.config import ConfigError, check, load


def good(**changes):
    config = {
        "network": {"kind": "wifi", "ssid": "home", "password": "secret"},
        "xmpp": {"jid": "sensor1@example.net", "password": "pw", "ca": "/ca.der"},
        "controller": "controller@example.net",
    }
    for key in changes:
        config[key] = changes[key]
    return config


def message(config):
    return str(raises(ConfigError, check, config))


def test_a_minimal_config_gets_the_defaults():
    config = check(good())
    assert config["xmpp"]["port"] == 5222 and config["xmpp"]["tls"] == "required"
    assert config["xmpp"]["resource"] == "board" and config["xmpp"]["server"] is None
    assert config["report"] == {"interval_s": 60, "message": "every", "format": "compact", "presence_interval_s": 3600}
    assert config["keepalive"]["ws_interval_s"] == 50 and config["keepalive"]["probe_interval_s"] == 240
    assert config["keepalive"]["nat_timeout_s"] == 60
    assert config["device"]["watchdog_s"] == 120 and config["device"]["deep_sleep_s"] == 0
    assert config["sensors"] == [] and config["outputs"] == [] and config["admins"] == []


def test_each_mistake_names_its_key():
    cases = [
        (good(xmpp={"password": "pw", "ca": "/ca.der"}), "xmpp.jid: missing"),
        (good(xmpp={"jid": "no-at-sign", "password": "pw", "ca": "/ca.der"}), "xmpp.jid: 'no-at-sign' is not a JID"),
        (good(xmpp={"jid": "a@b", "password": "pw", "ca": "/ca.der", "port": 70000}),
         "xmpp.port: 70000 is not a number from 1 to 65535"),
        (good(xmpp={"jid": "a@b", "password": "pw", "ca": "/ca.der", "tls": "maybe"}),
         "xmpp.tls: 'maybe' is not one of required, direct, none"),
        (good(xmpp={"jid": "a@b", "password": "pw"}), "xmpp.ca: missing"),
        (good(xmpp={"jid": "a@b", "password": "pw", "ca": "/ca.der", "colour": "red"}), "xmpp.colour: unknown key"),
        (good(network={"kind": "wifi"}), "network.ssid: missing"),
        (good(network={"kind": "modem"}), "network.apn: missing"),
        (good(network={"kind": "pigeon"}), "network.kind: 'pigeon' is not one of wifi, modem, none"),
        (good(controller=None), "controller: missing"),
        (good(admins=["ok@example.net", "bad"]), "admins[1]: 'bad' is not a JID"),
        (good(report={"interval_s": 0}), "report.interval_s: 0 is not a number from 1 to 86400"),
        (good(report={"message": "sometimes"}), "report.message: 'sometimes' is not one of every, change, off"),
        (good(report={"format": "xml"}), "report.format: 'xml' is not one of compact, full"),
        (good(sensors=[{"name": "t", "kind": "thermistor"}]), "sensors[0].kind: 'thermistor' is not one of"),
        (good(sensors=[{"name": "t", "kind": "adc"}]), "sensors[0].pin: None is not a GPIO number"),
        (good(sensors=[{"name": "t", "kind": "adc", "pin": 34}, {"name": "t", "kind": "digital", "pin": 0}]),
         "sensors[1].name: 't' is used twice"),
        (good(sensors=[{"name": "a b", "kind": "simulated"}]), "sensors[0].name: must be a word"),
        (good(sensors=[{"name": "b", "kind": "digital", "pin": 0, "pull": "sideways"}]), "sensors[0].pull"),
        (good(outputs=[{"name": "relay", "pin": 99}]), "outputs[0].pin: 99 is not a GPIO number"),
        (good(device={"watchdog_s": 30}), "device.watchdog_s: 30 s is too short"),
        (good(mqtt={}), "mqtt: unknown key"),
        (good(network="wifi"), "network: must be an object"),
        ([], "the configuration must be a JSON object"),
    ]
    for config, expected in cases:
        text = message(config)
        assert text.startswith(expected), (text, expected)


def test_booleans_are_not_numbers():
    assert message(good(report={"interval_s": True})).startswith("report.interval_s: True is not a number")


def test_plaintext_needs_no_ca():
    config = check(good(xmpp={"jid": "a@b", "password": "pw", "tls": "none", "insecure_plain": True}))
    assert config["xmpp"]["ca"] is None


def test_load_names_the_file():
    error = raises(ConfigError, load, "no-such-config.json")
    assert str(error).startswith("no-such-config.json: cannot be read")
    path = "test-config-tmp.json"
    for text, expected in (("{not json", "not valid JSON"), ('{"controller": "c@x"}', "xmpp.jid: missing")):
        with open(path, "w") as f:
            f.write(text)
        try:
            error = raises(ConfigError, load, path)
        finally:
            import os

            os.remove(path)
        assert str(error).startswith(path + ": ") and str(error).find(expected) > 0, str(error)
