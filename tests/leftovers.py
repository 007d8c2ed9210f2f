"""Processes that a test run started and that are still alive at its end (see tests/conftest.py).

Linux: processes are found through /proc (their environment and start time).
"""

import os
import secrets
import signal
import time

RUN_MARK = "XMPP_LITE_TEST_RUN"
# A process that is exiting as the run ends (stopped, not yet reaped) gets this long before it counts.
LEFTOVER_GRACE_S = 3.0
# After SIGTERM, this long before SIGKILL.
STOP_GRACE_S = 5.0

RUN_ID = "%d-%s" % (os.getpid(), secrets.token_hex(4))
tracked = {}  # pid -> (start time in clock ticks, description)


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


def marked_processes():
    """{pid: start time} of the live processes that carry this run's mark, this process left out."""
    wanted = ("%s=%s" % (RUN_MARK, RUN_ID)).encode()
    found = {}
    if not os.path.isdir("/proc"):
        return found  # not Linux: only the tracked processes are checked (and not at all without /proc)
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
    found = {pid: (started, _command(pid)) for pid, started in marked_processes().items()}
    for pid, (started, what) in tracked.items():
        if _alive(pid, started):
            found[pid] = (started, what)
    return found


def stop(pid, started):
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
        stopped = stop(pid, started)
        report.append("pid %d %s%s" % (pid, what, "" if stopped else " (still alive after SIGKILL)"))
    return report


def track(process, what):
    """Check at the end of the run that ``process`` (a pid or a Popen) is gone; returns it."""
    pid = getattr(process, "pid", process)
    stat = _stat(pid)
    if stat is not None:
        tracked[pid] = (stat[1], what)
    return process
