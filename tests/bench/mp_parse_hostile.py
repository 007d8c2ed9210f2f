# Runs on the MicroPython VM (and on CPython): feed the parser, with the
# stream builder as its handler (as the session does), one hostile token in
# chunks from one reused buffer, and print how it ended: "XMLError" (the
# parser refused it, as it must) or "MemoryError" (the heap was too small).
# Usage: mp_parse_hostile.py LIBDIR ATTACK CHUNK
import sys

sys.path.insert(0, sys.argv[1])
from xmpp_lite.parser import Parser, XMLError  # noqa: E402
from xmpp_lite.stanza import Builder  # noqa: E402

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
# name: (what comes first, the unit repeated for ever)
ATTACKS = {
    "none": (b"junk", b" "),  # fails at once: the heap the rest needs anyway
    "attribute value": (b"<message a='", b"v"),
    "element name": (b"<", b"n"),
    "attributes": (b"<message", b" a='1'"),
    "text": (b"<message><body>", b"t"),
    "cdata": (b"<message><body><![CDATA[", b"c"),
    "white space in a tag": (b"<message", b" "),
}


def run(attack, chunk):
    head, unit = ATTACKS[attack]
    buf = bytearray(chunk)
    view = memoryview(buf)
    piece = unit * (chunk // len(unit))
    buf[:len(piece)] = piece
    parser = Parser(Builder(lambda stanza: None))
    fed = 0
    try:
        parser.feed(HEADER + head)
        while fed < 10 * 1024 * 1024:
            parser.feed(view[:len(piece)])
            fed += len(piece)
        return "accepted"
    except XMLError:
        return "XMLError"
    except MemoryError:
        return "MemoryError"


print(run(sys.argv[2], int(sys.argv[3])))
