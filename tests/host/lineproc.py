"""A child process whose output lines the test reads as they come, with bounded waits."""

import queue
import subprocess
import threading
import time

import pytest

WAIT = 15.0


class LineProcess:
    """``command`` running in ``cwd``; stdout and stderr together, one line at a time, with arrival times."""

    def __init__(self, command, cwd=None, env=None):
        self.lines = queue.Queue()
        self.seen = []
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.process.stdout:
            self.lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def output(self):
        return "\n".join(self.seen)

    def wait_for(self, fragment, timeout=WAIT):
        """(host monotonic time, line) of the next line containing ``fragment``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                when, line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.lines.put((when, None))  # stays at the end for the next wait
                pytest.fail("the process exited (%s) before %r; its output:\n%s"
                            % (self.process.wait(), fragment, self.output()), pytrace=False)
            self.seen.append(line)
            if fragment in line:
                return when, line
        pytest.fail("no %r within %.0f s; the output:\n%s" % (fragment, timeout, self.output()), pytrace=False)

    def drain(self):
        """Take the lines that arrived so far; True while the process runs."""
        while True:
            try:
                _, line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.lines.put((0, None))
                break
            self.seen.append(line)
        return self.process.poll() is None

    def check_alive(self):
        """Fail at once if the process has exited (with its output)."""
        if not self.drain():
            pytest.fail("the process exited (%s); its output:\n%s" % (self.process.returncode, self.output()),
                        pytrace=False)

    def finish(self, timeout=WAIT):
        """Wait for the exit; the exit status (all output read)."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail("still running after %.0f s; its output:\n%s" % (timeout, self.output()), pytrace=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                _, line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
        return status

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
