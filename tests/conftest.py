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
import secrets
import signal
import sys
import time
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parent

for _path in (_TESTS_DIR.parent / "lib", _TESTS_DIR / "device"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

RUN_MARK = "XMPP_LITE_TEST_RUN"
# A process that is exiting as the run ends (stopped, not yet reaped) gets this long before it counts.
LEFTOVER_GRACE_S = 3.0
# After SIGTERM, this long before SIGKILL.
STOP_GRACE_S = 5.0

_run_id = "%d-%s" % (os.getpid(), secrets.token_hex(4))
_tracked = {}  # pid -> (start time in clock ticks, description)


def _stat(pid):
    """(state, start time) of ``pid`` from /proc, or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces and brackets
    return fields[0].decode(), int(fields[19])


def _alive(pid, started=None):
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return started is None or stat[1] == started  # a recycled pid is someone else's process


def _command(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"


def _marked_processes():
    """{pid: start time} of the live processes that carry this run's mark, this process left out."""
    wanted = ("%s=%s" % (RUN_MARK, _run_id)).encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            stat = _stat(int(entry))
            if stat is not None and stat[0] not in ("Z", "X"):
                found[int(entry)] = stat[1]
    return found


def _candidates():
    found = {pid: (started, _command(pid)) for pid, started in _marked_processes().items()}
    for pid, (started, what) in _tracked.items():
        if _alive(pid, started):
            found[pid] = (started, what)
    return found


def _stop(pid, started):
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        if not _alive(pid, started):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it if it is our child
            except ChildProcessError:
                pass
            if not _alive(pid, started):
                return True
            time.sleep(0.05)
    return not _alive(pid, started)


def find_leftovers(grace_s=LEFTOVER_GRACE_S):
    """Processes of this run still alive after ``grace_s``, stopped: a list of "pid command" lines."""
    deadline = time.monotonic() + grace_s
    found = _candidates()
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = _candidates()
    report = []
    for pid, (started, what) in sorted(found.items()):
        stopped = _stop(pid, started)
        report.append("pid %d %s%s" % (pid, what, "" if stopped else " (still alive after SIGKILL)"))
    return report


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
    os.environ[RUN_MARK] = _run_id
    _ctrl_c_as_in_a_terminal()


@pytest.fixture
def track_process():
    """``track(pid_or_popen, what)``: check at the end of the run that this process is gone.

    Only needed for a process started without this run's environment; the others are found anyway.
    """
    def track(process, what):
        pid = getattr(process, "pid", process)
        stat = _stat(pid)
        if stat is not None:
            _tracked[pid] = (stat[1], what)
        return process

    return track


_leftovers = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # trylast: after pytest's own sessionfinish, which tears down the session fixtures (servers).
    _leftovers.extend(find_leftovers())
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
