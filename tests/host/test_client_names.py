"""What the client's construction and connection code cost in interned names, and the constants it folds.

On MicroPython every interned name (qstr) stays for good, and the session's names sit close to the line
where the VM allocates its next name pool (about 7 KB, never freed). Constructing a Client with a given
host must not load the DNS code, and interns only the names of its option check. The connection code
folds the session's event kinds into its own code (const) instead of importing them:
nothing but the test below keeps those copies equal to xmpp_lite.session's. Logging in again, with
its random SCRAM nonces, interns no new name.
"""

import re
import subprocess
from pathlib import Path

import pytest

from host_tools.tools import find_tool

ROOT = Path(__file__).resolve().parent.parent.parent
LIB = ROOT / "lib" / "xmpp_lite"
HEAP_SIZE = "256k"
TIMEOUT_SECONDS = 60
# checks' module name, its two file names, check_client's neighbours check_backoff and check_heartbeat,
# and "[" and "]" (the IPv6 brackets of a server entry): 7 when measured.
MAX_NEW_NAMES = 8

CONSTRUCT = """
import sys, micropython
sys.path.insert(0, sys.argv[1])
from xmpp_lite.client import Client
micropython.qstr_info()
client = Client("device1@example.net", "secret", %s)
micropython.qstr_info()
print("LOADED", " ".join(sorted(name for name in sys.modules if name.startswith("xmpp_lite"))))
print("SERVERS", client.servers)
"""

_FOLDED = re.compile(r"^(_?)(EVENT_[A-Z_]+) = const\((\d+)\)", re.M)


def _constants(module, private):
    text = (LIB / module).read_text()
    return {name: value for prefix, name, value in _FOLDED.findall(text) if bool(prefix) == private}


@pytest.mark.parametrize("options", ['host="127.0.0.1", tls="none"', 'tls="none"',
                                     'servers=["a.example.net", "[::1]:5224"], tls="none"'])
def test_constructing_a_client_loads_no_dns_code_and_interns_few_names(options, mpy_lib):
    exe = find_tool("micropython")
    if exe is None:
        pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
    result = subprocess.run([exe, "-X", "heapsize=" + HEAP_SIZE, "-c", CONSTRUCT % options, mpy_lib],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output
    before, after = [int(count) for count in re.findall(r"n_qstr=(\d+)", output)]
    loaded = re.search(r"^LOADED (.*)$", output, re.M).group(1).split()
    assert "xmpp_lite.dns" not in loaded and "xmpp_lite.checks" not in loaded, output
    assert after - before <= MAX_NEW_NAMES, output


def test_the_folded_session_constants_equal_the_sessions():
    session = _constants("session.py", private=False)
    assert len([name for name in session if name.startswith("EVENT_")]) == 11
    for module in ("client.py", "connecting.py"):
        copies = _constants(module, private=True)
        assert {name: session.get(name) for name in copies} == copies, module
    assert _constants("client.py", private=True)


def test_the_ping_namespace_is_the_responders():
    from xmpp_lite import responder

    assert 'xmlns="%s"' % responder.NS_PING in (LIB / "client.py").read_text()


LOGINS = """
import sys, micropython
sys.path.insert(0, sys.argv[1])
from xmpp_lite.client import Client
client = Client(%r, %r, host="127.0.0.1", port=%d, tls=%r, ca=%r)
for _ in range(3):
    client.connect(15000)
    client.send_message(%r, "names")
    client.close()
    micropython.qstr_info()
"""


@pytest.mark.parametrize("tls", ["none", "required"])
def test_logging_in_again_interns_no_new_name(prosody, prosody_plain, tls, mpy_lib):
    # A name interned at each login (a character of a random SCRAM nonce taken from a str, say) would
    # bring the VM to its next name pool mid-login some day, when the heap may have no 7 KB in one piece.
    exe = find_tool("micropython")
    if exe is None:
        pytest.fail("no micropython binary; run `make bootstrap`", pytrace=False)
    server = prosody_plain if tls == "none" else prosody
    script = LOGINS % (server.jid("device1"), server.accounts["device1"], server.c2s_port, tls,
                       None if tls == "none" else server.ca_der_path, server.jid("device2"))
    result = subprocess.run([exe, "-X", "heapsize=" + HEAP_SIZE, "-c", script, mpy_lib],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS)
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output
    counts = [int(count) for count in re.findall(r"n_qstr=(\d+)", output)]
    assert len(counts) == 3 and counts[0] == counts[1] == counts[2], output
