"""`xmpp-lite server start|stop|status`: a local Prosody that outlives the command.

The server is host_tools.server.ProsodyServer in a state directory (``--state``, else
``$XMPP_LITE_STATE``, else ``.state/server`` under the current directory). Prosody runs in a session
of its own, so ``start`` can exit and leave it running; its pid and ports are in ``server.json``
there, which is how ``stop``, ``status`` and ``xmpp-lite provision`` find it again.

Settings are remembered in the state: a later ``start`` without options brings the same server
back, on the same ports with the same CA, so that boards provisioned for it still connect. An
option given to ``start`` changes that setting (a new ``--domain`` also means a new test CA).

Exit status: 0 on success; ``start`` on a running server says so and exits 0 (it is running, as
asked) unless an option asks for something the running server is not, which is an error (1).
``status`` exits 0 when running and 3 when stopped, like service tools. ``stop`` on a stopped
server exits 0.
"""

import argparse
import os
import shutil

from host_tools.cli import CommandError, port_number
from host_tools.server import LOOPBACK, PROSODY, PROSODYCTL, STATE_FILE, ProsodyServer, ServerError

DESCRIPTION = "Start, stop or query a local Prosody for development (state in .state/server)."

ENGINES = ("prosody",)
ACTIONS = ("start", "stop", "status")
STATE_ENV = "XMPP_LITE_STATE"
DEFAULT_STATE_DIR = os.path.join(".state", "server")
DEFAULT_DOMAIN = "localhost"
EXIT_STOPPED = 3  # `status` of a server that is not running (LSB init scripts use 3 too)
INSTALL_HINT = "install Prosody with 'make prosody' (or: apt-get install prosody prosody-modules)"


def default_state_dir():
    return os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR


def state_dir_of(args):
    return args.state or default_state_dir()


def _engine(value):
    if value not in ENGINES:
        raise argparse.ArgumentTypeError("unknown engine %r (known engines: %s)" % (value, ", ".join(ENGINES)))
    return value


def add_arguments(parser):
    parser.add_argument("action", choices=ACTIONS,
                        help="start: in the background (it keeps running); stop: stop it (nothing to do "
                             "if stopped); status: running (exit 0) or stopped (exit 3)")
    parser.add_argument("--engine", type=_engine, default="prosody",
                        help="the server software; only 'prosody' (default)")
    parser.add_argument("--state", metavar="DIR",
                        help="state directory: config, certificates, accounts, log and server.json "
                             "(default: $%s, else %s)" % (STATE_ENV, DEFAULT_STATE_DIR))
    parser.add_argument("--port", type=port_number, metavar="N",
                        help="c2s port on %s (start; default: the port used last time, else a free one)"
                             % LOOPBACK)
    parser.add_argument("--domain", metavar="D",
                        help="XMPP domain, the part after @ in JIDs (start; default: the one used last "
                             "time, else %s)" % DEFAULT_DOMAIN)
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="TLS with the generated test CA, STARTTLS required, plus a direct TLS port "
                             "(start; default: as last time, else on); --no-tls: plaintext only")
    parser.add_argument("--registration", action=argparse.BooleanOptionalAction, default=None,
                        help="allow in-band registration, XEP-0077 (start; default: as last time, else "
                             "allowed); --no-registration: accounts only by prosodyctl")
    parser.add_argument("--sasl2", action=argparse.BooleanOptionalAction, default=None,
                        help="also offer XEP-0388 SASL2 with XEP-0386 Bind2, a login with a round trip "
                             "fewer (start; needs Debian's prosody-modules; default: as last time, else "
                             "on); --no-sasl2: the classic SASL of RFC 6120 only")


def run(args):
    state_dir = state_dir_of(args)
    if args.action != "start":
        given = [name for name in ("port", "domain", "tls", "registration", "sasl2")
                 if getattr(args, name) is not None]
        if given:
            raise CommandError("server %s: --%s only applies to start" % (args.action, given[0]))
    if args.action == "start":
        start(state_dir, args)
    elif args.action == "stop":
        stop(state_dir)
    else:
        status(state_dir)


def load(state_dir):
    """The server recorded in ``state_dir``, or None if there is none."""
    if not os.path.exists(os.path.join(state_dir, STATE_FILE)):
        return None
    try:
        return ProsodyServer.load(state_dir)
    except (ServerError, KeyError, TypeError) as error:
        raise CommandError("%s: unreadable server state: %s" % (os.path.join(state_dir, STATE_FILE), error))


def describe(server):
    """What a user needs to connect: lines of text."""
    lines = ["  domain           %s" % server.domain]
    if server.tls:
        lines.append("  c2s port         %s:%d (STARTTLS required)" % (LOOPBACK, server.c2s_port))
        if server.direct_tls_port:
            lines.append("  direct TLS port  %s:%d" % (LOOPBACK, server.direct_tls_port))
        lines.append("  CA (PEM)         %s" % server.ca_path)
        lines.append("  CA (DER)         %s" % server.ca_der_path)
    else:
        lines.append("  c2s port         %s:%d (plaintext, no TLS)" % (LOOPBACK, server.c2s_port))
    lines.append("  registration     %s" % ("in-band allowed" if server.allow_registration
                                           else "in-band disabled (prosodyctl only)"))
    lines.append("  login            %s" % ("SASL2 with Bind2 (XEP-0388, XEP-0386) and SASL" if server.sasl2
                                           else "SASL (RFC 6120)"))
    lines.append("  state            %s" % server.state_dir)
    return lines


def start(state_dir, args):
    missing = [tool for tool in (PROSODY, PROSODYCTL) if shutil.which(tool) is None]
    if missing:
        raise CommandError("%s not found on PATH: %s" % (" and ".join(missing), INSTALL_HINT))
    recorded = load(state_dir)
    if recorded is not None and recorded.is_running():
        _check_matches(recorded, args)
        print("already running (pid %d)" % recorded.pid)
        print("\n".join(describe(recorded)))
        return
    domain = args.domain or (recorded.domain if recorded else DEFAULT_DOMAIN)
    tls = args.tls if args.tls is not None else (recorded.tls if recorded else True)
    registration = (args.registration if args.registration is not None
                    else (recorded.allow_registration if recorded else True))
    sasl2 = args.sasl2 if args.sasl2 is not None else (recorded.sasl2 if recorded else True)
    same_place = recorded is not None and recorded.domain == domain
    port = args.port or (recorded.c2s_port if recorded else None)
    direct_tls_port = recorded.direct_tls_port if same_place and recorded.tls and tls else None
    if direct_tls_port == port:
        direct_tls_port = None
    try:
        server = ProsodyServer(state_dir, domain=domain, port=port, direct_tls_port=direct_tls_port, tls=tls,
                               allow_registration=registration, sasl2=sasl2,
                               smacks=recorded.smacks if recorded else True,
                               extra_config=recorded.extra_config if recorded else "")
        if same_place:
            server.accounts = dict(recorded.accounts)
        server.start()
    except ServerError as error:
        raise CommandError("server start: %s" % _first_line(error, port))
    print("started Prosody (pid %d)" % server.pid)
    print("\n".join(describe(server)))


def _check_matches(running, args):
    wanted = [("--port", args.port, running.c2s_port), ("--domain", args.domain, running.domain),
              ("--tls", args.tls, running.tls), ("--registration", args.registration, running.allow_registration),
              ("--sasl2", args.sasl2, running.sasl2)]
    for option, value, actual in wanted:
        if value is not None and value != actual:
            shown = {True: "on", False: "off"}.get(actual, actual)
            raise CommandError("server start: already running (pid %d) with %s %s; run 'xmpp-lite server "
                               "stop' first to change it" % (running.pid, option, shown))


def _first_line(error, port):
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if "could not open a port" in first and port:
        first += " (port %d taken? choose another with --port)" % port
    elif "\n" in text:
        first += " (see the log in the state directory)"
    return first


def stop(state_dir):
    server = load(state_dir)
    if server is None or not server.is_running():
        print("not running (%s)" % os.path.abspath(state_dir))
        return
    pid = server.pid
    try:
        server.stop()
    except ServerError as error:
        raise CommandError("server stop: %s" % error)
    print("stopped Prosody (pid %d)" % pid)


def status(state_dir):
    server = load(state_dir)
    if server is None:
        print("stopped (no server in %s)" % os.path.abspath(state_dir))
        raise SystemExit(EXIT_STOPPED)
    if not server.is_running():
        print("stopped (state in %s; 'xmpp-lite server start' brings it back on port %d)"
              % (server.state_dir, server.c2s_port))
        raise SystemExit(EXIT_STOPPED)
    print("running (pid %d)" % server.pid)
    print("\n".join(describe(server)))
