"""The parser's caps, each at its limit and one past it, on every path.

A cap is checked in more than one place: the tag loop's fast path (a plain
tag, of a shape the parser knows or learns at once) and the careful path (a
new or unusual shape: an attribute holding "&" or a line end, an end tag with
a space before its ">"), each for a whole feed and for a token cut across
feeds. Every case here is fed whole, byte by byte, and after a first stanza of
the same shape, so that each place meets the limit and the limit plus one.

The default values are pinned as numbers, not as the imported constants: a
changed default must fail a test here.
"""

from support import raises

from xmpp_lite import parser as parser_module
from xmpp_lite.parser import Parser, XMLError

# RFC 6120 section 13.12: a server must accept stanzas of at least 10000 bytes.
RFC_STANZA_FLOOR = 10000
# The parser may need twice the stanza cap at once (an unfinished tag of S
# bytes in pieces and joined, see the parser's docstring); a board has about
# 100 KB free: above 20 KB that would be 40 % of it, with the session still to come.
RAM_SAFE_STANZA_CEILING = 20480


class Sink:
    """Handler that counts events and remembers the text's total size."""

    def __init__(self):
        self.starts = 0
        self.ends = 0
        self.text_bytes = 0

    def start(self, name, attrs):
        self.starts += 1

    def end(self, name):
        self.ends += 1

    def text(self, data):
        self.text_bytes += len(data)


def _feed(parser, data, bytewise):
    if bytewise:
        for i in range(len(data)):
            parser.feed(data[i:i + 1])
    else:
        parser.feed(data)


def accepts(data, **caps):
    """data parses whole and byte by byte; the stream root is left open."""
    for bytewise in (False, True):
        sink = Sink()
        parser = Parser(sink, **caps)
        _feed(parser, data, bytewise)
        assert parser.depth == 1, (data[:80], bytewise, parser.depth)
        assert sink.starts == sink.ends + 1, (data[:80], bytewise)


def refuses(data, **caps):
    """data raises XMLError whole and byte by byte, at the latest with its last byte."""
    for bytewise in (False, True):
        parser = Parser(Sink(), **caps)
        error = raises(XMLError, _feed, parser, data, bytewise)
        assert isinstance(error, ValueError)


def check_cap(stanza, limit, **caps):
    """stanza(n) is a depth-1 element whose capped quantity is n.

    At the limit it passes, alone and after another of its shape; one past
    it fails, alone and after one at the limit (the shape then known).
    """
    root = b"<s>"
    at, past = stanza(limit), stanza(limit + 1)
    accepts(root + at, **caps)
    accepts(root + at + at, **caps)
    refuses(root + past, **caps)
    refuses(root + at + past, **caps)


# -- stanza builders: the capped quantity is n ----------------------------------


def _pad(total, used):
    count = total - used
    assert count >= 0
    return b"x" * count


def _exact(build):
    """build, checked to give stanzas of exactly n bytes."""

    def exact(n):
        stanza = build(n)
        assert len(stanza) == n, (stanza, n)
        return stanza

    return exact


def stanza_plain(n):
    return b"<m>" + _pad(n, 7) + b"</m>"


def stanza_end_tag_with_space(n):
    # "</m >" is no "</m>": the end tag takes the careful path.
    return b"<m>" + _pad(n, 8) + b"</m >"


def stanza_reference_in_attribute(n):
    return b"<m a='&amp;'>" + _pad(n, 17) + b"</m>"


def stanza_line_end_in_attribute(n):
    return b"<m a='\n'>" + _pad(n, 14) + b"</m >"


def stanza_empty(n):
    return b"<m a='" + _pad(n, 9) + b"'/>"


def stanza_empty_with_reference(n):
    return b"<m a='&lt;" + _pad(n, 13) + b"'/>"


def stanza_nested_careful(n):
    return b"<m><x a='&#10;'>" + _pad(n, 26) + b"</x ></m >"


STANZA_SHAPES = tuple(_exact(build) for build in (
    stanza_plain, stanza_end_tag_with_space, stanza_reference_in_attribute, stanza_line_end_in_attribute,
    stanza_empty, stanza_empty_with_reference, stanza_nested_careful,
))


def nested(tag, close):
    """Depth n in all (the root counts): n - 1 elements nested in the root."""

    def build(n):
        return tag * (n - 1) + close * (n - 1)

    return build


DEPTH_SHAPES = (
    nested(b"<a>", b"</a>"),
    nested(b"<a b='1'>", b"</a>"),
    nested(b"<a b='&amp;'>", b"</a>"),
    nested(b"<a b='\n'>", b"</a >"),
    nested(b"<a\n>", b"</a\n>"),
)


def attrs(value, quote=b"'"):
    def build(n):
        return b"<m" + b"".join(
            b" a" + str(i).encode() + b"=" + quote + value + quote for i in range(n)
        ) + b"/>"

    return build


ATTR_SHAPES = (attrs(b"v"), attrs(b"v", b'"'), attrs(b"&amp;"), attrs(b"\n"), attrs(b"x>y"))


def element_name(template):
    def build(n):
        return template.replace(b"N", b"n" * n)

    return build


NAME_SHAPES = tuple(element_name(t) for t in (
    b"<N/>",
    b"<N></N>",
    b"<N></N >",
    b"<N a='&amp;'/>",
    b"<N\n/>",
    b"<m N='v'/>",
    b"<m N='&amp;'/>",
    b"<m b='1' N='\n'/>",
    b"<m><N>x</N></m>",
    b"<m><N a='&lt;'>x</N ></m>",
))


def attr_value(template):
    def build(n):
        return template.replace(b"V", b"v" * n)

    return build


def attr_value_with_reference(n):
    # The cap counts the value's bytes as written: "&amp;" is 5 of them.
    return b"<m a='&amp;" + b"v" * (n - 5) + b"'/>"


VALUE_SHAPES = (
    attr_value(b"<m a='V'/>"),
    attr_value(b'<m a="V"/>'),
    attr_value(b"<m a='V'></m >"),
    attr_value(b"<m b='\n' a='V'/>"),
    attr_value(b"<m><x a='V' b='2'/></m>"),
    attr_value_with_reference,
)


# -- caps at the limit and one past, on every path ------------------------------


def test_stanza_cap_on_every_path():
    for shape in STANZA_SHAPES:
        for cap in (40, 41, 64):
            check_cap(shape, cap, max_stanza_bytes=cap)


def test_depth_cap_on_every_path():
    for shape in DEPTH_SHAPES:
        for cap in (2, 3, 5):
            check_cap(shape, cap, max_depth=cap)


def test_attribute_cap_on_every_path():
    for shape in ATTR_SHAPES:
        for cap in (1, 2, 5):
            check_cap(shape, cap, max_attrs=cap)


def test_name_cap_on_every_path():
    for shape in NAME_SHAPES:
        for cap in (1, 8, 13):
            check_cap(shape, cap, max_name=cap)


def test_attribute_value_cap_on_every_path():
    for shape in VALUE_SHAPES:
        for cap in (5, 8, 30):
            check_cap(shape, cap, max_attr_value=cap)


def test_stream_header_obeys_the_stanza_cap():
    # The stream root's start tag is held whole until its ">": the stanza cap bounds it too.
    cap = 60
    head = b"<stream:stream id='"
    at = head + b"v" * (cap - len(head) - 2) + b"'>"
    assert len(at) == cap
    accepts(at, max_stanza_bytes=cap, max_attr_value=cap)
    refuses(head + b"v" * (cap - len(head) - 1) + b"'>", max_stanza_bytes=cap, max_attr_value=cap)


def test_a_21_byte_stanza_with_a_careful_end_tag_is_refused_at_a_20_byte_cap():
    stanza = b"<m>0123456789abc</m >"
    assert len(stanza) == 21
    refuses(b"<s>" + stanza, max_stanza_bytes=20)
    accepts(b"<s>" + stanza, max_stanza_bytes=21)
    # The same on a stanza whose start tag took the careful path too.
    stanza = b"<m a='&lt;'>0123</m >"
    assert len(stanza) == 21
    refuses(b"<s>" + stanza, max_stanza_bytes=20)
    accepts(b"<s>" + stanza, max_stanza_bytes=21)


# -- the defaults, pinned ---------------------------------------------------------


def test_default_values_are_pinned():
    assert parser_module.MAX_DEPTH == 16
    assert parser_module.MAX_STANZA_BYTES == 16384
    assert parser_module.MAX_ATTRS == 16
    assert parser_module.MAX_NAME == 64
    assert parser_module.MAX_ATTR_VALUE == 3072
    assert parser_module.MAX_REFERENCE == 32
    assert RFC_STANZA_FLOOR <= parser_module.MAX_STANZA_BYTES <= RAM_SAFE_STANZA_CEILING


def test_default_parser_enforces_the_default_values():
    # Absolute numbers: a default changed in the module shows here as well.
    check_cap(stanza_plain, 16384)
    check_cap(stanza_end_tag_with_space, 16384)
    check_cap(DEPTH_SHAPES[0], 16)
    check_cap(DEPTH_SHAPES[2], 16)
    check_cap(ATTR_SHAPES[0], 16)
    check_cap(ATTR_SHAPES[2], 16)
    check_cap(NAME_SHAPES[0], 64)
    check_cap(NAME_SHAPES[6], 64)
    check_cap(VALUE_SHAPES[0], 3072)
    check_cap(VALUE_SHAPES[3], 3072)
