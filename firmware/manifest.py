# Freezes xmpp_lite into a MicroPython firmware image, so that its bytecode runs from flash
# instead of taking the board's RAM. From a MicroPython source tree:
#
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/firmware/manifest.py
#
# Paths are relative to this file. boot.py, main.py and config.json still go on the board's
# filesystem (`xmpp-lite deploy`): MicroPython runs those from there. The parser's token loop is
# native code (@micropython.native); the port's build gives mpy-cross the chip's architecture.

include("$(PORT_DIR)/boards/manifest.py")  # what the port freezes by default (asyncio, ...)
package("xmpp_lite", base_path="../lib", opt=2)  # opt=2: no asserts, no docstrings in flash
