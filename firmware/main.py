"""xmpp_lite firmware: the board's main loop (MicroPython runs main.py after boot.py).

Reads ``config.json`` (see the README, "Configuration") and ``board.json``
(the board's profile from boards/, copied by ``xmpp-lite deploy``), brings
the network up (Wi-Fi, or a cellular modem over PPP), logs in to the XMPP
server with xmpp_lite.robust (or, with ``device.driver`` "asyncio", with
xmpp_lite.aio as asyncio tasks) and runs the sensor node (xmpp_lite.node):
reports at the configured interval, commands from the controller and the
admins. The watchdog is fed only while the loop is healthy: online, or
offline for less than ``device.max_offline_s``; a board that cannot get back
is reset by it.

With ``device.deep_sleep_s`` > 0 the board wakes, connects, reports once,
waits for the server's ack and sleeps again.

Problems are printed on the REPL as one line starting with "xmpp_lite:" and
shown by the status LED: on while online, a slow blink while offline; a
repeating burst of short blinks names an error that needs a person
(2: configuration, 3: network, 4: credentials or another board with the
same JID, 5: the firmware crashed, then it resets after 30 s,
6: out of memory: the link is torn down and comes back after its backoff;
after 5 in a row the board resets). The ``status``
command tells the free heap and how many MemoryErrors there were.
"""

import gc
import json
import sys

import machine

from xmpp_lite._compat import MICROPYTHON, const, sleep_ms, ticks_diff, ticks_ms

CONFIG_FILE = "config.json"
BOARD_FILE = "board.json"
_POLL_MS = const(100)
_ERROR_SHOW_MS = const(30000)  # a crash is shown this long before the board resets
_NETWORK_RETRY_MS = const(10000)
_DEEP_SLEEP_ACK_MS = const(10000)  # how long a duty cycle waits for the server's ack
# MemoryErrors without the link staying up (the backoff's stable_ms) in between, before the board resets:
# by then the heap is too fragmented to recover without a reset.
_MAX_MEMORY_ERRORS_IN_ROW = const(5)

_BLINKS_CONFIG = const(2)
_BLINKS_NETWORK = const(3)
_BLINKS_AUTH = const(4)
_BLINKS_CRASH = const(5)
_BLINKS_MEMORY = const(6)


def say(text):
    print("xmpp_lite: " + text)


class StatusLed:
    """The board's LED from board.json ({"pin", "active_low", "kind": "gpio"|"neopixel"}): nothing until ``use``."""

    def __init__(self):
        self._pin = None
        self._pixel = None
        self._lit = False

    def use(self, spec):
        if not spec:
            return
        pin = machine.Pin(spec["pin"], machine.Pin.OUT)
        if spec.get("kind") == "neopixel":
            import neopixel

            self._pixel = neopixel.NeoPixel(pin, 1)
        else:
            self._pin = pin
            self._active_low = bool(spec.get("active_low"))
        self.set(False)

    def set(self, on):
        self._lit = bool(on)
        if self._pixel is not None:
            self._pixel[0] = (0, 24, 0) if on else (0, 0, 0)
            self._pixel.write()
        elif self._pin is not None:
            self._pin.value(1 if self._lit != self._active_low else 0)

    def toggle(self):
        self.set(not self._lit)

    def burst(self, count):
        """``count`` short blinks, then a pause: about 2 s in all."""
        for _ in range(count):
            self.set(True)
            sleep_ms(150)
            self.set(False)
            sleep_ms(150)
        sleep_ms(2000 - 300 * count)


def stop_with(led, blinks, message, forever=True):
    """Say what is wrong and show it on the LED: forever (a person must act), or _ERROR_SHOW_MS then reset."""
    say(message)
    start = ticks_ms()
    while forever or ticks_diff(ticks_ms(), start) < _ERROR_SHOW_MS:
        led.burst(blinks)
    machine.reset()


def stop_for(led, config, error, logging_in):
    """A fatal error of the link (the credentials, another board with this JID, ...): shown until a person acts."""
    from xmpp_lite.errors import AuthError

    jid = config["xmpp"]["jid"]
    if isinstance(error, AuthError):
        stop_with(led, _BLINKS_AUTH, "the server refused %s: %s%s"
                  % (jid, error, " (check xmpp.jid and xmpp.password)" if logging_in else ""))
    if logging_in:
        stop_with(led, _BLINKS_AUTH, "the server ended the stream: %s" % error)
    stop_with(led, _BLINKS_AUTH, "stopped: %s (is another board using %s/%s?)"
              % (error, jid, config["xmpp"]["resource"]))


def load_board():
    try:
        with open(BOARD_FILE) as f:
            return json.load(f)
    except OSError:
        return {}  # no profile: no LED, no modem, sensors from config.json only
    except ValueError as error:
        raise ValueError("%s: not valid JSON (%s)" % (BOARD_FILE, error))


def forget_module(name):
    """Drop a module that has done its job, so that the GC can take back its code (RAM is scarce)."""
    from xmpp_lite import unload

    unload(name)  # from sys.modules and from the package: either one keeps the module alive
    gc.collect()


def bring_up_network(config, board, feed):
    """The network interface, or None for "none" (a host where the network is already up).

    xmpp_lite.netup (Wi-Fi) or xmpp_lite.modem (PPP) is loaded for the time it takes and forgotten
    after: it is needed again only when the network itself is lost.
    """
    kind = config["network"]["kind"]
    if kind == "none":
        return None
    try:
        if kind == "wifi":
            from xmpp_lite.netup import wifi_up

            return wifi_up(config["network"], feed)
        from xmpp_lite.modem import modem_up

        return modem_up(config["network"], board.get("modem"), feed)
    finally:
        forget_module("xmpp_lite.modem")
        forget_module("xmpp_lite.netup")


def network_back(config, board, interface, feed):
    """While offline: Wi-Fi or PPP itself may be gone, not just the server. Bring it up again (one try)."""
    if interface.isconnected():
        return interface
    say("network lost; bringing it up again")
    try:
        return bring_up_network(config, board, feed)
    except OSError as error:  # xmpp_lite.netup.NetworkError, or the network stack's own
        say(str(error))
        return interface


def make_device(config, board):
    """The link and the node (run() forgets xmpp_lite.device once they are made)."""
    from xmpp_lite.device import make_link, make_node

    link = make_link(config)

    def status_extra():
        gc.collect()  # what is free for real, not what garbage happens to hold
        return "heap free %d, memory errors %d" % (gc.mem_free(), link.stats["memory_errors"])

    return link, make_node(config, board, link, on_reboot=machine.reset, status_extra=status_extra)


def set_clock(config):
    if not config["device"]["ntp"]:
        return
    try:
        import ntptime

        ntptime.settime()
        say("clock set by NTP")
    except Exception as error:  # noqa: BLE001 - the clock is a nicety; the board works without it
        say("NTP failed: %s" % error)


def load_config(led):
    """The checked config.json; a bad one is shown (it never returns then).

    A function of its own: once it returns, nothing refers to xmpp_lite.config any more, and
    forget_module can give its heap back (a name of it held by run() would keep all of it).
    """
    from xmpp_lite.config import ConfigError, load

    try:
        return load(CONFIG_FILE)
    except ConfigError as error:
        stop_with(led, _BLINKS_CONFIG, "configuration error: %s" % error)


def run(led):
    from xmpp_lite.errors import AuthError
    from xmpp_lite.linkstate import STATE_ONLINE
    from xmpp_lite.stream import StreamError

    board = load_board()
    led.use(board.get("led"))
    config = load_config(led)
    forget_module("xmpp_lite.config")
    device_config = config["device"]
    watchdog = machine.WDT(timeout=int(device_config["watchdog_s"] * 1000)) if device_config["watchdog_s"] else None
    feed = watchdog.feed if watchdog is not None else (lambda: None)
    sleeping = device_config["deep_sleep_s"] > 0
    max_offline_ms = int(device_config["max_offline_s"] * 1000)
    booted = ticks_ms()

    def feed_while_trying(since):
        # Past max_offline_s without a link the watchdog is left to reset the board.
        if max_offline_ms == 0 or ticks_diff(ticks_ms(), since) < max_offline_ms:
            feed()

    while True:
        try:
            interface = bring_up_network(config, board, lambda: feed_while_trying(booted))
            break
        except OSError as error:  # xmpp_lite.netup.NetworkError, or the network stack's own
            if sleeping:
                say("%s; sleeping" % error)
                machine.deepsleep(int(device_config["deep_sleep_s"] * 1000))
            say("%s; again in %d s" % (error, _NETWORK_RETRY_MS // 1000))
            for _ in range(_NETWORK_RETRY_MS // 2000):
                led.burst(_BLINKS_NETWORK)
                feed_while_trying(booted)

    device, node = make_device(config, board)
    forget_module("xmpp_lite.device")  # xmpp_lite.sensors stays: the sensors' methods are its code
    # The sections made into the link and the node go, with all of board.json but the modem (to bring
    # the network back): while online the loop needs the network, device and xmpp sections only.
    board = {"modem": board.get("modem")}
    for name in ("report", "keepalive", "sensors", "outputs", "admins"):
        del config[name]
    gc.collect()
    # offline_since: ticks when the link went down (None while online); checked: the last network check.
    states = {"offline_since": None, "clock": False, "interface": interface, "checked": ticks_ms()}

    def on_state(state, detail):
        say("%s (%s)" % (state, detail))
        if isinstance(detail, MemoryError):
            out_of_memory()
        if state == STATE_ONLINE:
            states["offline_since"] = None
            led.set(True)
            if not states["clock"]:
                states["clock"] = True
                set_clock(config)
        elif states["offline_since"] is None:
            states["offline_since"] = ticks_ms()

    def out_of_memory():
        # The link is already torn down and its memory collected (xmpp_lite.robust).
        say("out of memory: %d in a row, %d in all; heap free %d"
            % (device.memory_errors_in_row, device.stats["memory_errors"], gc.mem_free()))
        if device.memory_errors_in_row >= _MAX_MEMORY_ERRORS_IN_ROW:
            stop_with(led, _BLINKS_MEMORY, "out of memory %d times in a row; resetting in %d s"
                      % (device.memory_errors_in_row, _ERROR_SHOW_MS // 1000), forever=False)
        led.burst(_BLINKS_MEMORY)

    def watch():
        """Once a loop turn: feed the watchdog while healthy; offline, blink, and now and then check the network."""
        offline_since = states["offline_since"]
        if offline_since is None:
            feed()
            return
        led.toggle()
        feed_while_trying(offline_since)
        now = ticks_ms()
        if states["interface"] is not None and ticks_diff(now, states["checked"]) >= _NETWORK_RETRY_MS:
            states["checked"] = now
            states["interface"] = network_back(config, board, states["interface"],
                                               lambda: feed_while_trying(offline_since))

    device.on_state = on_state
    if device_config["driver"] == "asyncio":
        import asyncio

        asyncio.run(serve_with_asyncio(config, device, node, led, feed, watch))
        return
    try:
        device.connect()
    except (AuthError, StreamError) as error:
        stop_for(led, config, error, True)
    try:
        node.start(ticks_ms())
    except MemoryError as error:
        device.drop_for_memory(error)

    if sleeping:
        start = ticks_ms()
        while device.unacked and ticks_diff(ticks_ms(), start) < _DEEP_SLEEP_ACK_MS:
            device.poll(_POLL_MS)
            feed()
        left = device.close()
        say("report sent (%d unacked); sleeping %d s" % (left, device_config["deep_sleep_s"]))
        machine.deepsleep(int(device_config["deep_sleep_s"] * 1000))

    while True:
        try:
            device.poll(_POLL_MS)
        except (AuthError, StreamError) as error:  # fatal ones only: conflict (another board with this JID), ...
            stop_for(led, config, error, False)
        try:
            node.tick(ticks_ms())
        except MemoryError as error:  # in the node's own work (readings, reports): the same cure
            device.drop_for_memory(error)
        watch()


async def report_timer(node):
    """The node's reports and pending reboot, as a task."""
    from xmpp_lite.aio import sleep_ms

    while True:
        node.tick(ticks_ms())
        await sleep_ms(_POLL_MS)


async def serve_with_asyncio(config, device, node, led, feed, watch):
    """run()'s loop with device.driver "asyncio": the link (xmpp_lite.aio) and the report timer are tasks
    (commands arrive by the link's callbacks); this task keeps the watchdog, the LED and the network (``watch``)."""
    import asyncio

    from xmpp_lite.aio import sleep_ms
    from xmpp_lite.linkstate import STATE_STOPPED

    device_config = config["device"]
    stopped = []
    on_state = device.on_state

    def on_state_async(state, detail):
        on_state(state, detail)
        if state == STATE_STOPPED and detail is not None:
            stopped.append(detail)  # a fatal error while reconnecting: shown below

    device.on_state = on_state_async
    try:
        await device.connect()
    except Exception as error:  # noqa: BLE001 - credentials, fatal stream errors (conflict, ...): a person must look
        stop_for(led, config, error, True)
    node.start(ticks_ms())

    if device_config["deep_sleep_s"] > 0:
        async def keep_fed():
            while True:
                feed()
                await sleep_ms(_POLL_MS)

        feeder = asyncio.create_task(keep_fed())
        left = await device.close(_DEEP_SLEEP_ACK_MS)  # asks the server for its ack, waits for it (bounded)
        feeder.cancel()
        say("report sent (%d unacked); sleeping %d s" % (left, device_config["deep_sleep_s"]))
        machine.deepsleep(int(device_config["deep_sleep_s"] * 1000))

    asyncio.create_task(report_timer(node))
    while True:
        await sleep_ms(_POLL_MS)
        if stopped:
            stop_for(led, config, stopped[0], False)
        watch()


def main():
    led = StatusLed()  # dark until run() has read board.json: a crash before that is shown on the REPL only
    try:
        run(led)
    except KeyboardInterrupt:
        say("stopped by Ctrl-C")
    except Exception as error:  # noqa: BLE001 - the last line of defence: show it, then reset
        if MICROPYTHON:
            sys.print_exception(error)
        else:
            import traceback

            traceback.print_exc()
        stop_with(led, _BLINKS_CRASH, "crashed: %r; resetting in %d s" % (error, _ERROR_SHOW_MS // 1000),
                  forever=False)


main()
