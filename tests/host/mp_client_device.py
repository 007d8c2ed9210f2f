"""xmpp_lite.client on the MicroPython VM against a real server, driven by tests/host/test_client_prosody.py.

    micropython -X heapsize=256k tests/host/mp_client_device.py CONFIG.json

CONFIG holds the library path, host, ports, CA files and credentials. The
script prints one line per result; the test reads them. In its last part it
stays online and echoes every chat message back to its sender (a body "quit"
ends the run), so that the test can exchange messages, pings and disco
queries with it through an independent client.
"""

import gc
import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

from xmpp_lite.client import Client, TLSError  # noqa: E402
from xmpp_lite.sasl import AuthError  # noqa: E402

TIMEOUT_MS = config["timeout_ms"]


def client(password=None, **options):
    return Client(config["jid"], password or config["password"], host=config["host"], **options)


def wrong_certificate():
    try:
        client(port=config["port"], ca=config["wrong_ca"]).connect(TIMEOUT_MS)
        print("WRONG-CERT accepted")
    except TLSError:
        print("WRONG-CERT refused")


def wrong_password():
    auths = []
    device = client(password="not-the-password", port=config["port"], ca=config["ca_der"])
    device.trace = lambda direction, data: auths.append(data.count(b"<auth")) if direction == "send" else None
    try:
        device.connect(TIMEOUT_MS)
        print("BAD-PASSWORD accepted")
    except AuthError as error:
        print("BAD-PASSWORD %s %d" % (error.condition, sum(auths)))


def plain_in_the_clear():
    if config.get("plain_over_tls"):  # a server without a plaintext twin: PLAIN inside STARTTLS
        device = client(port=config["port"], ca=config["ca_der"], mechanisms=("PLAIN",))
    else:
        device = client(password=config["plain_password"], port=config["plain_port"], tls="none",
                        insecure_plain=True, mechanisms=("PLAIN",))
    jid = device.connect(TIMEOUT_MS)
    print("PLAIN %s %s %d" % (jid, device.session.mechanism, device.session.flights))
    device.close()


def each_mechanism():
    for name in config.get("mechanisms", ()):
        device = client(port=config["port"], ca=config["ca_der"], mechanisms=(name,))
        device.connect(TIMEOUT_MS)
        print("MECHANISM %s %s" % (name, device.session.mechanism))
        device.close()


def register_and_log_in():
    options = {"host": config["host"], "port": config["port"], "ca": config["ca_der"]}
    user = Client(config["new_jid"], config["new_password"], **options).register(timeout_ms=TIMEOUT_MS)
    print("REGISTERED " + user)
    device = Client(config["new_jid"], config["new_password"], **options)
    print("NEW-ONLINE " + device.connect(TIMEOUT_MS))
    device.close()


def echo_until_quit():
    device = client(port=config["port"], ca=config["ca_der"], resource="vm", sasl_cache={})
    done = []

    def on_message(msg):
        body = msg.find_text("body")
        if body is None or msg.get("type") == "error":
            return
        if body == "quit":
            done.append(True)
            return
        device.send_message(msg.get("from"), body)

    device.on_message = on_message
    jid = device.connect(TIMEOUT_MS)
    gc.collect()
    # The login's code and the connection code are gone once online.
    loaded = "sasl-loaded" if "xmpp_lite.sasl" in sys.modules or "xmpp_lite.connecting" in sys.modules \
        else "sasl-unloaded"
    print("ONLINE %s %s %d %s" % (jid, device.session.mechanism, gc.mem_alloc(), loaded))
    device.send_presence(status=config["status"], to=config["controller"])
    polls = 0
    while not done and polls < config["max_polls"]:
        device.poll(50)
        polls += 1
    device.close()
    print("BYE" if done else "GAVE-UP")


wrong_certificate()
wrong_password()
plain_in_the_clear()
each_mechanism()
register_and_log_in()
echo_until_quit()
