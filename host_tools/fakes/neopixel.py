"""A fake of MicroPython's ``neopixel`` module: an addressable LED strip that remembers its colours."""


class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self._pixels = [(0, 0, 0)] * n

    def __setitem__(self, index, colour):
        self._pixels[index] = colour

    def __getitem__(self, index):
        return self._pixels[index]

    def __len__(self):
        return self.n

    def fill(self, colour):
        self._pixels = [colour] * self.n

    def write(self):
        self.pin.value(1 if any(any(c) for c in self._pixels) else 0)
