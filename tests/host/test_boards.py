"""Board profiles in boards/: every shipped file loads, and each kind of mistake is caught."""

import copy
import json

import pytest

from host_tools.boards import (
    BOARDS_DIR,
    CHIP_FLASH_OFFSETS,
    BoardError,
    board_path,
    list_boards,
    load_board,
    validate_board,
)

REQUIRED_BOARDS = ("esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "lilygo-t-call")


def good_board():
    """A valid ESP32 profile to spoil one way per test."""
    return {
        "id": "test-board",
        "name": "Test board",
        "chip": "esp32",
        "flash_offset": "0x1000",
        "flash_size": "4MB",
        "firmware": "ESP32_GENERIC-{version}.bin",
        "baud": 460800,
        "led": {"pin": 2, "active_low": False, "kind": "gpio"},
        "sensors": [
            {"name": "temp", "kind": "internal_temp"},
            {"name": "light", "kind": "adc", "pin": 34},
            {"name": "button", "kind": "digital", "pin": 0, "pull": "up"},
            {"name": "climate", "kind": "dht22", "pin": 4},
        ],
        "outputs": [{"name": "led", "pin": 2}, {"name": "relay", "pin": 26}],
        "modem": {"kind": "sim800", "uart": 1, "tx": 27, "rx": 25, "baud": 115200,
                  "power_pin": 23, "pwrkey_pin": 13, "reset_pin": 5},
        "notes": "",
    }


def errors_of(change):
    board = good_board()
    change(board)
    return validate_board(board)


def write_board(directory, name, data):
    path = directory / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


# -- the shipped profiles ---------------------------------------------------------

def test_required_boards_are_there():
    assert set(REQUIRED_BOARDS) <= set(list_boards())


@pytest.mark.parametrize("board_id", list_boards())
def test_every_shipped_board_validates(board_id):
    board = load_board(board_id)
    assert board["id"] == board_id
    assert board["flash_offset"] == CHIP_FLASH_OFFSETS[board["chip"]]
    assert board["firmware"].format(version="1.29.0").endswith("-1.29.0.bin")


def test_shipped_boards_have_the_documented_facts():
    devkitc = load_board("esp32-devkitc")
    assert (devkitc["chip"], devkitc["flash_offset"], devkitc["led"]) == ("esp32", "0x1000", None)
    assert "LED" in devkitc["notes"]
    s3 = load_board("esp32-s3-devkitc-1")
    assert (s3["chip"], s3["flash_offset"], s3["led"]["kind"], s3["led"]["pin"]) == ("esp32s3", "0x0", "neopixel", 48)
    c3 = load_board("esp32-c3-devkitm-1")
    assert (c3["chip"], c3["flash_offset"], c3["led"]["kind"], c3["led"]["pin"]) == ("esp32c3", "0x0", "neopixel", 8)
    assert {"name": "button", "kind": "digital", "pin": 9, "pull": "up"} in c3["sensors"]
    tcall = load_board("lilygo-t-call")
    assert tcall["firmware"] == "ESP32_GENERIC-SPIRAM-{version}.bin"
    assert tcall["led"] == {"pin": 13, "active_low": False, "kind": "gpio"}
    assert tcall["modem"] == {"kind": "sim800", "uart": 1, "tx": 27, "rx": 26, "baud": 115200,
                              "power_pin": 23, "pwrkey_pin": 4, "reset_pin": 5}


def test_load_by_path(tmp_path):
    path = write_board(tmp_path, "test-board.json", good_board())
    assert load_board(str(path))["id"] == "test-board"
    assert board_path("esp32-devkitc") == str(BOARDS_DIR) + "/esp32-devkitc.json"


def test_the_good_board_is_good():
    assert validate_board(good_board()) == []


# -- each kind of mistake -------------------------------------------------------------

def test_wrong_offset_for_the_chip():
    def s3_with_esp32_offset(board):
        board.update(chip="esp32s3", firmware="ESP32_GENERIC_S3-{version}.bin", modem=None)
        board["sensors"][1]["pin"] = 1
    assert errors_of(s3_with_esp32_offset) == ["flash_offset: '0x1000' is not the esp32s3 offset '0x0'"]
    assert errors_of(lambda board: board.update(flash_offset="0x0")) == [
        "flash_offset: '0x0' is not the esp32 offset '0x1000'"]


def test_firmware_of_another_chip():
    errors = errors_of(lambda board: board.update(firmware="ESP32_GENERIC_C3-{version}.bin"))
    assert errors == ["firmware: 'ESP32_GENERIC_C3-{version}.bin' is not a MicroPython image for esp32 "
                      "(ESP32_GENERIC-...)"]
    assert errors_of(lambda board: board.update(firmware="ESP32_GENERIC-1.24.bin"))[0].startswith("firmware:")


def test_output_on_an_input_only_pin():
    errors = errors_of(lambda board: board["outputs"][1].update(pin=35))
    assert errors == ["outputs[1].pin: GPIO35 is input only, it cannot drive an output"]
    errors = errors_of(lambda board: board["modem"].update(tx=36))
    assert errors == ["modem.tx: GPIO36 is input only, it cannot drive an output"]


def test_input_only_pins_are_fine_for_inputs():
    assert errors_of(lambda board: board["sensors"][2].update(pin=39)) == []
    assert errors_of(lambda board: board["modem"].update(rx=35)) == []


def test_duplicate_pin():
    errors = errors_of(lambda board: board["sensors"][3].update(pin=26))
    assert errors == ["outputs[1].pin: GPIO26 is already used by sensors[3].pin"]
    errors = errors_of(lambda board: board["modem"].update(reset_pin=4))
    assert errors == ["modem.reset_pin: GPIO4 is already used by sensors[3].pin"]


def test_an_output_may_drive_the_board_led_but_only_that():
    assert errors_of(lambda board: None) == []  # outputs[0] "led" shares led.pin
    errors = errors_of(lambda board: board["led"].update(kind="neopixel"))
    assert errors == ["outputs[0].pin: GPIO2 is already used by led.pin"]
    errors = errors_of(lambda board: board["outputs"][0].update(active_low=True))
    assert errors == ["outputs[0].active_low: must match led.active_low (False) for the board's LED"]


def test_unknown_chip():
    errors = errors_of(lambda board: board.update(chip="esp8266"))
    assert errors == ["chip: 'esp8266' is not a known chip (esp32, esp32c3, esp32s3)"]


def test_missing_key():
    for key in good_board():
        board = good_board()
        del board[key]
        assert "%s: missing" % key in validate_board(board), key
    assert errors_of(lambda board: board["led"].pop("kind"))[0] == "led.kind: missing"
    assert errors_of(lambda board: board["sensors"][1].pop("pin")) == ["sensors[1].pin: missing"]
    assert errors_of(lambda board: board["modem"].pop("pwrkey_pin")) == ["modem.pwrkey_pin: missing"]


def test_unknown_key():
    errors = errors_of(lambda board: board.update(colour="blue"))
    assert len(errors) == 1 and errors[0].startswith("colour: unknown key (known: id, name, chip,")
    errors = errors_of(lambda board: board["sensors"][0].update(pin=5))
    assert errors[0].startswith("sensors[0].pin: unknown key")


def test_pin_out_of_range_for_the_chip():
    assert errors_of(lambda board: board["outputs"][1].update(pin=40)) == [
        "outputs[1].pin: GPIO40 does not exist on this chip (GPIO 0..39)"]
    assert errors_of(lambda board: board["outputs"][1].update(pin=24)) == [
        "outputs[1].pin: GPIO24 does not exist on this chip (GPIO 0..39)"]

    def c3(board):
        board.update(chip="esp32c3", flash_offset="0x0", firmware="ESP32_GENERIC_C3-{version}.bin", modem=None)
        board["sensors"][1]["pin"] = 3
        board["outputs"][1]["pin"] = 21
    assert errors_of(c3) == []
    assert errors_of(lambda board: (c3(board), board["outputs"][1].update(pin=22))) == [
        "outputs[1].pin: GPIO22 does not exist on this chip (GPIO 0..21)"]


def test_adc_pin_must_be_on_adc1():
    errors = errors_of(lambda board: board["sensors"][1].update(pin=4))
    assert errors[0] == "sensors[1].pin: GPIO4 is not an ADC1 pin (ADC1: GPIO32, 33, 34, 35, 36, 37, 38, 39)"


def test_pin_types():
    assert errors_of(lambda board: board["led"].update(pin="13")) == ["led.pin: '13' is not a GPIO number"]
    assert errors_of(lambda board: board["outputs"][1].update(pin=True)) == [
        "outputs[1].pin: True is not a GPIO number"]


def test_names_unique_and_words():
    assert errors_of(lambda board: board["sensors"][1].update(name="temp")) == [
        "sensors[1].name: 'temp' is used twice in sensors"]
    assert errors_of(lambda board: board["outputs"][1].update(name="my relay")) == [
        "outputs[1].name: 'my relay' must be a word of letters, digits or _"]


def test_field_types_and_values():
    assert errors_of(lambda board: board.update(baud="460800")) == ["baud: '460800' is not an integer"]
    assert errors_of(lambda board: board.update(baud=True)) == ["baud: True is not an integer"]
    assert errors_of(lambda board: board.update(sensors={})) == ["sensors: {} is not a list"]
    assert errors_of(lambda board: board.update(flash_size="4M")) == [
        "flash_size: '4M' is not one of 2MB, 4MB, 8MB, 16MB, 32MB"]
    assert errors_of(lambda board: board["led"].update(active_low="no"))[0] == (
        "led.active_low: 'no' is not true or false")
    assert errors_of(lambda board: board["sensors"][2].update(pull="sideways")) == [
        "sensors[2].pull: 'sideways' is not one of up, down"]
    assert errors_of(lambda board: board["sensors"][0].update(kind="thermometer"))[0].startswith(
        "sensors[0].kind: 'thermometer' is not one of internal_temp, adc")
    assert errors_of(lambda board: board["modem"].update(kind="sim7600")) == [
        "modem.kind: 'sim7600' is not one of sim800"]
    assert errors_of(lambda board: board["modem"].update(uart=0)) == [
        "modem.uart: 0 is not a free UART on this chip (1, 2)"]
    assert errors_of(lambda board: board.update(id="Test_Board")) == [
        "id: 'Test_Board' must be lowercase letters, digits and single hyphens"]
    assert validate_board([]) == ["the profile must be a JSON object"]


def test_nullable_fields():
    def no_extras(board):
        board.update(led=None, modem=None)
        board["outputs"] = board["outputs"][1:]
    assert errors_of(no_extras) == []
    assert errors_of(lambda board: board.update(notes=None)) == ["notes: None is not a string"]


def test_validate_does_not_change_the_data():
    board = good_board()
    before = copy.deepcopy(board)
    validate_board(board)
    assert board == before


# -- what load_board raises ---------------------------------------------------------------

@pytest.mark.parametrize("board_id", list_boards())
def test_a_spoiled_copy_of_a_shipped_board_fails(tmp_path, board_id):
    board = load_board(board_id)
    wrong = "0x0" if board["flash_offset"] != "0x0" else "0x1000"
    board["flash_offset"] = wrong
    path = write_board(tmp_path, board_id + ".json", board)
    with pytest.raises(BoardError) as caught:
        load_board(str(path))
    assert str(caught.value).startswith("%s: flash_offset: %r is not the %s offset" % (path, wrong, board["chip"]))


def test_id_not_matching_the_file_name(tmp_path):
    path = write_board(tmp_path, "other-board.json", good_board())
    with pytest.raises(BoardError) as caught:
        load_board(str(path))
    assert str(caught.value) == "%s: id: 'test-board' does not match the file name (other-board.json)" % path


def test_bad_json_names_the_file(tmp_path):
    path = write_board(tmp_path, "test-board.json", '{"id": "test-board",\n "name": }')
    with pytest.raises(BoardError) as caught:
        load_board(str(path))
    message = str(caught.value)
    assert message.startswith("%s: not valid JSON: line 2 column" % path)
    assert "\n" not in message


def test_duplicate_json_key_names_the_file(tmp_path):
    path = write_board(tmp_path, "test-board.json", '{"id": "test-board", "id": "test-board"}')
    with pytest.raises(BoardError, match="not valid JSON: key 'id' is given twice"):
        load_board(str(path))


def test_invalid_profile_message_is_one_line_with_file_and_key(tmp_path):
    board = good_board()
    board.update(flash_offset="0x0", chip="esp32")
    board["outputs"][1]["pin"] = 35
    path = write_board(tmp_path, "test-board.json", board)
    with pytest.raises(BoardError) as caught:
        load_board(str(path))
    assert str(caught.value) == ("%s: flash_offset: '0x0' is not the esp32 offset '0x1000' (and 1 more)" % path)
    assert caught.value.errors == ["flash_offset: '0x0' is not the esp32 offset '0x1000'",
                                   "outputs[1].pin: GPIO35 is input only, it cannot drive an output"]


def test_unknown_board_id(tmp_path):
    write_board(tmp_path, "test-board.json", good_board())
    with pytest.raises(BoardError) as caught:
        load_board("no-such-board", boards_dir=str(tmp_path))
    assert str(caught.value) == "no board 'no-such-board' in %s (known: test-board)" % tmp_path
    assert load_board("test-board", boards_dir=str(tmp_path))["name"] == "Test board"
    with pytest.raises(BoardError, match="no such file"):
        load_board(str(tmp_path / "missing.json"))


def test_list_boards(tmp_path):
    assert list_boards(str(tmp_path / "nothing-here")) == []
    write_board(tmp_path, "b-board.json", good_board())
    write_board(tmp_path, "a-board.json", good_board())
    (tmp_path / "README.md").write_text("not a board")
    assert list_boards(str(tmp_path)) == ["a-board", "b-board"]
