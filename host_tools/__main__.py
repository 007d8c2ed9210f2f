"""The `xmpp-lite` command line: `xmpp-lite COMMAND [options]`.

Each command is a handler plus its own argument parser in COMMANDS, so adding a
command touches one table and every command gets `--help` for free; commands
with more to them live in host_tools/cmd_NAME.py and are listed in
COMMAND_MODULES. Handlers report expected failures by raising CommandError
(host_tools.cli): the user sees one line on stderr and exit status 1, not a
traceback.
"""

import importlib
import sys

from host_tools.cli import PROG, CommandError, command_parser


def do_version(args):
    # Imported here, not at the top: only this command needs the library.
    import xmpp_lite

    print(xmpp_lite.__version__)


def do_demo(args):
    from host_tools.demo import DemoError, run_demo

    if args.duration <= 0:
        raise CommandError("demo: --duration must be more than 0 seconds")
    try:
        run_demo(duration=args.duration, keep_running=args.keep_running,
                 interactive=False if args.plain else None, engine=args.engine)
    except DemoError as error:
        raise CommandError("demo: %s" % error)


def demo_parser():
    from host_tools.demo import DURATION_S

    from host_tools.cmd_server import _engine
    from host_tools.engines import DEFAULT_ENGINE

    parser = command_parser("demo", "Run a local XMPP server, five simulated boards over a GPRS-like link, and "
                                    "the monitor.")
    parser.add_argument("--engine", type=_engine, default=DEFAULT_ENGINE,
                        help="the server: prosody (default) or ejabberd")
    parser.add_argument("--duration", type=float, default=DURATION_S, metavar="S",
                        help="seconds to show the fleet (default %d); on a terminal the live monitor also "
                             "ends with q" % DURATION_S)
    parser.add_argument("--keep-running", action="store_true", help="run until Ctrl-C (or q) instead")
    parser.add_argument("--plain", action="store_true",
                        help="print the table every few seconds even on a terminal (no live screen)")
    return parser


COMMANDS = {
    "version": (do_version, command_parser("version", "Print the xmpp_lite library version.")),
    "demo": (do_demo, demo_parser()),
}

# Commands in modules of their own (host_tools/cmd_NAME.py: DESCRIPTION, add_arguments(parser), run(args)).
COMMAND_MODULES = ("server", "provision", "simulate", "simboard", "deploy", "package", "flash", "monitor")


def _load_command_modules():
    for name in COMMAND_MODULES:
        module = importlib.import_module("host_tools.cmd_" + name)
        parser = command_parser(name, module.DESCRIPTION)
        module.add_arguments(parser)
        COMMANDS[name] = (module.run, parser)


_load_command_modules()


def usage():
    lines = ["usage: %s COMMAND [options]" % PROG, "", "commands:"]
    for name in sorted(COMMANDS):
        lines.append("  %-12s %s" % (name, COMMANDS[name][1].description))
    lines.append("")
    lines.append("Run '%s COMMAND --help' for the options of a command." % PROG)
    return "\n".join(lines)


def run(argv):
    if not argv:
        raise CommandError("no command given; try '%s --help'" % PROG)
    if argv[0] in ("-h", "--help"):
        print(usage())
        return
    name = argv[0]
    if name not in COMMANDS:
        raise CommandError("unknown command %r; try '%s --help'" % (name, PROG))
    handler, parser = COMMANDS[name]
    handler(parser.parse_args(argv[1:]))


def main(argv=None):
    try:
        run(sys.argv[1:] if argv is None else argv)
    except CommandError as error:
        print("%s: error: %s" % (PROG, error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
