"""A fleet of simulated devices against an XMPP server (one node or several), through link emulators, and the
controller that watches it.

Each device is the real device code with the configuration a board would have (xmpp_lite.config):

- runtime "micropython": firmware/main.py on the MicroPython unix VM, one process per device, with an
  ESP32-like heap cap, the library compiled to .mpy, and the fake ESP32 modules of host_tools/fakes;
- runtime "cpython": xmpp_lite.device's link and node in this process (for fleets too large for one VM
  each), polled by a few worker threads.

Every device connects through a LinkEmulator (host_tools.linkemu) with the chosen profile: one per
server address, the devices spread over them in turn (device 1 to the first address, device 2 to the
second, ...), so that a fleet is split over the nodes of a cluster. The server is anything with
``domain``, ``addresses()`` ([(host, port)]), ``ca_path``, ``ca_der_path`` and ``jid(user)``: a local
engine (host_tools.engines) or a RemoteServer. The Observer is the controller account on xmpp_lite's
Client, logged in at the first address: it counts each device's reports, keeps its last reading and
presence, and sends commands.

    fleet = Fleet(server, accounts, runtime="cpython", profile="gprs", work_dir=tmp)
    fleet.start()
    fleet.snapshot()       # {"devices": 10, "online": 10, "reconnects": 0, "messages": 42, ...}
    fleet.stop()
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

from host_tools.linkemu import PROFILES, LinkEmulator, loopback_address
from host_tools.resources import boards_dir, fakes_dir, firmware_dir, have_module, install_hint
from host_tools.tools import compile_library, find_tool
from xmpp_lite.node import bare

FIRMWARE_MAIN = os.path.join(firmware_dir(), "main.py")
FAKES = fakes_dir()
BOARD_PROFILE = os.path.join(boards_dir(), "esp32-devkitc.json")

RUNTIMES = ("micropython", "cpython")
VM_HEAP = "256k"  # per VM: the 64-bit VM's objects are about twice an ESP32's
# In-process devices get a thread each: a login over GPRS takes seconds and blocks, like on a board.
DEVICE_POLL_MS = 1000  # the longest a device's thread waits for input; heartbeats and reports wake it sooner
# Beyond this many devices, a thread each starves the process (the GIL, thousands of threads: about 2900
# devices was the most one process started on a 2-core machine). Larger fleets share DEVICE_GROUPS threads,
# each logging in its devices one after the other and then polling them in turn, GROUP_ROUND_MS apart.
THREAD_PER_DEVICE_MAX = 500
DEVICE_GROUPS = 32
GROUP_ROUND_MS = 200
THREAD_STACK_BYTES = 256 * 1024  # a thousand device threads with the default 8 MB stacks is a lot of address space
CONNECT_SPREAD_S = 0.005  # pause between two devices' starts, so that the server is not stormed
STOP_THREADS = 32  # devices closed at once when the fleet stops (each waits for its last acks)
RESOURCE = "sim"
STOP_TIMEOUT_S = 10.0
NS_SENSOR = "urn:xmpp-lite:sensor:0"


class FleetError(Exception):
    """The fleet could not be set up; one line for the user."""


class RemoteServer:
    """A server the fleet did not start: its domain, its c2s addresses, and the CA that signs its certificate."""

    def __init__(self, domain, addresses, ca_path, ca_der_path=None):
        self.domain = domain
        self._addresses = [tuple(address) for address in addresses]
        self.ca_path = ca_path
        self.ca_der_path = ca_der_path or ca_path  # xmpp_lite reads PEM and DER alike
        self.accounts = {}

    def jid(self, user):
        return "%s@%s" % (user, self.domain)

    def addresses(self):
        return list(self._addresses)

    def __repr__(self):
        return "RemoteServer(%r, %r)" % (self.domain, self._addresses)


# adafruit-blinka's board without hardware: analog pins that give a sine or random values, through the
# CircuitPython API that the in-process devices' "blinka_analog" sensors read.
BLINKA_ENV = {"BLINKA_OS_AGNOSTIC": "1", "BLINKA_FORCEBOARD": "OS_AGNOSTIC_BOARD", "BLINKA_FORCECHIP": "OS_AGNOSTIC"}


def device_config(server, user, password, port, controller, interval_s, index, runtime="micropython",
                  host="127.0.0.1"):
    """The config.json a simulated board gets (checked by xmpp_lite.config).

    The light sensor is an ADC pin of the fake machine module on the VM, a blinka analog pin on CPython.
    """
    if runtime == "micropython":
        light = {"name": "light", "kind": "adc", "pin": 34, "scale": 0.01}
    else:
        light = {"name": "light", "kind": "blinka_analog", "pin": "Ax_INPUT_WAVE_SINE"}
    return {
        "network": {"kind": "none"},
        "xmpp": {"jid": server.jid(user), "password": password, "server": host, "port": port,
                 "ca": "ca.der", "resource": RESOURCE},
        "controller": controller,
        "report": {"interval_s": interval_s},
        "device": {"watchdog_s": 0, "ntp": False},
        "sensors": [
            {"name": "temp", "kind": "simulated", "base": 18 + index % 8, "amplitude": 2, "period_s": 120},
            light,
        ],
    }


class Observer:
    """The controller's view of the fleet: per device its presence, last reading, reports and reconnects."""

    def __init__(self, jid, password, resource="fleet", **client_options):
        from xmpp_lite.client import Client

        self.client = Client(jid, password, resource=resource, **client_options)
        self.jid = jid
        self.devices = {}  # bare JID -> dict
        self.replies = []  # (time, from, body) of non-report messages
        self.messages = 0
        self.error = None
        self._lock = threading.Lock()
        self._outbox = queue.Queue()
        self._stop = threading.Event()
        self._thread = None
        self.client.on_message = self._on_message
        self.client.on_presence = self._on_presence

    def start(self, timeout_ms=15000):
        self.client.connect(timeout_ms)
        self.client.send_presence()  # available: messages to the bare JID reach us
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._thread.start()

    def watch(self, jid):
        with self._lock:
            self.devices.setdefault(bare(jid), self._blank())

    def _blank(self):
        # available: None until a presence or a report says; a report comes only from a board that is online.
        return {"available": None, "status": "", "reading": "", "last_report": None, "reports": 0,
                "reconnects": 0, "history": []}

    def _entry(self, jid):
        return self.devices.setdefault(bare(jid), self._blank())

    def _on_message(self, msg):
        from xmpp_lite.node import report_readings

        body = msg.find_text("body")
        if body is None or msg.get("type") == "error":
            return
        readings = report_readings(msg)  # either report format (xmpp_lite.node, docs/wire.md)
        with self._lock:
            if readings is None:
                self.replies.append((time.time(), msg.get("from"), body))
                del self.replies[:-100]
                return
            self.messages += 1
            entry = self._entry(msg.get("from"))
            entry["reading"] = body
            entry["available"] = True
            entry["last_report"] = time.time()
            entry["reports"] += 1
            self._note_reconnects(entry, msg.find("readings", NS_SENSOR))
            if readings and readings[0][1] is not None:
                entry["history"].append(float(readings[0][1]))
                del entry["history"][:-60]

    @staticmethod
    def _note_reconnects(entry, element):
        # The compact report leaves them to the status summary in presence; the full one carries them.
        if element is not None and (element.get("reconnects") or "").isdigit():
            entry["reconnects"] = int(element.get("reconnects"))

    def _on_presence(self, presence):
        kind = presence.get("type")
        if kind == "subscribe" or bare(presence.get("from")) == bare(self.jid):
            return  # requests are the device's business; our own other sessions are not devices
        with self._lock:
            entry = self._entry(presence.get("from"))
            entry["available"] = kind is None
            if kind is None:
                entry["status"] = presence.find_text("status") or ""
                self._note_reconnects(entry, presence.find("readings", NS_SENSOR))

    def subscribe(self, jid):
        """Ask to see the device's presence (the node approves its controller)."""
        from xmpp_lite.stanza import presence

        self._outbox.put(presence(to=bare(jid), type="subscribe"))

    def command(self, jid, text):
        from xmpp_lite.stanza import message

        self._outbox.put(message(to=jid, body=text, type="chat"))

    def _run(self):
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        stanza = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    self.client.send(stanza)
                self.client.poll(50)
        except Exception as error:  # noqa: BLE001 - shown by whoever reads the fleet's state
            self.error = error

    def view(self):
        """A copy of the per-device state, safe to read while the observer runs."""
        with self._lock:
            out = {}
            for jid, entry in self.devices.items():
                copy = dict(entry)
                copy["history"] = list(entry["history"])
                out[jid] = copy
            return out

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.close()


class VmDevice:
    """firmware/main.py on the MicroPython VM, in a flash folder of its own."""

    def __init__(self, name, folder, config, ca_der, mpy_lib, heap):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f)
        shutil.copy(BOARD_PROFILE, os.path.join(folder, "board.json"))
        shutil.copy(ca_der, os.path.join(folder, "ca.der"))
        micropython = find_tool("micropython")
        if micropython is None:
            raise FleetError("no micropython binary; " + install_hint("micropython"))
        self.name = name
        self.state = "starting"
        self.online_count = 0
        self.lines = []
        env = dict(os.environ, MICROPYPATH=":".join((".frozen", FAKES, mpy_lib)))
        self.process = subprocess.Popen([micropython, "-X", "heapsize=" + heap, FIRMWARE_MAIN], cwd=folder, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            del self.lines[:-50]
            if line.startswith("xmpp_lite: online"):
                self.state = "online"
                self.online_count += 1
            elif line.startswith("xmpp_lite: offline"):
                self.state = "offline"
            elif line.startswith("xmpp_lite: stopped") or line.startswith("xmpp_lite: crashed"):
                self.state = "stopped"
        self.state = "exited"

    @property
    def reconnects(self):
        return max(self.online_count - 1, 0)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class InProcessDevice:
    """xmpp_lite.device's link and node, run by a worker thread of this process."""

    def __init__(self, name, config, ca_pem):
        from xmpp_lite.config import check
        from xmpp_lite.device import make_link, make_node

        config = check(config)
        self.name = name
        self.link = make_link(config, ca=ca_pem)
        # No board profile: its outputs are machine.Pin, which CPython has not; the sensors are in config.
        self.node = make_node(config, {}, self.link)
        self.started = False
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    @property
    def state(self):
        if self.error is not None:
            return "stopped"
        return self.link.state if self.started else "starting"

    @property
    def reconnects(self):
        return max(self.link.stats["online"] - 1, 0)

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self):
        from xmpp_lite._compat import ticks_ms

        try:
            self.link.connect()
            self.started = True
            self.node.start(ticks_ms())
            while not self._stop.is_set():
                self.link.poll(DEVICE_POLL_MS)
                self.node.tick(ticks_ms())
        except Exception as error:  # noqa: BLE001 - a fatal error stops this device, not the fleet
            self.error = error

    def signal_stop(self):
        """Ask the device's thread to end (it does within DEVICE_POLL_MS); stop() waits for it."""
        self._stop.set()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        try:
            self.link.close(timeout_ms=500)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass


class DeviceGroup:
    """One thread for many InProcessDevices: each logs in (blocking, as on a board), and every round the
    thread polls every device without waiting (``poll(0)``) and ticks its node; rounds are GROUP_ROUND_MS
    apart. A login blocks the group's other devices meanwhile, as a reconnection does."""

    def __init__(self, devices, name):
        self.devices = devices
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        for device in devices:
            device._stop = self.stop_event
            device._thread = self.thread

    def start(self, spread_s):
        self._spread_s = spread_s
        self.thread.start()

    def _run(self):
        from xmpp_lite._compat import ticks_ms

        online = []
        waiting = list(self.devices)
        next_login = time.monotonic()
        while not self.stop_event.is_set():
            started = time.monotonic()
            if waiting and started >= next_login:
                device = waiting.pop(0)
                try:
                    device.link.connect()
                    device.started = True
                    device.node.start(ticks_ms())
                    online.append(device)
                except Exception as error:  # noqa: BLE001 - a fatal error stops this device, not the group
                    device.error = error
                next_login = started + self._spread_s
            for device in online:
                if device.error is not None:
                    continue
                try:
                    device.link.poll(0)
                    device.node.tick(ticks_ms())
                except Exception as error:  # noqa: BLE001
                    device.error = error
            if not waiting:
                self.stop_event.wait(max(GROUP_ROUND_MS / 1000 - (time.monotonic() - started), 0))


class Fleet:
    """``accounts``: [(user, password)] of the devices; ``controller``: (user or JID, password) of the observer,
    the account the devices report to."""

    def __init__(self, server, accounts, controller, runtime="cpython", profile="wifi", interval_s=10,
                 work_dir=None, heap=VM_HEAP, seed=1, connect_spread_s=CONNECT_SPREAD_S):
        if runtime not in RUNTIMES:
            raise FleetError("runtime must be one of %s, not %r" % (", ".join(RUNTIMES), runtime))
        if profile not in PROFILES:
            raise FleetError("link profile must be one of %s, not %r" % (", ".join(sorted(PROFILES)), profile))
        self.server = server
        self.accounts = list(accounts)
        self.controller = controller
        self.runtime = runtime
        self.profile = profile
        self.interval_s = interval_s
        self.work_dir = work_dir
        self.heap = heap
        self.seed = seed
        self.connect_spread_s = connect_spread_s  # pause between two devices' starts
        self.addresses = server.addresses()
        if not self.addresses:
            raise FleetError("the server has no address to connect to")
        self.links = []
        self.groups = []
        self.observer = None
        self.devices = []
        self.started_at = None

    @property
    def link(self):
        """The link emulator of the first address."""
        return self.links[0] if self.links else None

    def link_of(self, index):
        """The link emulator device ``index`` (0-based) goes through (None: direct): the addresses take turns."""
        return self.links[index % len(self.links)]

    def endpoint_of(self, index):
        """(host, port) device ``index`` connects to: its link emulator, or its server address directly."""
        link = self.link_of(index)
        if link is None:
            return self.addresses[index % len(self.addresses)]
        return "127.0.0.1", link.port

    def start(self):
        with open(self.server.ca_der_path, "rb"):
            pass  # fail early and clearly if the server has no CA (a server started without TLS)
        for number, address in enumerate(self.addresses):
            try:
                loopback_address(*address)
            except ValueError:
                # The emulator forwards to loopback only: devices reach a server elsewhere directly.
                self.links.append(None)
                continue
            self.links.append(LinkEmulator(target=address, profile=PROFILES[self.profile],
                                           seed=self.seed + number).start())
        name = self.controller[0]
        controller_jid = name if "@" in name else self.server.jid(name)
        host, port = self.addresses[0]
        self.observer = Observer(controller_jid, self.controller[1], host=host, port=port, ca=self.server.ca_path)
        self.observer.start()
        self.started_at = time.time()
        if self.runtime == "micropython":
            self._start_vms(controller_jid)
        else:
            self._start_in_process(controller_jid)
        for user, _ in self.accounts:
            self.observer.watch(self.server.jid(user))
        return self

    def _start_vms(self, controller_jid):
        mpy_cross = find_tool("mpy-cross")
        if mpy_cross is None:
            raise FleetError("no mpy-cross; " + install_hint("mpy-cross"))
        mpy_lib = compile_library(mpy_cross, os.path.join(self.work_dir, "mpy"))
        for index, (user, password) in enumerate(self.accounts):
            host, port = self.endpoint_of(index)
            config = device_config(self.server, user, password, port, controller_jid, self.interval_s, index,
                                   host=host)
            self.devices.append(VmDevice(user, os.path.join(self.work_dir, "flash", user), config,
                                         self.server.ca_der_path, mpy_lib, self.heap))
            time.sleep(self.connect_spread_s)

    def _start_in_process(self, controller_jid):
        with open(self.server.ca_path, "rb") as f:
            ca_pem = f.read()
        if not have_module("analogio"):
            raise FleetError("the cpython runtime reads sensors through adafruit-blinka, which is not installed; "
                             + install_hint("adafruit-blinka"))
        for name, value in BLINKA_ENV.items():
            os.environ.setdefault(name, value)  # before blinka's first import
        for index, (user, password) in enumerate(self.accounts):
            host, port = self.endpoint_of(index)
            config = device_config(self.server, user, password, port, controller_jid, self.interval_s, index,
                                   runtime="cpython", host=host)
            self.devices.append(InProcessDevice(user, config, ca_pem))
        previous = threading.stack_size(THREAD_STACK_BYTES)
        try:
            if len(self.devices) <= THREAD_PER_DEVICE_MAX:
                for device in self.devices:
                    device.start()
                    time.sleep(self.connect_spread_s)
            else:
                # Device i in group i % DEVICE_GROUPS: each group's logins come connect_spread_s * groups apart.
                self.groups = [DeviceGroup(self.devices[number::DEVICE_GROUPS], "devices-%d" % number)
                               for number in range(DEVICE_GROUPS)]
                for group in self.groups:
                    group.start(self.connect_spread_s * DEVICE_GROUPS)
                    time.sleep(self.connect_spread_s)
        finally:
            threading.stack_size(previous)

    def snapshot(self):
        """Counts for the live summary and the JSON one."""
        states = [device.state for device in self.devices]
        view = self.observer.view() if self.observer else {}
        elapsed = time.time() - self.started_at if self.started_at else 0
        return {
            "devices": len(self.devices),
            "runtime": self.runtime,
            "link": self.profile,
            "elapsed_s": round(elapsed, 1),
            "online": states.count("online"),
            "offline": states.count("offline"),
            "starting": states.count("starting"),
            "stopped": states.count("stopped") + states.count("exited"),
            "reconnects": sum(device.reconnects for device in self.devices),
            "messages": self.observer.messages if self.observer else 0,
            "reporting": sum(1 for entry in view.values() if entry["reports"]),
            "errors": self._errors(),
            "link_stats": self._link_stats(),
            "servers": ["%s:%d" % address for address in self.addresses],
            "online_per_server": [sum(1 for index, device in enumerate(self.devices)
                                      if index % len(self.addresses) == number and device.state == "online")
                                  for number in range(len(self.addresses))],
        }

    def _link_stats(self):
        """The link emulators' counters, summed."""
        total = {}
        for link in filter(None, self.links):
            for key, value in link.stats.items():
                if isinstance(value, (int, float)):
                    total[key] = total.get(key, 0) + value
        return total

    def _errors(self):
        """{message: how many devices} of the errors that stopped devices."""
        errors = {}
        for device in self.devices:
            error = getattr(device, "error", None)
            if error is not None:
                text = "%s: %s" % (type(error).__name__, error)
                errors[text] = errors.get(text, 0) + 1
        return errors

    def stop(self):
        from concurrent.futures import ThreadPoolExecutor

        for device in self.devices:  # all at once: each one's thread needs up to DEVICE_POLL_MS to notice
            getattr(device, "signal_stop", lambda: None)()
        with ThreadPoolExecutor(max_workers=STOP_THREADS) as pool:
            list(pool.map(lambda device: device.stop(), self.devices))
        if self.observer is not None:
            try:
                self.observer.stop()
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
        for link in filter(None, self.links):
            link.stop()


def create_accounts(server, users, threads=8):
    """Register ``users`` on ``server`` by in-band registration, several at a time, at its addresses in
    turn; [(user, password)]."""
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    from xmpp_lite.client import Client

    addresses = server.addresses()

    def register(index, user):
        password = secrets.token_urlsafe(12)
        host, port = addresses[index % len(addresses)]
        Client(server.jid(user), password, host=host, port=port, ca=server.ca_path).register()
        return user, password

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(register, index, user) for index, user in enumerate(users)]
        accounts = []
        for future in futures:
            try:
                accounts.append(future.result())
            except Exception as error:  # noqa: BLE001 - one line for the user
                raise FleetError("cannot create the simulated accounts: %s" % error)
    return accounts


def remove_accounts(server, accounts, threads=8):
    """Delete ``accounts`` ([(user, password)]): each logs in and cancels its registration (XEP-0077
    <remove/>), several at a time. Returns how many are gone; failures are counted, not raised (this
    runs while a run is being stopped)."""
    from concurrent.futures import ThreadPoolExecutor

    addresses = server.addresses()

    def remove(index, user, password):
        host, port = addresses[index % len(addresses)]
        try:
            cancel_registration(server.jid(user), password, host, port, server.ca_path)
            return True
        except Exception:  # noqa: BLE001 - counted by the caller
            return False

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = pool.map(lambda item: remove(item[0], *item[1]), enumerate(accounts))
        return sum(1 for ok in done if ok)


REMOVE_TIMEOUT_S = 10.0


def cancel_registration(jid, password, host, port, ca):
    """Log in as ``jid`` and remove the account (XEP-0077 section 3.2); raises if the server says no."""
    from xmpp_lite.client import Client
    from xmpp_lite.stanza import Element

    client = Client(jid, password, host=host, port=port, ca=ca, resource="remove")
    answers = []
    client.on_iq = answers.append
    client.connect(int(REMOVE_TIMEOUT_S * 1000))
    try:
        stanza_id = client.send_iq("set", Element("query", xmlns="jabber:iq:register",
                                                  children=[Element("remove")]))
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        while not any(iq.get("id") == stanza_id for iq in answers) and time.monotonic() < deadline:
            try:
                client.poll(50)
            except Exception:  # noqa: BLE001 - the server may close the stream of a removed account
                break
        answer = next((iq for iq in answers if iq.get("id") == stanza_id), None)
        if answer is None:
            raise FleetError("%s: no answer to the removal" % jid)
        if answer.get("type") != "result":
            raise FleetError("%s: the server refused the removal" % jid)
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - the stream may be gone already
            pass
