"""Tests of the network bring-up on the fake ESP32 modules: Wi-Fi (xmpp_lite.netup), and a SIM800 over AT + PPP
(xmpp_lite.modem)."""

from support import raises, use_fake_board

WIFI = {"kind": "wifi", "ssid": "home", "password": "secret", "connect_timeout_s": 1}
MODEM_NET = {"kind": "modem", "apn": "internet", "user": "", "password": "", "pin": None, "connect_timeout_s": 2}


class Fast:
    """Shorter modem waits for the tests (a real SIM800 needs seconds to power up and answer)."""

    def __init__(self):
        from xmpp_lite import modem

        self.modem = modem

    def __enter__(self):
        modem = self.modem
        self.saved = (modem.AT_TIMEOUT_MS, modem.AT_ATTEMPTS, modem.MODEM_POWER_ON_MS)
        modem.AT_TIMEOUT_MS, modem.AT_ATTEMPTS, modem.MODEM_POWER_ON_MS = 50, 2, 1
        return modem

    def __exit__(self, *exc):
        self.modem.AT_TIMEOUT_MS, self.modem.AT_ATTEMPTS, self.modem.MODEM_POWER_ON_MS = self.saved
        return False


T_CALL = {"kind": "sim800", "uart": 1, "tx": 27, "rx": 26, "baud": 115200, "power_pin": 23, "pwrkey_pin": 4,
          "reset_pin": 5}


def test_wifi_comes_up_and_feeds_the_watchdog():
    use_fake_board()
    from xmpp_lite.netup import wifi_up

    feeds = []
    wlan = wifi_up(WIFI, lambda: feeds.append(1))
    assert wlan.isconnected() and len(feeds) >= 1


def test_wifi_names_the_network_it_could_not_join():
    settings = use_fake_board()
    settings["FAKE_WIFI_SSID"] = "elsewhere"
    from xmpp_lite.netup import NetworkError, wifi_up

    error = raises(NetworkError, wifi_up, WIFI)
    assert str(error).find("'home'") > 0 and str(error).find("network not found") > 0


def test_modem_attaches_and_starts_ppp():
    use_fake_board()
    with Fast() as modem:
        ppp = modem.modem_up(MODEM_NET, T_CALL)
    assert ppp.isconnected()


def test_modem_with_a_sim_pin():
    settings = use_fake_board()
    settings["FAKE_SIM_PIN"] = "1234"
    with Fast() as modem:
        error = raises(modem.NetworkError, modem.modem_up, MODEM_NET, T_CALL)
        assert str(error) == "modem: the SIM needs a PIN: set network.pin"
        wrong = dict(MODEM_NET)
        wrong["pin"] = "0000"
        assert str(raises(modem.NetworkError, modem.modem_up, wrong, T_CALL)) == "modem: the SIM refused network.pin"
        right = dict(MODEM_NET)
        right["pin"] = "1234"
        assert modem.modem_up(right, T_CALL).isconnected()


def test_a_silent_modem_is_a_clear_error():
    settings = use_fake_board()
    settings["FAKE_MODEM_DEAD"] = "1"
    with Fast() as modem:
        error = raises(modem.NetworkError, modem.modem_up, MODEM_NET, T_CALL)
    assert str(error) == "modem: does not answer AT (power, wiring or baud rate?)"


def test_no_modem_in_the_board_file():
    use_fake_board()
    from xmpp_lite.modem import NetworkError, modem_up

    assert str(raises(NetworkError, modem_up, MODEM_NET, None)).startswith("network.kind is \"modem\"")


def test_at_channel_reports_errors():
    use_fake_board()
    import machine

    from xmpp_lite.modem import ATChannel, NetworkError

    channel = ATChannel(machine.UART(1))
    assert channel.command("AT+CSQ").find(b"+CSQ: 18,0") >= 0
    assert str(raises(NetworkError, channel.command, "AT+BOGUS")).startswith("modem: AT+BOGUS answered ERROR")


def test_modem_errors_are_network_errors():
    # The firmware catches one error class for both ways up.
    from xmpp_lite import modem, netup

    assert modem.NetworkError is netup.NetworkError and issubclass(netup.NetworkError, OSError)
