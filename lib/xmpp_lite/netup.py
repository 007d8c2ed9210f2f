"""Bringing the board's network up: Wi-Fi station here; a SIM800/SIM7000-class modem over PPP in xmpp_lite.modem.

    wifi_up(network_config, feed=wdt.feed)                 # returns the WLAN, or raises NetworkError
    modem.modem_up(network_config, board["modem"], feed=...)     # AT attach, then network.PPP

Both wait at most ``connect_timeout_s`` (network section of the
configuration) and call ``feed()`` while they wait, so the watchdog sees a
board that is busy, not hung. The firmware loads the one it needs while the
network comes up (at boot, and when the network itself is lost) and
forgets it after: a Wi-Fi board never loads the modem's code.
"""

from xmpp_lite._compat import sleep_ms, ticks_diff, ticks_ms

POLL_MS = 200  # between checks while waiting for the link


class NetworkError(OSError):
    """The network could not be brought up; ``str()`` says which step failed."""


def _nothing():
    pass


def wifi_up(config, feed=_nothing):
    """Join the Wi-Fi network of ``config`` (ssid, password, connect_timeout_s)."""
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return wlan
    wlan.connect(config["ssid"], config["password"])
    start = ticks_ms()
    limit = config["connect_timeout_s"] * 1000
    while not wlan.isconnected():
        if ticks_diff(ticks_ms(), start) > limit:
            status = wlan.status()
            wlan.active(False)
            if status == getattr(network, "STAT_NO_AP_FOUND", -1):
                reason = "network not found"
            elif status == getattr(network, "STAT_WRONG_PASSWORD", -2):
                reason = "wrong password"
            else:
                reason = "status %s" % status
            raise NetworkError("Wi-Fi %r: no connection within %d s (%s)"
                               % (config["ssid"], config["connect_timeout_s"], reason))
        feed()
        sleep_ms(POLL_MS)
    return wlan
