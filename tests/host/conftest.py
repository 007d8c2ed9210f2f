"""Fixtures for host-side tests: a real local Prosody (Debian's package) from a generated config.

``prosody``: TLS on and required, with two accounts, ``device1`` and ``controller``, whose generated
passwords are in ``prosody.accounts``. ``prosody_plain``: no TLS at all, PLAIN allowed in the clear (for
``tls="none"`` client tests), same two accounts. Both live for the whole test session.
"""

import secrets
import shutil
import ssl

import pytest

from host_tools.server import PROSODY, PROSODYCTL, ProsodyServer
from host_tools.tools import compile_library, find_tool

ACCOUNTS = ("device1", "controller")


def _require_prosody():
    missing = [name for name in (PROSODY, PROSODYCTL) if shutil.which(name) is None]
    if missing:
        # A failure, not a skip: these tests are the point, and a silent skip would hide that they
        # never ran. The Makefile's setup target installs the package.
        pytest.fail("%s not found on PATH: install Prosody (Debian/Ubuntu: apt-get install prosody, "
                    "or 'make prosody') to run the server tests" % " and ".join(missing), pytrace=False)


def _start_with_accounts(state_dir, **options):
    _require_prosody()
    server = ProsodyServer(state_dir, **options)
    server.start()
    try:
        for user in ACCOUNTS:
            server.register(user, secrets.token_urlsafe(12))
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def prosody(tmp_path_factory):
    """A running Prosody with TLS required; ``prosody.accounts`` maps user -> password."""
    server = _start_with_accounts(tmp_path_factory.mktemp("prosody"), tls=True, require_encryption=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prosody_plain(tmp_path_factory):
    """A running Prosody without TLS: no STARTTLS, no direct TLS port, PLAIN allowed in the clear."""
    server = _start_with_accounts(tmp_path_factory.mktemp("prosody-plain"), tls=False,
                                  require_encryption=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mpy_lib(tmp_path_factory):
    """The device library compiled to .mpy (as a board runs it): the folder to put on the VM's path."""
    mpy_cross = find_tool("mpy-cross")
    if mpy_cross is None:
        pytest.fail("no mpy-cross binary; run `make bootstrap`", pytrace=False)
    return compile_library(mpy_cross, str(tmp_path_factory.mktemp("mpy")))


@pytest.fixture
def running():
    """A list for the test to put what it starts in (anything with stop()); all stopped afterwards, last first."""
    things = []
    yield things
    for thing in reversed(things):
        try:
            thing.stop()
        except Exception:  # noqa: BLE001 - cleanup after a failure must not hide it
            pass


@pytest.fixture
def prosody_tls_context(prosody):
    """A client SSL context that trusts only the test CA of ``prosody``."""
    return ssl.create_default_context(cafile=prosody.ca_path)
