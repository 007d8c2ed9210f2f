"""`xmpp-lite monitor`: the controller's live view of the fleet, in the terminal, with commands to the devices."""

import json
import os
import sys

from host_tools.cli import CommandError

DESCRIPTION = "Watch the devices (presence, readings, plot) as their controller, and send them commands."


def add_arguments(parser):
    parser.add_argument("--account", metavar="FILE",
                        help="the controller's credentials as JSON (jid, password, host, port, tls, ca), "
                             "e.g. controller.json from `xmpp-lite provision --create-controller`")
    parser.add_argument("--jid", help="the controller's JID (instead of --account)")
    parser.add_argument("--password-env", default="XMPP_LITE_PASSWORD", metavar="VAR",
                        help="environment variable holding the password with --jid (default XMPP_LITE_PASSWORD)")
    parser.add_argument("--host", help="server host (default: the JID's domain)")
    parser.add_argument("--port", type=int, help="server port (default 5222)")
    parser.add_argument("--ca", help="CA certificate (PEM or DER) of the server's certificate")
    parser.add_argument("--device", action="append", default=[], metavar="JID",
                        help="a device to show from the start and subscribe to (repeatable); "
                             "others appear when they report")
    parser.add_argument("--plain", action="store_true", help="print the table every 5 s instead of a live screen")
    parser.add_argument("--duration", type=float, default=0, metavar="S", help="stop after S seconds (0: at q/Ctrl-C)")


def credentials(args):
    if args.account:
        try:
            with open(args.account) as f:
                account = json.load(f)
        except (OSError, ValueError) as error:
            raise CommandError("cannot read %s: %s" % (args.account, error))
        missing = [key for key in ("jid", "password") if key not in account]
        if missing:
            raise CommandError("%s: missing %s" % (args.account, ", ".join(missing)))
    elif args.jid:
        password = os.environ.get(args.password_env)
        if not password:
            raise CommandError("set the controller's password in $%s (it is never taken on the command line)"
                               % args.password_env)
        account = {"jid": args.jid, "password": password}
    else:
        raise CommandError("say who the controller is: --account FILE or --jid JID")
    for key in ("host", "port", "ca"):
        if getattr(args, key):
            account[key] = getattr(args, key)
    options = {key: account[key] for key in ("host", "port", "tls", "ca") if account.get(key) is not None}
    return account["jid"], account["password"], options


def run(args):
    from host_tools.fleet import Observer
    from host_tools.monitor import MonitorScreen, run_plain
    from xmpp_lite.sasl import AuthError

    jid, password, options = credentials(args)
    observer = Observer(jid, password, resource="monitor", **options)
    try:
        observer.start()
    except AuthError as error:
        raise CommandError("the server refused %s: %s" % (jid, error))
    except OSError as error:
        raise CommandError("cannot connect as %s: %s" % (jid, error))
    try:
        for device in args.device:
            observer.watch(device)
            observer.subscribe(device)
        if args.plain or not sys.stdout.isatty():
            run_plain(observer, args.duration)
        else:
            import curses

            curses.wrapper(MonitorScreen(observer, duration=args.duration).run)
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
