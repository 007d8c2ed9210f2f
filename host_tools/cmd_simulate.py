"""`xmpp-lite simulate`: N simulated devices, the real device code, through the link emulator, against a local server.

Prints a live one-line summary (online, reconnects, messages/s) while it runs, on stderr, and a JSON
summary on stdout at the end. The server is the one `xmpp-lite server start` runs in --state, or else a
temporary Prosody of its own. Device accounts (PREFIX1, PREFIX2, ...) and the controller account that
counts the reports are created for the run.
"""

import json
import os
import shutil
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
                        help="seconds to run (default %d; 0: until Ctrl-C)" % DEFAULT_DURATION_S)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S",
                        help="seconds between a device's reports (default %d)" % DEFAULT_INTERVAL_S)
    parser.add_argument("--prefix", default="sim-", help="account name prefix (default sim-)")
    parser.add_argument("--state", metavar="DIR",
                        help="state directory of a server started by `xmpp-lite server start` "
                             "(default: a temporary server for this run)")
    parser.add_argument("--controller-account", metavar="FILE",
                        help="the controller the devices report to, as JSON with jid and password (e.g. "
                             "controller.json from `xmpp-lite provision --create-controller`), so that "
                             "`xmpp-lite monitor --account FILE` watches the fleet; default: an account "
                             "made for the run")
    parser.add_argument("--heap", default=VM_HEAP, help="MicroPython VM heap per device (default %s)" % VM_HEAP)
    parser.add_argument("--json", metavar="FILE", help="also write the JSON summary to FILE")


def open_server(state, work):
    """(server, started_here): the server of ``state``, or a temporary one in ``work``."""
    from host_tools.server import ProsodyServer, ServerError

    if state:
        try:
            server = ProsodyServer.load(state)
        except (ServerError, OSError) as error:
            raise CommandError("no server in %s: %s (start one with `xmpp-lite server start --state %s`)"
                               % (state, error, state))
        if not server.is_running():
            raise CommandError("the server in %s is not running (`xmpp-lite server start --state %s`)"
                               % (state, state))
        return server, False
    if shutil.which("prosody") is None:
        raise CommandError("prosody is not installed: run `make prosody` (or apt-get install prosody)")
    server = ProsodyServer(os.path.join(work, "server"))
    try:
        server.start()
    except ServerError as error:
        raise CommandError("cannot start a local server: %s" % error)
    return server, True


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


def run(args):
    from host_tools.fleet import Fleet, FleetError, create_accounts

    if args.devices < 1:
        raise CommandError("--devices must be at least 1")
    if args.interval <= 0:
        raise CommandError("--interval must be more than 0 seconds")
    controller = controller_account(args.controller_account) if args.controller_account else None
    work = tempfile.mkdtemp(prefix="xmpp-lite-simulate-")
    server = fleet = None
    started_here = False
    try:
        server, started_here = open_server(args.state, work)
        tag = os.urandom(2).hex()  # fresh names on a server that keeps accounts between runs
        users = ["%s%s-%d" % (args.prefix, tag, number) for number in range(1, args.devices + 1)]
        print("simulate: %d %s devices on %s:%d through the %s link; creating accounts"
              % (args.devices, args.runtime, server.domain, server.c2s_port, args.link), file=sys.stderr)
        if controller is not None:
            accounts = create_accounts(server, users) + [controller]
        else:
            accounts = create_accounts(server, users + ["%scontroller-%s" % (args.prefix, tag)])
        fleet = Fleet(server, accounts[:-1], accounts[-1], runtime=args.runtime, profile=args.link,
                      interval_s=args.interval, work_dir=work, heap=args.heap)
        fleet.start()
        summary = run_fleet(fleet, args.duration)
    except FleetError as error:
        raise CommandError("simulate: %s" % error)
    finally:
        if fleet is not None:
            fleet.stop()
        if server is not None and started_here:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(summary, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
