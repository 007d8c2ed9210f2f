"""`xmpp-lite demo`: one device on the MicroPython VM and its controller, through a local Prosody.

In order:

1. start Prosody from a generated config in a temporary state directory, on a
   free loopback port, STARTTLS required, with a throw-away test CA
   (host_tools.server), and create two accounts: the device and the controller;
2. log the controller in (xmpp_lite's client on CPython, in this process);
3. start the device, host_tools/demo_device.py on the MicroPython VM with lib/
   on its path: it logs in with STARTTLS checking the server's certificate
   against the test CA, and reports a temperature by presence status and by a
   chat message;
4. the controller asks for a new reading ("read"), then says "bye"; the device
   answers, closes its stream and exits;
5. everything stops and the temporary directory is removed.

The controller prints what it receives, the device's own lines are shown
prefixed with "device:". Every wait is bounded; a failure is one DemoError line.
With ``keep_running`` the controller asks for a reading every few seconds
until Ctrl-C instead of saying "bye" at once.
"""

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from host_tools.server import LOOPBACK, ServerError, ProsodyServer
from host_tools.tools import find_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
DEVICE_SCRIPT = os.path.join(ROOT, "host_tools", "demo_device.py")

DEVICE_USER = "sensor1"
DEVICE_RESOURCE = "board"
CONTROLLER_USER = "controller"
CONTROLLER_RESOURCE = "desk"
VM_HEAPSIZE = "256k"  # the GC heap cap the device tests use, well below what an ESP32 has free
LOGIN_TIMEOUT_MS = 10000
STEP_TIMEOUT = 10.0  # seconds for the device to do what the controller waits for
DEVICE_RUN_MS = 60000  # the device gives up on its own after this long without "bye"
STOP_TIMEOUT = 5.0
READ_INTERVAL = 5.0  # seconds between readings with keep_running
POLL_MS = 50


class DemoError(Exception):
    """The demo could not run or went wrong; the message is one line for the user."""


def say(line):
    print(line, flush=True)


def find_micropython():
    exe = find_tool("micropython")
    if exe is None:
        raise DemoError("no micropython binary beside %s or on PATH; run `make bootstrap`" % sys.executable)
    return exe


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe(error):
    return "%s: %s" % (type(error).__name__, first_line(error))


class DeviceProcess:
    """demo_device.py on the MicroPython VM; its output lines are collected by a thread."""

    def __init__(self, micropython, config_path):
        env = dict(os.environ, MICROPYPATH=LIB + ":.frozen")
        try:
            self.process = subprocess.Popen(
                [micropython, "-X", "heapsize=" + VM_HEAPSIZE, DEVICE_SCRIPT, config_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                start_new_session=True)  # Ctrl-C goes to the demo, which tells the device "bye"
        except OSError as error:
            raise DemoError("cannot start the MicroPython VM: %s" % first_line(error))
        self.lines = queue.Queue()
        self.last_line = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def show_output(self):
        """Print what the device said since the last call."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            self.last_line = line
            say("device: " + line)

    def exited(self):
        return self.process.poll() is not None

    def failure(self):
        """One line about why the device stopped."""
        self.reader.join(1)
        self.show_output()
        return "the device stopped (exit status %s): %s" % (self.process.returncode, self.last_line or "no output")

    def stop(self, timeout=STOP_TIMEOUT):
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self.reader.join(1)
        self.show_output()
        self.process.stdout.close()
        return self.process.returncode


class Controller:
    """The controller account: xmpp_lite's client on CPython, printing what it receives."""

    def __init__(self, server, device_jid):
        from xmpp_lite.client import Client

        self.device_jid = device_jid
        self.jid = None  # the controller's own full JID, once online
        self.messages = []  # bodies from the device
        self.statuses = []  # presence statuses from the device
        self.client = Client(server.jid(CONTROLLER_USER), server.accounts[CONTROLLER_USER], host=LOOPBACK,
                             port=server.c2s_port, ca=server.ca_path, resource=CONTROLLER_RESOURCE)
        self.client.on_message = self._on_message
        self.client.on_presence = self._on_presence
        try:
            self.jid = self.client.connect(LOGIN_TIMEOUT_MS)
            self.client.send_presence()
        except Exception as error:  # noqa: BLE001 - OSError, AuthError, StreamError, ProtocolError
            raise DemoError("the controller could not log in: %s" % describe(error)) from None

    def _on_message(self, msg):
        sender = msg.get("from")
        body = msg.find_text("body")
        if body is None:
            return
        if msg.get("type") == "error":
            say("controller: error from %s" % sender)
            return
        say('controller: message from %s: "%s"' % (sender, body))
        if sender == self.device_jid:
            self.messages.append(body)

    def _on_presence(self, presence):
        sender = presence.get("from")
        if sender == self.jid:
            return  # the server's echo of our own presence
        if presence.get("type") == "unavailable":
            say("controller: presence from %s: unavailable" % sender)
            return
        status = presence.find_text("status")
        say("controller: presence from %s: available%s" % (sender, ', status "%s"' % status if status else ""))
        if sender == self.device_jid and status:
            self.statuses.append(status)

    def send(self, body):
        say('controller: sends "%s" to %s' % (body, self.device_jid))
        self.client.send_message(self.device_jid, body)

    def wait_for(self, what, predicate, device, timeout=STEP_TIMEOUT):
        """Poll until predicate() holds; DemoError if the device stops first or after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            device.show_output()
            if device.exited():
                if predicate():
                    break
                raise DemoError("waiting for %s: %s" % (what, device.failure()))
            if time.monotonic() > deadline:
                raise DemoError("no %s from the device within %.0f s" % (what, timeout))
            self.poll()
        device.show_output()

    def poll(self):
        try:
            self.client.poll(POLL_MS)
        except Exception as error:  # noqa: BLE001 - OSError, StreamError, ProtocolError
            raise DemoError("the controller lost its connection: %s" % describe(error)) from None

    def ask_reading(self, device):
        count = len(self.messages)
        self.send("read")
        self.wait_for("answer to 'read'", lambda: len(self.messages) > count, device)

    def close(self):
        self.client.close()


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the device's password
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _start_server(work):
    server = ProsodyServer(os.path.join(work, "server"), tls=True, require_encryption=True, direct_tls_port=False)
    server.start()
    try:
        for user in (DEVICE_USER, CONTROLLER_USER):
            server.register(user, secrets.token_urlsafe(12))
    except BaseException:
        server.stop()
        raise
    return server


def _session(work, micropython, keep_running, resources):
    server = _start_server(work)
    resources.append(server.stop)
    say("demo: Prosody on %s:%d for the domain %s, STARTTLS required, certificate from a throw-away test CA"
        % (LOOPBACK, server.c2s_port, server.domain))
    say("demo: accounts %s (the device) and %s" % (server.jid(DEVICE_USER), server.jid(CONTROLLER_USER)))

    device_jid = "%s/%s" % (server.jid(DEVICE_USER), DEVICE_RESOURCE)
    controller = Controller(server, device_jid)
    resources.append(controller.close)
    say("controller: online as %s (xmpp_lite on CPython)" % controller.jid)

    config_path = os.path.join(work, "device.json")
    _write_private(config_path, json.dumps({
        "jid": server.jid(DEVICE_USER), "password": server.accounts[DEVICE_USER], "host": LOOPBACK,
        "port": server.c2s_port, "ca": server.ca_der_path, "resource": DEVICE_RESOURCE,
        "controller": controller.jid, "timeout_ms": LOGIN_TIMEOUT_MS, "run_ms": 0 if keep_running else DEVICE_RUN_MS,
    }))
    device = DeviceProcess(micropython, config_path)
    resources.append(device.stop)
    say("demo: device started on the MicroPython VM (-X heapsize=%s)" % VM_HEAPSIZE)

    controller.wait_for("presence with a reading", lambda: controller.statuses, device)
    controller.wait_for("message with a reading", lambda: controller.messages, device)
    controller.ask_reading(device)
    if keep_running:
        say("demo: asking for a reading every %.0f s; Ctrl-C stops" % READ_INTERVAL)
        try:
            while True:
                next_read = time.monotonic() + READ_INTERVAL
                while time.monotonic() < next_read:
                    controller.poll()
                    device.show_output()
                    if device.exited():
                        raise DemoError(device.failure())
                controller.ask_reading(device)
        except KeyboardInterrupt:
            say("demo: interrupted; stopping")
    controller.send("bye")
    controller.wait_for("end of the device's run", device.exited, device, timeout=STOP_TIMEOUT + STEP_TIMEOUT)
    status = device.stop()
    if status != 0:
        raise DemoError(device.failure())
    # The device's stream end comes after its last words; show whatever is still on the way.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        controller.poll()


def run_demo(keep_running=False):
    """Run the demo; raises DemoError with a one-line reason on failure."""
    started = time.monotonic()
    micropython = find_micropython()
    work = tempfile.mkdtemp(prefix="xmpp-lite-demo-")
    resources = []  # what to stop, in reverse order
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        # A plain `kill` should clean up as Ctrl-C does: no Prosody or VM left behind.
        previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        _session(work, micropython, keep_running, resources)
    except ServerError as error:
        raise DemoError("local Prosody: %s" % first_line(error)) from None
    except DemoError:
        raise
    except Exception as error:  # noqa: BLE001 - anything else still ends in one line
        raise DemoError(describe(error)) from None
    finally:
        for stop in reversed(resources):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the rest whatever one of them does
                pass
        shutil.rmtree(work, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    say("demo: everything stopped; done in %.1f s" % (time.monotonic() - started))


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    """`python -m host_tools.demo [--keep-running]`, the same as `xmpp-lite demo`."""
    from host_tools.__main__ import main as cli_main

    return cli_main(["demo"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
