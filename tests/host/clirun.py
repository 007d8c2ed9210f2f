"""Running `xmpp-lite` as a user does, in a process of its own, for the CLI tests."""

import os
import subprocess
import sys

COMMAND_TIMEOUT = 60


# After a SIGTERM, how long a command has to clean up (stop the servers it started) before SIGKILL.
STOP_GRACE = 15


def run(command, timeout, **options):
    """subprocess.run(command, capture_output=True, text=True, ...), but stopped gently.

    On a timeout or any exception in the caller (a failed assert elsewhere, pytest's per-test
    timeout, Ctrl-C) the command first gets SIGTERM, so that a command that started a server
    (demo, server start) stops it; SIGKILL only after STOP_GRACE seconds. subprocess.run kills at
    once, and the servers outlive the command.
    """
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            process.terminate()
            try:
                process.communicate(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def cli(*args, cwd=None, env=None, timeout=COMMAND_TIMEOUT):
    """Run `xmpp-lite ARGS` in a process of its own (the user's $XMPP_LITE_STATE left out)."""
    if env is None:
        env = {name: value for name, value in os.environ.items() if name != "XMPP_LITE_STATE"}
    return run([sys.executable, "-m", "host_tools"] + [str(a) for a in args], timeout, cwd=cwd, env=env)


def one_line_error(result):
    """The one `xmpp-lite: error: ...` line of a failed command (exit 1, no traceback)."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmpp-lite: error: "), result.stderr
    return lines[0]
