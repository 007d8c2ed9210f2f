"""A fake of MicroPython's ESP32 ``network`` module: Wi-Fi station and PPP (see README.md beside this file)."""

from _fakeenv import env, env_int

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202

_HOST_IFCONFIG = ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False
        self._ssid = None
        self._polls = 0

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)
        return None

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid
        self._polls = 0
        print("fake: wifi connecting to %s" % ssid)

    def disconnect(self):
        self._ssid = None

    def _reachable(self):
        wanted = env("FAKE_WIFI_SSID")
        return self._ssid is not None and (wanted is None or wanted == self._ssid)

    def isconnected(self):
        if not self._reachable():
            return False
        self._polls += 1
        return self._polls >= env_int("FAKE_WIFI_POLLS", 2)

    def status(self, param=None):
        if param == "rssi":
            return -61
        if self._ssid is None:
            return STAT_IDLE
        if not self._reachable():
            return STAT_NO_AP_FOUND
        return STAT_GOT_IP if self._polls >= env_int("FAKE_WIFI_POLLS", 2) else STAT_CONNECTING

    def ifconfig(self, config=None):
        return _HOST_IFCONFIG

    def config(self, *args, **kw):
        if args == ("mac",):
            return b"\x24\x0a\xc4\x00\x00\x01"
        return None


class PPP:
    AUTH_NONE = 0
    AUTH_PAP = 1
    AUTH_CHAP = 2

    def __init__(self, stream):
        self.stream = stream
        self._active = False
        self._connected = False

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)
        return None

    def connect(self, authmode=0, username="", password=""):
        if not self._active:
            raise OSError("PPP not active")
        self._connected = True
        print("fake: ppp connected")

    def isconnected(self):
        return self._connected

    def ifconfig(self, config=None):
        return _HOST_IFCONFIG

    def status(self):
        return 0
