"""`xmpp-lite simboard`: a virtual board, the MicroPython unix VM that mpremote reaches over TCP."""

import re
import signal

from host_tools.cli import CommandError
from host_tools.simboard_host import DEFAULT_DIR, DEFAULT_HEAP, SimBoard, SimBoardError

DESCRIPTION = "Run a virtual board (the MicroPython VM with fake ESP32 modules) for mpremote at socket://127.0.0.1:PORT."

_HEAP = re.compile(r"^[0-9]+[kKmM]?$")


def add_arguments(parser):
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help="the board's flash: its filesystem root, with lib/ on the module path "
                             "(default: %(default)s, made if missing)")
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1 to serve the board's serial port on (default: a free one, printed)")
    parser.add_argument("--heap", default=DEFAULT_HEAP,
                        help="the VM's garbage-collected heap, e.g. 256k or 1M (default: %(default)s; an ESP32 "
                             "without PSRAM has about 110 KB, and the 64-bit VM's objects are about twice as big)")


def _stop(signum, frame):
    raise KeyboardInterrupt


def run(args):
    if not _HEAP.match(args.heap):
        raise CommandError("simboard: --heap %r is not a size like 256k or 1M" % args.heap)
    if not 0 <= args.port <= 65535:
        raise CommandError("simboard: --port %d is not a TCP port" % args.port)
    board = SimBoard(args.dir, port=args.port, heap=args.heap)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        board.start()
        board.say("try: mpremote connect %s repl   (Ctrl-C here stops the board)" % board.url())
        board.serve_forever()
    except SimBoardError as error:
        raise CommandError("simboard: %s" % error)
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
        signal.signal(signal.SIGTERM, previous)
    board.say("stopped")
