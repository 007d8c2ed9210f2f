"""`xmpp-lite server start|stop|status`: a local XMPP server that outlives the command.

The server is one of host_tools.engines (``--engine prosody``, the default, or ``ejabberd``, which can
run ``--nodes N`` nodes in one cluster) in a state directory (``--state``, else ``$XMPP_LITE_STATE``,
else ``.state/server`` under the current directory). It runs in sessions of its own, so ``start`` can
exit and leave it running; pids and ports are in ``server.json`` there, which is how ``stop``,
``status``, ``provision``, ``simulate`` and ``monitor`` find it again.

Settings are remembered in the state: a later ``start`` without options brings the same server
back, on the same ports with the same CA, so that boards provisioned for it still connect. An
option given to ``start`` changes that setting (a new ``--domain`` also means a new test CA; another
engine or number of nodes needs a state directory of its own).

Exit status: 0 on success; ``start`` on a running server says so and exits 0 (it is running, as
asked) unless an option asks for something the running server is not, which is an error (1).
``status`` exits 0 when running (every node), 3 when stopped, and 1 when only some nodes of a
cluster run. ``stop`` on a stopped server exits 0.
"""

import argparse
import ipaddress
import os
import shutil

from host_tools.cli import CommandError, port_number
from host_tools.engines import DEFAULT_ENGINE, ENGINES, engine_class, recorded_engine
from host_tools.engines.base import LOOPBACK, STATE_FILE, ServerError

DESCRIPTION = "Start, stop or query a local XMPP server for development: Prosody or ejabberd (state in .state/server)."

ACTIONS = ("start", "stop", "status")
STATE_ENV = "XMPP_LITE_STATE"
DEFAULT_STATE_DIR = os.path.join(".state", "server")
DEFAULT_DOMAIN = "localhost"
EXIT_STOPPED = 3  # `status` of a server that is not running (LSB init scripts use 3 too)
EXIT_PARTLY = 1  # `status` of a cluster where some nodes run and some do not
MAX_NODES = 8
INSTALL_HINT = "install Prosody: apt-get install prosody prosody-modules"
INSTALL_HINTS = {
    "prosody": INSTALL_HINT,
    "ejabberd": "install ejabberd: apt-get install ejabberd",
}
TOOLS = {"prosody": ("prosody", "prosodyctl"), "ejabberd": ("ejabberdctl", "epmd")}
NAMES = {"prosody": "Prosody", "ejabberd": "ejabberd"}
START_OPTIONS = ("port", "domain", "tls", "registration", "sasl2", "nodes", "listen")


def default_state_dir():
    return os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR


def state_dir_of(args):
    return args.state or default_state_dir()


def _engine(value):
    if value not in ENGINES:
        raise argparse.ArgumentTypeError("unknown engine %r (known engines: %s)" % (value, ", ".join(ENGINES)))
    return value


def _nodes(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_NODES:
        raise argparse.ArgumentTypeError("%r is not a number of nodes from 1 to %d" % (value, MAX_NODES))
    return number


def _address(value):
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an IPv4 address of this host" % value) from None


def engine_argument(parser, help_suffix=""):
    parser.add_argument("--engine", type=_engine,
                        help="the server software: %s (default: the one in the state directory, else %s)%s"
                             % (" or ".join(ENGINES), DEFAULT_ENGINE, help_suffix))


def add_arguments(parser):
    parser.add_argument("action", choices=ACTIONS,
                        help="start: in the background (it keeps running); stop: stop it (nothing to do "
                             "if stopped); status: running (exit 0) or stopped (exit 3)")
    engine_argument(parser)
    parser.add_argument("--state", metavar="DIR",
                        help="state directory: config, certificates, accounts, log and server.json "
                             "(default: $%s, else %s)" % (STATE_ENV, DEFAULT_STATE_DIR))
    parser.add_argument("--nodes", type=_nodes, metavar="N",
                        help="ejabberd: run N nodes (1 to %d) joined in one cluster, each on ports of its own "
                             "(start; default: as last time, else 1)" % MAX_NODES)
    parser.add_argument("--listen", type=_address, metavar="ADDR",
                        help="the address to listen on, e.g. this host's LAN address for real boards "
                             "(start; default: as last time, else %s); the certificate names it and this "
                             "host's name" % LOOPBACK)
    parser.add_argument("--port", type=port_number, metavar="N",
                        help="c2s port (of node 1) (start; default: the port used last time, else a free one)")
    parser.add_argument("--domain", metavar="D",
                        help="XMPP domain, the part after @ in JIDs (start; default: the one used last "
                             "time, else %s)" % DEFAULT_DOMAIN)
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="TLS with the generated test CA, STARTTLS required, plus a direct TLS port "
                             "(start; default: as last time, else on); --no-tls: plaintext only")
    parser.add_argument("--registration", action=argparse.BooleanOptionalAction, default=None,
                        help="allow in-band registration, XEP-0077, from loopback (start; default: as last "
                             "time, else allowed); --no-registration: accounts only by the admin command")
    parser.add_argument("--sasl2", action=argparse.BooleanOptionalAction, default=None,
                        help="Prosody: also offer XEP-0388 SASL2 with XEP-0386 Bind2, a login with a round "
                             "trip fewer (start; needs Debian's prosody-modules; default: as last time, else "
                             "on); --no-sasl2: the classic SASL of RFC 6120 only")


def run(args):
    state_dir = state_dir_of(args)
    if args.action != "start":
        given = [name for name in START_OPTIONS if getattr(args, name) is not None]
        if given:
            raise CommandError("server %s: --%s only applies to start" % (args.action, given[0]))
    recorded = load(state_dir)
    if args.engine is not None and recorded is not None and recorded.engine != args.engine:
        if args.action != "start" or recorded.is_running():
            raise CommandError("server %s --engine %s: the server in %s is %s" % (
                args.action, args.engine, os.path.abspath(state_dir), recorded.engine))
        raise CommandError("server start --engine %s: %s holds a %s server; give another --state" % (
            args.engine, os.path.abspath(state_dir), recorded.engine))
    if args.action == "start":
        start(state_dir, args, recorded)
    elif args.action == "stop":
        stop(state_dir, recorded)
    else:
        status(state_dir, recorded)


def load(state_dir):
    """The server recorded in ``state_dir`` (any engine), or None if there is none."""
    if not os.path.exists(os.path.join(state_dir, STATE_FILE)):
        return None
    try:
        return engine_class(recorded_engine(state_dir)).load(state_dir)
    except (ServerError, KeyError, TypeError, ValueError) as error:
        raise CommandError("%s: unreadable server state: %s" % (os.path.join(state_dir, STATE_FILE), error))


def describe(server):
    """What a user needs to connect: lines of text."""
    lines = ["  engine           %s" % NAMES[server.engine],
             "  domain           %s" % server.domain]
    nodes = server.nodes()
    listen = server.listen
    if server.tls:
        lines.append("  c2s port         %s:%d (STARTTLS required)" % (listen, server.c2s_port))
        if server.direct_tls_port:
            lines.append("  direct TLS port  %s:%d" % (listen, server.direct_tls_port))
    else:
        lines.append("  c2s port         %s:%d (plaintext, no TLS)" % (listen, server.c2s_port))
    if len(nodes) > 1:
        for number, node in enumerate(nodes, 1):
            ports = "c2s %s:%d" % (node["address"], node["c2s_port"])
            if node["direct_tls_port"]:
                ports += ", direct TLS %s:%d" % (node["address"], node["direct_tls_port"])
            lines.append("  node %-11d %s, %s, %s" % (number, node["name"], ports, (
                "pid %d" % node["pid"]) if node["running"] else "stopped"))
    if server.tls:
        lines.append("  CA (PEM)         %s" % server.ca_path)
        lines.append("  CA (DER)         %s" % server.ca_der_path)
    lines.append("  registration     %s" % ("in-band allowed" if server.allow_registration
                                           else "in-band disabled (%s only)" % server.admin_tool))
    lines.append("  login            %s" % ("SASL2 with Bind2 (XEP-0388, XEP-0386) and SASL" if server.sasl2
                                           else "SASL (RFC 6120)"))
    lines.append("  state            %s" % server.state_dir)
    return lines


def _check_tools(engine):
    missing = [tool for tool in TOOLS[engine] if shutil.which(tool) is None]
    if missing:
        raise CommandError("%s not found on PATH: %s" % (" and ".join(missing), INSTALL_HINTS[engine]))


def start(state_dir, args, recorded):
    engine = args.engine or (recorded.engine if recorded else DEFAULT_ENGINE)
    _check_tools(engine)
    if recorded is not None and recorded.is_running():
        _check_matches(recorded, args)
        print("already running (%s)" % _pids(recorded))
        print("\n".join(describe(recorded)))
        return
    if engine != "ejabberd":
        if args.nodes not in (None, 1):
            raise CommandError("server start --nodes %d: Prosody runs one node; a cluster needs --engine "
                               "ejabberd" % args.nodes)
    elif args.sasl2:
        raise CommandError("server start --sasl2: Prosody only (the ejabberd engine offers the classic SASL)")
    domain = args.domain or (recorded.domain if recorded else DEFAULT_DOMAIN)
    tls = args.tls if args.tls is not None else (recorded.tls if recorded else True)
    registration = (args.registration if args.registration is not None
                    else (recorded.allow_registration if recorded else True))
    listen = args.listen or (recorded.listen if recorded else LOOPBACK)
    same_place = recorded is not None and recorded.domain == domain and recorded.listen == listen
    port = args.port or (recorded.c2s_port if recorded and recorded.listen == listen else None)
    try:
        if engine == "ejabberd":
            server = _ejabberd(state_dir, args, recorded, domain, tls, registration, listen, port, same_place)
        else:
            server = _prosody(state_dir, args, recorded, domain, tls, registration, listen, port, same_place)
        if same_place:
            server.accounts = dict(recorded.accounts)
        server.start()
    except ServerError as error:
        raise CommandError("server start: %s" % _first_line(error, port))
    nodes = len(server.nodes())
    if nodes > 1:
        print("started ejabberd: %d nodes in one cluster (%s)" % (nodes, _pids(server)))
    else:
        print("started %s (pid %d)" % (NAMES[engine], server.pid))
    print("\n".join(describe(server)))
    if listen != LOOPBACK:
        print("note: listening on %s: boards on that network can connect; give provision --server %s"
              % (listen, listen))


def _prosody(state_dir, args, recorded, domain, tls, registration, listen, port, same_place):
    from host_tools.engines.prosody import ProsodyServer

    sasl2 = args.sasl2 if args.sasl2 is not None else (recorded.sasl2 if recorded else True)
    direct_tls_port = recorded.direct_tls_port if same_place and recorded.tls and tls else None
    if direct_tls_port == port:
        direct_tls_port = None
    return ProsodyServer(state_dir, domain=domain, port=port, direct_tls_port=direct_tls_port, tls=tls,
                         allow_registration=registration, sasl2=sasl2, listen=listen,
                         smacks=recorded.smacks if recorded else True,
                         extra_config=recorded.extra_config if recorded else "")


def _ejabberd(state_dir, args, recorded, domain, tls, registration, listen, port, same_place):
    from host_tools.engines.ejabberd import EjabberdServer

    nodes = args.nodes or (len(recorded.nodes()) if recorded else 1)
    if recorded is not None and len(recorded.nodes()) != nodes:
        # Mnesia remembers the cluster: a node started alone waits for the others' tables.
        raise CommandError("server start --nodes %d: %s holds a cluster of %d node(s); give another --state "
                           "for another cluster" % (nodes, os.path.abspath(state_dir), len(recorded.nodes())))
    ports = None
    if same_place:
        ports = [(node["c2s_port"], node["direct_tls_port"]) for node in recorded.nodes()]
    if port is not None:
        ports = ports or [(None, None)] * nodes
        ports[0] = (port, ports[0][1] if ports[0][1] != port else None)
    if ports is not None and all(p == (None, None) for p in ports):
        ports = None
    return EjabberdServer(state_dir, domain=domain, nodes=nodes, ports=ports, tls=tls,
                          allow_registration=registration, listen=listen)


def _pids(server):
    running = [node for node in server.nodes() if node["running"]]
    if len(server.nodes()) == 1:
        return "pid %d" % running[0]["pid"] if running else "stopped"
    return ", ".join("node %d pid %d" % (number, node["pid"])
                     for number, node in enumerate(server.nodes(), 1) if node["running"])


def _check_matches(running, args):
    wanted = [("--port", args.port, running.c2s_port), ("--domain", args.domain, running.domain),
              ("--tls", args.tls, running.tls), ("--registration", args.registration, running.allow_registration),
              ("--sasl2", args.sasl2, running.sasl2), ("--nodes", args.nodes, len(running.nodes())),
              ("--listen", args.listen, running.listen)]
    for option, value, actual in wanted:
        if value is not None and value != actual:
            shown = {True: "on", False: "off"}.get(actual, actual)
            raise CommandError("server start: already running (%s) with %s %s; run 'xmpp-lite server "
                               "stop' first to change it" % (_pids(running), option, shown))


def _first_line(error, port):
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if "could not open a port" in first and port:
        first += " (port %d taken? choose another with --port)" % port
    elif "\n" in text:
        first += " (see the log in the state directory)"
    return first


def stop(state_dir, server):
    if server is None or not server.is_running():
        print("not running (%s)" % os.path.abspath(state_dir))
        return
    pids = _pids(server)
    try:
        server.stop()
    except ServerError as error:
        raise CommandError("server stop: %s" % error)
    if len(server.nodes()) > 1:
        print("stopped ejabberd: %d nodes (%s)" % (len(server.nodes()), pids))
    else:
        print("stopped %s (%s)" % (NAMES[server.engine], pids))


def status(state_dir, server):
    if server is None:
        print("stopped (no server in %s)" % os.path.abspath(state_dir))
        raise SystemExit(EXIT_STOPPED)
    if not server.is_running():
        print("stopped (state in %s; 'xmpp-lite server start' brings it back on port %d)"
              % (server.state_dir, server.c2s_port))
        raise SystemExit(EXIT_STOPPED)
    nodes = server.nodes()
    running = [node for node in nodes if node["running"]]
    if len(nodes) == 1:
        print("running (pid %d)" % server.pid)
    else:
        members = _cluster(server)
        print("running: %d of %d nodes (%s)%s" % (len(running), len(nodes), _pids(server), members))
    print("\n".join(describe(server)))
    if len(running) < len(nodes):
        raise SystemExit(EXIT_PARTLY)


def _cluster(server):
    try:
        members = server.cluster()
    except ServerError as error:
        return "; list_cluster failed: %s" % str(error).splitlines()[0]
    return "; cluster: %s" % " ".join(sorted(members))
