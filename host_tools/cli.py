"""What every `xmpp-lite` command shares: the one error type users see, and argument parsers that use it.

A command module (host_tools/cmd_*.py) defines ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args)``; host_tools/__main__.py lists it in COMMANDS. ``run`` reports expected failures by raising
CommandError: the user sees one line on stderr and exit status 1, not a traceback.
"""

import argparse

PROG = "xmpp-lite"


class CommandError(Exception):
    """An expected failure, shown to the user as one line."""


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors follow the CommandError rule too."""

    def error(self, message):
        raise CommandError("%s: %s" % (self.prog, message))


def command_parser(name, description):
    return CommandParser(prog=PROG + " " + name, description=description)


def port_number(value):
    """An argparse type: a TCP port, 1 to 65535."""
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("%r is not a port number from 1 to 65535" % value)
    return port
