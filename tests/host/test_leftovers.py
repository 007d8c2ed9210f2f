"""The end-of-run check for leftover processes (tests/leftovers.py): it finds what the tests started, and stops it.

Only processes these tests start are looked at and stopped: the run's other processes (the session's
servers) are not touched.
"""

import os
import subprocess
import sys

import leftovers

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_grandchild_in_a_session_of_its_own_carries_the_run_mark():
    # As `xmpp-lite demo` starts Prosody: a child that starts a process in a new session and exits.
    script = ("import subprocess; print(subprocess.Popen(%r, start_new_session=True, stdout=subprocess.DEVNULL, "
              "stderr=subprocess.DEVNULL).pid)" % SLEEPER)
    spawner = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    orphan = int(spawner.stdout)
    try:
        marked = leftovers.marked_processes()
        assert orphan in marked and os.getpid() not in marked
        assert leftovers.stop(orphan, marked[orphan])
        assert orphan not in leftovers.marked_processes()
    finally:
        leftovers.stop(orphan, None)


def test_a_process_with_an_environment_of_its_own_is_tracked_by_pid(track_process):
    process = subprocess.Popen(SLEEPER, env={"PATH": os.environ["PATH"]})
    try:
        assert process.pid not in leftovers.marked_processes()
        track_process(process, "a sleeper")
        started, what = leftovers.tracked[process.pid]
        assert what == "a sleeper" and leftovers.stop(process.pid, started)
        assert process.wait(5) is not None
    finally:
        process.kill()
        process.wait()


def test_a_recycled_pid_is_not_stopped():
    process = subprocess.Popen(SLEEPER)
    try:
        _, started = leftovers._stat(process.pid)
        # Another start time: the pid belongs to another process now, which must be left alone.
        assert leftovers.stop(process.pid, started + 1)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()
