"""ejabberd for host tests: a server of host_tools.engines.ejabberd in a temporary folder, with accounts.

Started from a generated config on free loopback ports; ``stop()`` ends every process it started by pid
(each node's process group, and the port mapper if it started one), whatever the test's outcome.
"""

import secrets
import shutil

import pytest

from host_tools.engines.ejabberd import EJABBERDCTL, EjabberdServer

ACCOUNTS = ("device1", "device2", "controller")


def start_ejabberd(state_dir, nodes=1, accounts=ACCOUNTS):
    if shutil.which(EJABBERDCTL) is None:
        # A failure, not a skip: the bootstrap installs ejabberd, and a skip would hide that nothing ran.
        pytest.fail("ejabberdctl not found on PATH: install ejabberd (apt-get install ejabberd, or 'make "
                    "prosody')", pytrace=False)
    server = EjabberdServer(state_dir, nodes=nodes)
    try:
        server.start()
        for user in accounts:
            server.register(user, secrets.token_urlsafe(12))
    except BaseException:
        server.stop()
        raise
    return server
