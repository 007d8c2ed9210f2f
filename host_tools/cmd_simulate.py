"""`xmpp-lite simulate`: N simulated devices, the real device code, through the link emulator, against a server.

Prints a live one-line summary (online, reconnects, messages/s) while it runs, on stderr, and a JSON
summary on stdout at the end, also when stopped early by Ctrl-C or SIGTERM.

The server, like provision's: ``--server HOST[:PORT]`` (several: the devices take turns, e.g. the nodes
of a cluster) with ``--domain`` and ``--ca`` for a server elsewhere; else the local server of ``--state``
(every node of an ejabberd cluster), or the one running in the default state directory; else a
temporary server of ``--engine`` (prosody by default; ``--nodes N`` for an ejabberd cluster) for the run.
Device accounts (PREFIX...-1, -2, ...) and the controller account that counts the reports are made by
in-band registration for the run, or taken from ``--accounts FILE``; the accounts the run made are
removed at the end unless ``--keep-accounts``.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import time

from host_tools.cli import CommandError

DESCRIPTION = "Simulate a fleet of devices (MicroPython VM or CPython) through a GPRS-like link."

DEFAULT_DEVICES = 5
DEFAULT_DURATION_S = 60
DEFAULT_INTERVAL_S = 10
STATUS_EVERY_S = 1.0  # live line refresh on a terminal
STATUS_EVERY_PLAIN_S = 5.0  # when stderr is not a terminal


def add_arguments(parser):
    from host_tools.cmd_server import _nodes, engine_argument
    from host_tools.fleet import RUNTIMES, VM_HEAP
    from host_tools.linkemu import PROFILES

    parser.add_argument("--devices", type=int, default=DEFAULT_DEVICES, metavar="N",
                        help="how many devices (default %d)" % DEFAULT_DEVICES)
    parser.add_argument("--runtime", choices=RUNTIMES, default="micropython",
                        help="micropython: one VM process per device running firmware/main.py (default); "
                             "cpython: every device in this process, for large fleets")
    parser.add_argument("--link", choices=sorted(PROFILES), default="gprs",
                        help="link emulator profile between the devices and the server (default gprs)")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, metavar="S",
                        help="seconds to run (default %d; 0: until Ctrl-C or SIGTERM)" % DEFAULT_DURATION_S)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S",
                        help="seconds between a device's reports (default %d)" % DEFAULT_INTERVAL_S)
    parser.add_argument("--prefix", default="sim-", help="account name prefix (default sim-)")
    parser.add_argument("--state", metavar="DIR",
                        help="state directory of a server started by `xmpp-lite server start` (default: the "
                             "running one in $XMPP_LITE_STATE or .state/server, else a temporary server)")
    engine_argument(parser, "; without a running local server, the engine of the temporary one")
    parser.add_argument("--nodes", type=_nodes, metavar="N",
                        help="a temporary ejabberd server with N nodes in one cluster (with --engine ejabberd)")
    parser.add_argument("--server", action="append", metavar="HOST[:PORT]",
                        help="a server elsewhere (repeat, or separate by commas, for the nodes of a cluster: "
                             "the devices take turns); needs --ca, and --domain when HOST is an address")
    parser.add_argument("--domain", metavar="D", help="the JID domain of --server (default: its host)")
    parser.add_argument("--ca", metavar="FILE", help="CA certificate (PEM or DER) of --server")
    parser.add_argument("--accounts", metavar="FILE",
                        help="existing device accounts, as JSON: {\"user\": \"password\", ...} (the first "
                             "--devices of them); default: made by in-band registration for the run")
    parser.add_argument("--keep-accounts", action="store_true",
                        help="keep the accounts made for the run (default: removed at the end, also after "
                             "Ctrl-C or SIGTERM)")
    parser.add_argument("--controller-account", metavar="FILE",
                        help="the controller the devices report to, as JSON with jid and password (e.g. "
                             "controller.json from `xmpp-lite provision --create-controller`), so that "
                             "`xmpp-lite monitor --account FILE` watches the fleet; default: an account "
                             "made for the run")
    parser.add_argument("--heap", default=VM_HEAP, help="MicroPython VM heap per device (default %s)" % VM_HEAP)
    parser.add_argument("--json", metavar="FILE", help="also write the JSON summary to FILE")


def _remote(args):
    from host_tools.cmd_provision import DEFAULT_PORTS, _is_ip, parse_server
    from host_tools.fleet import RemoteServer

    addresses = []
    for text in args.server:
        for part in filter(None, (item.strip() for item in text.split(","))):
            host, port = parse_server(part)
            addresses.append((host, port or DEFAULT_PORTS["required"]))
    if not addresses:
        raise CommandError("--server: give HOST[:PORT]")
    domain = args.domain or addresses[0][0]
    if _is_ip(domain):
        raise CommandError("--server %s is an address: give the XMPP domain with --domain" % addresses[0][0])
    if not args.ca:
        raise CommandError("--server: give the CA that signs its certificate with --ca FILE")
    if not os.path.isfile(args.ca):
        raise CommandError("--ca %s: no such file" % args.ca)
    return RemoteServer(domain, addresses, os.path.abspath(args.ca))


def open_server(args, work):
    """(server, started_here): --server's, the local one of --state (or the default state directory), or a
    temporary one in ``work``."""
    from host_tools.cmd_server import default_state_dir, load
    from host_tools.engines import DEFAULT_ENGINE, ServerError, create

    if args.server:
        if args.state or args.engine or args.nodes:
            raise CommandError("--server is a server elsewhere: --state, --engine and --nodes are for a local one")
        return _remote(args), False
    if args.domain or args.ca:
        raise CommandError("--domain and --ca go with --server")
    state = args.state or default_state_dir()
    if args.state is not None or os.path.exists(os.path.join(state, "server.json")):
        try:
            server = load(state)
        except CommandError as error:
            raise CommandError("no server in %s: %s" % (state, error))
        if server is None and args.state is not None:
            raise CommandError("no server in %s (start one with `xmpp-lite server start --state %s`)"
                               % (state, state))
        if server is not None and server.is_running():
            if args.engine and args.engine != server.engine:
                raise CommandError("--engine %s: the server running in %s is %s" % (args.engine, state, server.engine))
            if args.nodes:
                raise CommandError("--nodes is for a temporary server; the one in %s is running" % state)
            return server, False
        if args.state is not None:
            raise CommandError("the server in %s is not running (`xmpp-lite server start --state %s`)"
                               % (state, state))
    engine = args.engine or DEFAULT_ENGINE
    if args.nodes and engine != "ejabberd":
        raise CommandError("--nodes %d: a cluster needs --engine ejabberd" % args.nodes)
    tool = {"prosody": "prosody", "ejabberd": "ejabberdctl"}[engine]
    if shutil.which(tool) is None:
        raise CommandError("%s is not installed: apt-get install %s" % (tool, engine))
    options = {"nodes": args.nodes} if args.nodes else {}
    try:
        server = create(engine, os.path.join(work, "server"), **options)
        server.start()
    except ServerError as error:
        raise CommandError("cannot start a local server: %s" % str(error).splitlines()[0])
    return server, True


def accounts_file(path, count):
    """[(user, password)]: the first ``count`` accounts of a JSON object {user: password}."""
    try:
        with open(path) as f:
            accounts = json.load(f)
        if not isinstance(accounts, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in accounts.items()):
            raise ValueError("not an object of user: password")
    except (OSError, ValueError) as error:
        raise CommandError("--accounts %s: need a JSON object {\"user\": \"password\"} (%s)" % (path, error))
    if len(accounts) < count:
        raise CommandError("--accounts %s holds %d accounts; --devices asks for %d" % (path, len(accounts), count))
    return [(user.partition("@")[0], password) for user, password in list(accounts.items())[:count]]


def controller_account(path):
    """(jid, password) from a credentials file."""
    try:
        with open(path) as f:
            account = json.load(f)
        return account["jid"], account["password"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CommandError("--controller-account %s: need a JSON object with jid and password (%s)"
                           % (path, type(error).__name__))


def live_line(snapshot, rate):
    return ("%5.0fs  devices %d  online %d  offline %d  starting %d  stopped %d  reconnects %d  "
            "reports %d  %.1f msg/s" % (snapshot["elapsed_s"], snapshot["devices"], snapshot["online"],
                                        snapshot["offline"], snapshot["starting"], snapshot["stopped"],
                                        snapshot["reconnects"], snapshot["messages"], rate))


def run_fleet(fleet, duration, out=sys.stderr):
    """Run until ``duration`` s (0: Ctrl-C) with the live line; the final snapshot with rates added."""
    terminal = out.isatty()
    every = STATUS_EVERY_S if terminal else STATUS_EVERY_PLAIN_S
    start = time.time()
    last_messages, last_time, rate = 0, start, 0.0
    next_status = start + every
    max_online = 0
    try:
        while duration <= 0 or time.time() - start < duration:
            time.sleep(0.2)
            snapshot = fleet.snapshot()
            max_online = max(max_online, snapshot["online"])
            now = time.time()
            if now >= next_status:
                rate = (snapshot["messages"] - last_messages) / (now - last_time)
                last_messages, last_time = snapshot["messages"], now
                next_status = now + every
                out.write(("\r" if terminal else "") + live_line(snapshot, rate) + ("" if terminal else "\n"))
                out.flush()
    except KeyboardInterrupt:
        pass
    if terminal:
        out.write("\n")
    snapshot = fleet.snapshot()
    elapsed = time.time() - start
    snapshot["max_online"] = max(max_online, snapshot["online"])
    snapshot["messages_per_s"] = round(snapshot["messages"] / elapsed, 2) if elapsed else 0.0
    return snapshot


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def run(args):
    from host_tools.fleet import Fleet, FleetError, create_accounts

    if args.devices < 1:
        raise CommandError("--devices must be at least 1")
    if args.interval <= 0:
        raise CommandError("--interval must be more than 0 seconds")
    controller = controller_account(args.controller_account) if args.controller_account else None
    given = accounts_file(args.accounts, args.devices) if args.accounts else None
    work = tempfile.mkdtemp(prefix="xmpp-lite-simulate-")
    server = fleet = None
    started_here = False
    made = []
    summary = None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        server, started_here = open_server(args, work)
        tag = os.urandom(2).hex()  # fresh names on a server that keeps accounts between runs
        where = ", ".join("%s:%d" % address for address in server.addresses())
        print("simulate: %d %s devices on %s at %s through the %s link; %s"
              % (args.devices, args.runtime, server.domain, where, args.link,
                 "accounts from %s" % args.accounts if given else "creating accounts"), file=sys.stderr)
        wanted = [] if given else ["%s%s-%d" % (args.prefix, tag, number) for number in range(1, args.devices + 1)]
        if controller is None:
            wanted.append("%scontroller-%s" % (args.prefix, tag))
        made = create_accounts(server, wanted) if wanted else []
        devices = given if given else made[:args.devices]
        controller = controller or made[-1]
        fleet = Fleet(server, devices, controller, runtime=args.runtime, profile=args.link,
                      interval_s=args.interval, work_dir=work, heap=args.heap)
        fleet.start()
        summary = run_fleet(fleet, args.duration)
    except FleetError as error:
        raise CommandError("simulate: %s" % error)
    except KeyboardInterrupt:
        if fleet is None:
            raise CommandError("simulate: interrupted while starting")
        summary = fleet.snapshot()
    finally:
        try:
            if fleet is not None:
                fleet.stop()
            if made and server is not None and not started_here:
                _remove(server, made, args.keep_accounts, summary)
        finally:
            if server is not None and started_here:
                server.stop()
            shutil.rmtree(work, ignore_errors=True)
            signal.signal(signal.SIGTERM, previous)
    text = json.dumps(summary, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


def _remove(server, made, keep, summary):
    """Remove the accounts the run made (not on a temporary server, which goes away with them)."""
    from host_tools.fleet import remove_accounts

    if keep:
        print("simulate: kept the %d accounts made for the run" % len(made), file=sys.stderr)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would leave half of them
    try:
        removed = remove_accounts(server, made)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if summary is not None:
        summary["accounts_removed"] = removed
    print("simulate: removed %d of the %d accounts made for the run" % (removed, len(made)), file=sys.stderr)
