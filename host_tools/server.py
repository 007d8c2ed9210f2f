"""Former home of the local Prosody: it lives in ``host_tools.engines.prosody`` now, beside the other
server engines. These names stay importable from here for code written against the old module."""

from host_tools.engines.base import (LOOPBACK, STATE_FILE, AccountExists, ServerError,  # noqa: F401
                                     free_port, read_until, stream_features, stream_header)
from host_tools.engines.prosody import PROSODY, PROSODYCTL, ProsodyServer  # noqa: F401
