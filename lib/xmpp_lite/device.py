"""A board's XMPP link and sensor node, built from its checked configuration (xmpp_lite.config).

firmware/main.py builds its device with these, and so does the host's fleet simulator for devices
that run in-process on CPython: one way from config.json to a running node.

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
