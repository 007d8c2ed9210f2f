"""A board's XMPP link and sensor node, built from its checked configuration (xmpp_lite.config).

firmware/main.py builds its device with these, and so does the host's fleet simulator for devices
that run in-process on CPython: one way from config.json to a running node. The firmware unloads
this module once the link and the node are made: what is here runs once, at boot (the sensors'
set-up by kind too, ``sensor_parts``).

    config = xmpp_lite.config.load("config.json")
    link = make_link(config)                       # a RobustClient (or AsyncClient), not connected yet
    node = make_node(config, board, link)          # sensors and outputs from config, else board.json
    link.connect(); node.start(ticks_ms())
"""


def make_link(config, ca=None):
    """The link for ``config``: a RobustClient, or with ``device.driver`` "asyncio" an xmpp_lite.aio.AsyncClient.

    ``ca`` (bytes) stands in for the file ``xmpp.ca`` names.
    """
    from xmpp_lite.backoff import Backoff
    from xmpp_lite.keepalive import Heartbeat

    if config["device"]["driver"] == "asyncio":
        from xmpp_lite.aio import AsyncClient as Link  # the same options, connect() and close() awaited
    else:
        from xmpp_lite.robust import RobustClient as Link

    xmpp = config["xmpp"]
    keepalive = config["keepalive"]
    options = {"port": xmpp["port"], "tls": xmpp["tls"], "resource": xmpp["resource"],
               "insecure_plain": xmpp["insecure_plain"], "sasl_cache": {}}
    if xmpp["server"]:
        options["host"] = xmpp["server"]
    if xmpp["servers"]:
        options["servers"] = xmpp["servers"]
    if xmpp["dns"]:
        options["nameserver"] = xmpp["dns"]
    if ca is not None or xmpp["ca"]:
        options["ca"] = ca if ca is not None else xmpp["ca"]
    heartbeat = Heartbeat(int(keepalive["ws_interval_s"] * 1000), int(keepalive["probe_interval_s"] * 1000),
                          int(keepalive["probe_timeout_s"] * 1000),
                          nat_timeout_ms=int(keepalive["nat_timeout_s"] * 1000))
    return Link(xmpp["jid"], xmpp["password"], heartbeat=heartbeat, backoff=Backoff(),
                connect_timeout_ms=int(keepalive["connect_timeout_s"] * 1000), **options)


def make_node(config, board, link, on_reboot=None, status_extra=None):
    """The Node for ``config``: its sensors and outputs, else those of the board profile ``board``."""
    from xmpp_lite.node import Node
    from xmpp_lite.sensors import Output, make_sensor

    sensors = [make_sensor(spec) for spec in (config["sensors"] or board.get("sensors", []))]
    outputs = [Output(spec) for spec in (config["outputs"] or board.get("outputs", []))]
    report = config["report"]
    return Node(link, sensors, outputs, controller=config["controller"], admins=config["admins"],
                interval_ms=int(report["interval_s"] * 1000), report_message=report["message"],
                on_reboot=on_reboot, status_extra=status_extra, report_format=report["format"],
                presence_interval_ms=int(report["presence_interval_s"] * 1000))


def sensor_parts(spec):
    """(kind, name, unit, threshold, scale, offset, humidity_name, device) of a new xmpp_lite.sensors.Sensor, from
    its checked ``sensors`` entry: the device is what the kind reads (a machine.ADC, a Pin, a DHT, ...)."""
    kind = spec["kind"]
    pin = spec.get("pin")
    if kind == "simulated":  # (base, amplitude, period in ms, start)
        from xmpp_lite._compat import ticks_ms

        device = (spec.get("base", 21.0), spec.get("amplitude", 2.0), int(spec.get("period_s", 600) * 1000), ticks_ms())
    elif kind == "internal_temp":
        import esp32 as device
    elif kind == "blinka_analog":
        import analogio
        import board

        if not hasattr(board, pin):
            raise ValueError("blinka board %s has no pin %s" % (getattr(board, "board_id", "?"), pin))
        device = analogio.AnalogIn(getattr(board, pin))
    else:
        from machine import ADC, Pin

        if kind == "digital":
            pull = spec.get("pull")
            if pull is None:
                device = Pin(pin, Pin.IN)
            else:
                device = Pin(pin, Pin.IN, Pin.PULL_UP if pull == "up" else Pin.PULL_DOWN)
        elif kind == "adc":
            adc = ADC(Pin(pin))
            if hasattr(adc, "atten") and hasattr(ADC, "ATTN_11DB"):
                adc.atten(ADC.ATTN_11DB)  # the full 0-3.3 V range on ESP32
            device = adc
        else:
            import dht

            device = (dht.DHT22 if kind == "dht22" else dht.DHT11)(Pin(pin))
    # Temperatures default to Celsius; raw values (ADC counts, pin levels) have no unit.
    return (kind, spec["name"], spec.get("unit", "" if kind in ("adc", "digital", "blinka_analog") else "C"),
            spec.get("threshold", 0), spec.get("scale", 1), spec.get("offset", 0), spec.get("humidity_name", "hum"),
            device)
