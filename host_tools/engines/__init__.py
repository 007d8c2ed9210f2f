"""Local XMPP server engines: Prosody and ejabberd, behind one interface (see ``base``).

    server = engines.create("ejabberd", "xmpp-state", nodes=2)
    server.start()
    server = engines.load("xmpp-state")  # another process: whichever engine server.json names
"""

import os

from host_tools.engines.base import STATE_FILE, ServerError, read_state

ENGINES = ("prosody", "ejabberd")
DEFAULT_ENGINE = "prosody"


def engine_class(name):
    if name == "prosody":
        from host_tools.engines.prosody import ProsodyServer
        return ProsodyServer
    if name == "ejabberd":
        from host_tools.engines.ejabberd import EjabberdServer
        return EjabberdServer
    raise ServerError("unknown engine %r (known engines: %s)" % (name, ", ".join(ENGINES)))


def create(name, state_dir, **options):
    """A new server of engine ``name`` in ``state_dir`` (not started)."""
    return engine_class(name)(state_dir, **options)


def recorded_engine(state_dir):
    """The engine named in ``state_dir/server.json`` (a state from before engines had names is Prosody's)."""
    engine = read_state(state_dir).get("engine", DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise ServerError("%s names an unknown engine %r" % (os.path.join(state_dir, STATE_FILE), engine))
    return engine


def load(state_dir):
    """Reattach to the server recorded in ``state_dir``, whatever its engine."""
    return engine_class(recorded_engine(state_dir)).load(state_dir)
