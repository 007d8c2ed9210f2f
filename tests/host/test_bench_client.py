"""tests/bench/bench_client.py: its options do what its --help says (the heap part itself is `make bench`'s)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_client.py"
TIMEOUT_SECONDS = 120


def _run(*args):
    result = subprocess.run([sys.executable, str(BENCH)] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS)
    return result.returncode, result.stdout.decode("utf-8", "replace")


def test_help_names_every_option():
    status, output = _run("--help")
    assert status == 0, output
    for option in ("--part {all,wire,heap}", "--link {both,plaintext,starttls}"):
        assert option in output, output
    assert "Starts its own Prosody servers" in " ".join(output.split())


def test_a_bad_option_value_is_one_line_and_an_error():
    status, output = _run("--link", "tcp")
    assert status == 2 and "invalid choice: 'tcp'" in output, output


def test_the_wire_part_alone_measures_the_wire_and_no_heap():
    status, output = _run("--part", "wire")
    assert status == 0, output
    assert "wire: log in, presence with a status, one chat message" in output
    assert "xmpp_lite VM, default" in output and "target xmpp_lite VM, default" in output
    assert "heap:" not in output and "smallest heap" not in output
