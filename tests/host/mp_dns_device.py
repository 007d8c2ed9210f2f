"""One login found by DNS SRV or a server list, on MicroPython or CPython; driven by tests/host/test_dns_failover.py.

    micropython -X heapsize=160k tests/host/mp_dns_device.py CONFIG.json
    python tests/host/mp_dns_device.py CONFIG.json

CONFIG holds the library path, the account, the CA, the TLS mode and either a
name server (SRV lookup of the JID's domain) or a server list. The script
prints "ONLINE <host> <port> <tls> <jid>" once logged in, or "ERROR <type>
<text>", then closes.
"""

import json
import sys

config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["lib"])

from xmpp_lite.client import Client  # noqa: E402

options = {"tls": config["tls"], "ca": config["ca"], "resource": "dns"}
for key in ("nameserver", "servers", "port"):
    if config.get(key):
        options[key] = config[key]
client = Client(config["jid"], config["password"], **options)
try:
    jid = client.connect(config["timeout_ms"])
except Exception as error:  # noqa: BLE001 - the test reads the kind of failure
    print("ERROR %s %s" % (type(error).__name__, error))
else:
    print("ONLINE %s %d %s %s" % (client.host, client.port, client.session.tls, jid))
    client.close()
