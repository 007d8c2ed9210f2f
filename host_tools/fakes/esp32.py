"""A fake of MicroPython's ``esp32`` module: the original ESP32's internal temperature sensor."""


def raw_temperature():
    return 122  # Fahrenheit, as the ESP32 reports it: 50 C, typical for a running chip
