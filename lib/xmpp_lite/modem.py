"""A SIM800/SIM7000-class modem over PPP: power pins, a few AT commands, then ``network.PPP``.

    modem_up(network_config, board["modem"], feed=wdt.feed)   # the PPP interface, or raises NetworkError

The modem is driven with a few AT commands (power pins, echo off, SIM PIN,
network registration, PDP context, dial), then handed to ``network.PPP``
(MicroPython 1.24+ on ESP32). Like xmpp_lite.netup's Wi-Fi, it waits at
most ``connect_timeout_s`` and calls ``feed()`` while it waits.
"""

from xmpp_lite._compat import const, sleep_ms, ticks_diff, ticks_ms
from xmpp_lite.netup import POLL_MS, NetworkError, _nothing

AT_TIMEOUT_MS = 2000  # one AT command's answer
AT_ATTEMPTS = 10  # "AT" until the modem answers (it boots in a few seconds)
_REGISTRATION_POLLS = const(60)  # AT+CREG? every POLL_MS*5 until registered
_MAX_AT_REPLY = const(512)  # bytes of one answer kept; more is noise
MODEM_POWER_ON_MS = 1200  # PWRKEY low this long switches a SIM800 on


class ATChannel:
    """Commands to a modem over a UART and their answers, with timeouts (no blocking reads)."""

    def __init__(self, uart, feed=_nothing):
        self.uart = uart
        self.feed = feed

    def command(self, text, expect=b"OK", timeout_ms=None):
        """Send ``text``; the reply up to ``expect``. Raises NetworkError on ERROR or timeout."""
        if timeout_ms is None:
            timeout_ms = AT_TIMEOUT_MS
        while self.uart.any():  # drop what came unasked (URCs, echoes)
            self.uart.read()
        self.uart.write(text.encode() + b"\r")
        reply = b""
        start = ticks_ms()
        while True:
            data = self.uart.read() if self.uart.any() else None
            if data:
                reply = (reply + data)[-_MAX_AT_REPLY:]
                if reply.find(expect) >= 0:
                    return reply
                if reply.find(b"ERROR") >= 0:
                    raise NetworkError("modem: %s answered %s" % (text, reply.strip().decode()))
            elif ticks_diff(ticks_ms(), start) > timeout_ms:
                raise NetworkError("modem: no answer to %s within %d ms" % (text, timeout_ms))
            else:
                self.feed()
                sleep_ms(20)


def _power_on(modem):
    import machine

    if modem.get("power_pin") is not None:
        machine.Pin(modem["power_pin"], machine.Pin.OUT).value(1)
    if modem.get("reset_pin") is not None:
        machine.Pin(modem["reset_pin"], machine.Pin.OUT).value(1)
    if modem.get("pwrkey_pin") is not None:
        key = machine.Pin(modem["pwrkey_pin"], machine.Pin.OUT)
        key.value(1)
        sleep_ms(100)
        key.value(0)
        sleep_ms(MODEM_POWER_ON_MS)
        key.value(1)


def attach(channel, config, feed=_nothing):
    """AT steps up to a dialled data call; raises NetworkError naming the step that failed."""
    for attempt in range(AT_ATTEMPTS):
        try:
            channel.command("AT")
            break
        except NetworkError:
            if attempt == AT_ATTEMPTS - 1:
                raise NetworkError("modem: does not answer AT (power, wiring or baud rate?)")
    channel.command("ATE0")
    pin_state = channel.command("AT+CPIN?")
    if pin_state.find(b"SIM PIN") >= 0:
        if not config.get("pin"):
            raise NetworkError("modem: the SIM needs a PIN: set network.pin")
        try:
            channel.command('AT+CPIN="%s"' % config["pin"])
        except NetworkError:
            raise NetworkError("modem: the SIM refused network.pin")
    elif pin_state.find(b"READY") < 0:
        raise NetworkError("modem: SIM not ready (%s)" % pin_state.strip().decode())
    for _ in range(_REGISTRATION_POLLS):
        state = channel.command("AT+CREG?")
        if state.find(b",1") >= 0 or state.find(b",5") >= 0:  # home network, or roaming
            break
        for _ in range(5):
            feed()
            sleep_ms(POLL_MS)
    else:
        raise NetworkError("modem: not registered on a network (coverage, SIM or APN contract?)")
    channel.command('AT+CGDCONT=1,"IP","%s"' % config["apn"])
    channel.command("ATD*99#", expect=b"CONNECT", timeout_ms=10000)


def modem_up(config, modem, feed=_nothing):
    """Power the modem of the board file (``modem`` entry), attach, and start PPP over its UART."""
    import machine
    import network

    if not modem:
        raise NetworkError("network.kind is \"modem\" but the board file has no modem")
    _power_on(modem)
    uart = machine.UART(modem["uart"], baudrate=modem.get("baud", 115200), tx=modem["tx"], rx=modem["rx"])
    attach(ATChannel(uart, feed), config, feed)
    ppp = network.PPP(uart)
    ppp.active(True)
    if config.get("user"):
        # The ESP32 port takes these keywords (network_ppp.c); the stubs copy the generic docs.
        ppp.connect(authmode=network.PPP.AUTH_PAP, username=config["user"],  # type: ignore[call-arg]
                    password=config["password"])
    else:
        ppp.connect()
    start = ticks_ms()
    while not ppp.isconnected():
        if ticks_diff(ticks_ms(), start) > config["connect_timeout_s"] * 1000:
            raise NetworkError("modem: PPP did not come up within %d s" % config["connect_timeout_s"])
        feed()
        sleep_ms(POLL_MS)
    return ppp
