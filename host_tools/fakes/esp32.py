"""A fake of MicroPython's ``esp32`` module: the original ESP32's internal temperature sensor."""

from _fakeenv import env


def raw_temperature():
    if env("FAKE_TEMP_MEMORY_ERROR") is not None:
        raise MemoryError("memory allocation failed (fake)")
    return 122  # Fahrenheit, as the ESP32 reports it: 50 C, typical for a running chip
