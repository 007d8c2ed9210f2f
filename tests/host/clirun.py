"""Running `xmpp-lite` as a user does, in a process of its own, for the CLI tests."""

import os
import subprocess
import sys

COMMAND_TIMEOUT = 60


def cli(*args, cwd=None, env=None, timeout=COMMAND_TIMEOUT):
    """Run `xmpp-lite ARGS` in a process of its own (the user's $XMPP_LITE_STATE left out)."""
    if env is None:
        env = {name: value for name, value in os.environ.items() if name != "XMPP_LITE_STATE"}
    return subprocess.run([sys.executable, "-m", "host_tools"] + [str(a) for a in args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def one_line_error(result):
    """The one `xmpp-lite: error: ...` line of a failed command (exit 1, no traceback)."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmpp-lite: error: "), result.stderr
    return lines[0]
