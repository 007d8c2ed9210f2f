"""The demo's device: what a sensor board runs, here on the MicroPython VM (`xmpp-lite demo` starts it).

    MICROPYPATH=lib micropython host_tools/demo_device.py CONFIG.json

CONFIG (JSON): jid, password, host, port, ca (the CA certificate, DER),
resource, controller (the JID allowed to give commands), timeout_ms (login),
run_ms (how long to stay online at most; 0: until told "bye").

It logs in with STARTTLS, checking the server's certificate against the CA,
reports a made-up temperature by presence status and by a chat message to
the controller, and answers the controller's messages: "read" with a new
reading, "bye" by closing. One line per step on stdout; on failure one
"error: ..." line and exit status 1.
"""

import json
import sys

from xmpp_lite._compat import ticks_diff, ticks_ms
from xmpp_lite.client import Client

POLL_MS = 100


class Thermometer:
    """A made-up temperature sensor: a random walk around 21 C (a board reads an ADC pin here)."""

    def __init__(self):
        self.state = (ticks_ms() & 0xFFFF) | 1
        self.celsius = 20.0 + self._noise(20) / 10

    def _noise(self, span):
        # A linear congruential generator, high bits only (the low ones repeat quickly): 0 .. span.
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 16) % (span + 1)

    def read(self):
        self.celsius = min(max(self.celsius + (self._noise(10) - 5) / 10, 15.0), 30.0)
        return self.celsius


def bare(jid):
    slash = jid.find("/")
    return jid if slash < 0 else jid[:slash]


class Device:
    def __init__(self, config):
        self.config = config
        self.controller = config["controller"]
        self.sensor = Thermometer()
        self.client = Client(config["jid"], config["password"], host=config["host"], port=config["port"],
                             ca=config["ca"], resource=config["resource"])
        self.client.on_message = self.on_message
        self.done = False

    def report(self, to):
        reading = "%.1f C" % self.sensor.read()
        self.client.send_presence(status=reading, to=self.controller)
        self.client.send_message(to, "temperature " + reading)
        return reading

    def on_message(self, msg):
        body = msg.find_text("body")
        sender = msg.get("from") or ""
        if body is None or msg.get("type") == "error":
            return
        if bare(sender) != bare(self.controller):
            print("ignored a message from %s: not the controller" % sender)
            return
        command = body.strip().lower()
        if command == "read":
            print("'read' from %s: answered %s" % (sender, self.report(sender)))
        elif command == "bye":
            self.client.send_message(sender, "bye")
            print("'bye' from %s: closing" % sender)
            self.done = True
        else:
            self.client.send_message(sender, "unknown command '%s'; try: read, bye" % body)
            print("unknown command from %s: %s" % (sender, body))

    def run(self):
        jid = self.client.connect(self.config["timeout_ms"])
        print("online as %s (STARTTLS, server certificate checked against the test CA, %s)"
              % (jid, self.client.session.mechanism))
        print("reported %s by presence and by a message to %s" % (self.report(self.controller), self.controller))
        run_ms = self.config["run_ms"]
        start = ticks_ms()
        while not self.done and (not run_ms or ticks_diff(ticks_ms(), start) < run_ms):
            self.client.poll(POLL_MS)
        self.client.close()
        print("closed" if self.done else "closed: no 'bye' within %d ms" % run_ms)
        return self.done


def main(path):
    with open(path) as f:
        config = json.load(f)
    return Device(config).run()


if __name__ == "__main__":
    try:
        ok = main(sys.argv[1])
    except Exception as error:  # noqa: BLE001 - one line for the demo to show, not a traceback
        print("error: %s: %s" % (type(error).__name__, error))
        ok = False
    if not ok:
        sys.exit(1)
