"""Shared pytest setup.

Device tests import `xmpp_lite` from lib/ and their helpers as the top-level
module `support`, exactly as on the MicroPython VM, so both folders go on
sys.path whatever pytest's import mode.

No leftovers: every process the tests start (servers, VMs, simboards, demos,
tmux) must be gone when the run ends, also after `pytest -x` stops at a
failure. Two ways to find them:
  - a mark in the environment, ``XMPP_LITE_TEST_RUN``, set for the whole run
    and inherited by every process started from it, grandchildren included
    (a demo's Prosody, a tmux server, an ejabberd node);
  - the ``track_process`` fixture, for a process started with an environment
    of its own: ``track_process(pid_or_popen, "what it is")``.
After everything else is torn down, what is still alive is stopped
(SIGTERM, then SIGKILL) and the run fails with a list of it.
"""

import os
import signal
import sys
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parent

for _path in (_TESTS_DIR.parent / "lib", _TESTS_DIR / "device", _TESTS_DIR):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import leftovers  # noqa: E402 - from tests/, on the path just above


def _ctrl_c_as_in_a_terminal():
    """Undo the SIGINT and SIGQUIT "ignored" that a run started in the background inherits.

    A shell without job control (a script, `make test &`) starts background commands with both
    ignored (POSIX), every process the tests start inherits that, and a Python tool that inherits it
    never gets KeyboardInterrupt: the Ctrl-C (SIGINT) that a test sends a simboard or the link
    emulator, as a person stops them, would be lost and the test would hang until its timeout.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def pytest_configure(config):
    os.environ[leftovers.RUN_MARK] = leftovers.RUN_ID
    _ctrl_c_as_in_a_terminal()


@pytest.fixture(scope="session")
def track_process():
    """``track(pid_or_popen, what)``: check at the end of the run that this process is gone.

    Only needed for a process started without this run's environment (``env=`` built from scratch);
    the others are found anyway. Session-scoped, so that fixtures of any scope can use it.
    """
    return leftovers.track


_leftovers = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # trylast: after pytest's own sessionfinish, which tears down the session fixtures (servers).
    _leftovers.extend(leftovers.find_leftovers())
    if _leftovers and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    # Called after every pytest_sessionfinish: the list is complete.
    if _leftovers:
        terminalreporter.section("leftover processes", red=True, bold=True)
        terminalreporter.write_line("still running at the end of the run, started by the tests (now stopped); "
                                    "the run fails:", red=True)
        for line in _leftovers:
            terminalreporter.write_line("  " + line)
