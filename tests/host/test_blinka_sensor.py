"""The host's simulated sensors: xmpp_lite.sensors' blinka_analog kind through adafruit-blinka's OS-agnostic board.

CircuitPython's API (board, analogio) on CPython, with pins that produce a sine or random values; the node
reports them as it would a board's ADC.
"""


import pytest

BLINKA_ENV = {"BLINKA_OS_AGNOSTIC": "1", "BLINKA_FORCEBOARD": "OS_AGNOSTIC_BOARD", "BLINKA_FORCECHIP": "OS_AGNOSTIC"}


@pytest.fixture
def blinka(monkeypatch):
    for name, value in BLINKA_ENV.items():
        monkeypatch.setenv(name, value)
    from xmpp_lite.sensors import make_sensor

    return make_sensor


def test_a_sine_pin_moves_between_reads(blinka):
    sensor = blinka({"name": "light", "kind": "blinka_analog", "pin": "Ax_INPUT_WAVE_SINE", "scale": 0.5})
    values = [sensor.read()[0][1] for _ in range(8)]
    assert len(set(values)) > 4, values
    assert all(isinstance(value, (int, float)) for value in values)


def test_a_node_reports_blinka_readings(blinka):
    from xmpp_lite.node import Node, status_text

    class Link:
        def __init__(self):
            self.presences = []
            self.reports = []

        def send_presence(self, **kwargs):
            self.presences.append(kwargs)

        def send(self, elem):
            self.reports.append(elem)

        def send_message(self, *args, **kwargs):
            return "m1"

        def register_iq_handler(self, xmlns, fn):
            pass

    link = Link()
    sensors = [blinka({"name": "noise", "kind": "blinka_analog", "pin": "Ax_INPUT_RAND_INT"})]
    node = Node(link, sensors, controller="controller@example.net")
    node.start(0)
    status = link.presences[0]["status"]
    assert status.startswith("noise=") and status != status_text([("noise", None, "")])
    assert link.reports[0].find_text("body") == status


def test_an_unknown_pin_names_the_board(blinka):
    with pytest.raises(ValueError, match="has no pin A99"):
        blinka({"name": "x", "kind": "blinka_analog", "pin": "A99"})
