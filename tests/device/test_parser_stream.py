"""The parser on an XMPP stream: strictness between stanzas, errors as their
byte arrives, liveness counters, hostile tokens, and what feed() accepts.
"""

from support import raises

from xmpp_lite import parser as parser_module
from xmpp_lite.parser import Parser, XMLError
from xmpp_lite.parser_rare import CONDITION_TEXT_BETWEEN_STANZAS

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


class Sink:
    def __init__(self):
        self.events = []

    def start(self, name, attrs):
        self.events.append(("start", name))

    def end(self, name):
        self.events.append(("end", name))

    def text(self, data):
        # Adjacent text events joined: how text is cut depends on the chunks.
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", self.events[-1][1] + data)
        else:
            self.events.append(("text", data))


def fails_at(data, **options):
    """Feed data byte by byte; return the index of the byte whose feed raised, and the error."""
    parser = Parser(Sink(), **options)
    for i in range(len(data)):
        try:
            parser.feed(data[i:i + 1])
        except XMLError as error:
            return i, error
    raise AssertionError("no XMLError for %r" % data)


# -- only whitespace between stanzas --------------------------------------------


def test_text_between_stanzas_is_a_bad_format_stream_error():
    assert CONDITION_TEXT_BETWEEN_STANZAS == "bad-format"
    for junk in (b"x", b"  hello ", b"&amp;", b"&#32;", b"]]>", b"\xc3\xa9", b"<![CDATA[ ]]>"):
        data = HEADER + b"<message/>" + junk + b"<message/>"
        error = raises(XMLError, Parser(Sink()).feed, data)
        assert error.condition == "bad-format", (junk, error.condition)
        # Byte by byte: the first byte that is not whitespace fails at once.
        at, error = fails_at(data)
        first = len(HEADER) + len(b"<message/>") + len(junk) - len(junk.lstrip(b" "))
        if junk.startswith(b"<!"):
            first += 1  # "<!" between stanzas is an error whatever follows
        assert at == first, (junk, at, first)
        assert error.condition == "bad-format"


def test_the_condition_stays_with_the_sticky_error():
    parser = Parser(Sink())
    raises(XMLError, parser.feed, HEADER + b"junk")
    error = raises(XMLError, parser.feed, b" ")
    assert error.condition == "bad-format"
    # Other errors leave the choice to the session.
    error = raises(XMLError, Parser(Sink()).feed, HEADER + b"<m></n>")
    assert error.condition is None


def test_text_inside_stanzas_and_around_a_plain_document_root():
    sink = Sink()
    Parser(sink).feed(HEADER + b"<message><body>hi</body></message> \n")
    assert ("text", "hi") in sink.events
    # One element parsed alone (stream=False) may hold text right inside it.
    sink = Sink()
    Parser(sink, stream=False).feed(b"<body>hi</body>")
    assert sink.events == [("start", "body"), ("text", "hi"), ("end", "body")]


def test_liveness_counts_stanzas_and_whitespace_only():
    parser = Parser(Sink())
    parser.feed(HEADER)
    assert (parser.stanzas, parser.whitespace) == (0, 0)
    parser.feed(b" ")
    parser.feed(b"\r\n\t ")
    assert (parser.stanzas, parser.whitespace) == (0, 5)
    # A partial stanza is no proof of life; its end is.
    parser.feed(b"<message><body>x")
    assert parser.stanzas == 0
    parser.feed(b"  </body></message")
    assert parser.stanzas == 0
    parser.feed(b"><r xmlns='urn:xmpp:sm:3'/>")
    assert (parser.stanzas, parser.whitespace) == (2, 5)
    # Whitespace inside a stanza is not between stanzas.
    parser.feed(b"<a><b/> </a >")
    assert (parser.stanzas, parser.whitespace) == (3, 5)
    # The counters go on across a stream restart.
    parser.reset()
    parser.feed(HEADER + b" <a/>")
    assert (parser.stanzas, parser.whitespace) == (4, 6)


# -- errors inside an unfinished tag, raised with their byte -----------------------


def test_errors_in_an_unfinished_tag_are_raised_with_their_byte():
    for data, bad in (
        (b"<doc a1=\"v1'></doc>", b"<"),  # a "<" in a value that never closes
        (b"<doc></'x", b"'"),  # an end tag's name starts with "'"
        (b"<doc></d\x01", b"\x01"),
        (b"<doc></doc x>", b"x"),  # junk after an end tag's name
        (b"<doc a'='1'/>", b"'"),  # a bad character in an attribute name
        (b"<d'oc/>", b"'"),  # in an element name
        (b"<doc a='1'b='2'/>", b"b"),  # no white space between attributes
        (b"<doc a b='1'/>", b"b"),  # an attribute without "="
        (b"<doc a=1/>", b"1"),  # an unquoted value
        (b"<doc a='1'/x>", b"x"),  # "/" not followed by ">"
        (b"<'doc/>", b"'"),
    ):
        at, _ = fails_at(data, stream=False)
        assert at == data.index(bad, 1), (data, at)


def test_caps_in_an_unfinished_tag_fail_with_the_byte_past_them():
    for data, cap, options in (
        (b"<s><" + b"n" * 9, 3 + 1 + 8, {"max_name": 8}),
        (b"<s><m " + b"n" * 9, 3 + 3 + 8, {"max_name": 8}),
        (b"<s></" + b"n" * 9, 3 + 2 + 8, {"max_name": 8}),
        (b"<s><m a='" + b"v" * 9, 3 + 6 + 8, {"max_attr_value": 8}),
        (b"<s><m a='1' b='2' c", 3 + 15, {"max_attrs": 2}),
    ):
        at, _ = fails_at(data, **options)
        assert at == cap, (data, at, cap)


# -- hostile tokens: an error early, nothing big held ------------------------------


def _flood(parser, head, piece, limit):
    """Feed head, then piece until XMLError; return the bytes fed and the most the parser held."""
    parser.feed(head)
    fed = len(head)
    most = 0
    while fed < limit:
        try:
            parser.feed(piece)
        except XMLError:
            return fed + len(piece), most
        fed += len(piece)
        # What the parser holds of an unfinished token (internals: no API needs it).
        most = max(most, len(parser._buf) + sum(len(part) for part in parser._parts or ()))
    raise AssertionError("no XMLError after %d bytes of %r" % (fed, head))


def test_hostile_tokens_fail_early_and_hold_little():
    chunk = 512
    stanza = b"<message to='a@b/c'><body>"
    for head, piece, fails_by, holds in (
        # 1 MB attribute value: fails at the value cap; the value is held, nothing else.
        (b"<message a='", b"v" * chunk, 3072 + chunk, 3072 + 16),
        # 100 KB element name: fails at the name cap.
        (b"<", b"n" * chunk, 64 + chunk, 0),
        # 100000 attributes: fails at the 17th.
        (b"<message", b" a='1'", 17 * 6, 17 * 6 + 8),
        # 10 MB of text or CDATA in a body: passed on as it comes, fails at the stanza cap.
        (stanza, b"t" * chunk, 16384 + chunk, 8),
        (stanza + b"<![CDATA[", b"c" * chunk, 16384 + chunk, 8),
        (stanza + b"<![CDATA[", b"]" * chunk, 16384 + chunk, 8),
    ):
        parser = Parser(Sink())
        parser.feed(HEADER)
        fed, most = _flood(parser, head, piece, 1 << 20)
        assert fed - len(head) <= fails_by, (head, fed)
        assert most <= holds, (head, most)


# -- what feed() accepts --------------------------------------------------------------


def test_feed_takes_bytes_bytearray_and_memoryview_and_keeps_none_of_them():
    data = HEADER + b"<message id='1'><body>caf\xc3\xa9</body></message>"
    expected = Sink()
    Parser(expected).feed(data)
    for cut in (1, 7, len(HEADER) + 5, len(data) - 3):
        sink = Sink()
        parser = Parser(sink)
        buffer = bytearray(len(data))
        view = memoryview(buffer)
        pos = 0
        while pos < len(data):
            piece = data[pos:pos + cut]
            buffer[:len(piece)] = piece
            parser.feed(view[:len(piece)] if pos % 2 else buffer[:len(piece)])
            # The caller reuses its buffer at once: the parser must not see that.
            for i in range(len(buffer)):
                buffer[i] = 0x3C
            pos += len(piece)
        assert sink.events == expected.events, cut


def test_defaults_of_a_new_parser():
    parser = Parser(Sink())
    assert (parser.max_depth, parser.max_stanza_bytes, parser.max_attrs, parser.max_name,
            parser.max_attr_value) == (16, 16384, 16, 64, 3072)
    assert parser_module.MAX_ATTR_VALUE == 3072


def test_a_tag_that_comes_a_byte_at_a_time_is_kept_in_few_pieces():
    # A piece per byte would cost an object per byte: a few hundred bytes of
    # heap for each byte held.
    parser = Parser(Sink())
    parser.feed(HEADER + b"<message")
    tag = b"".join(b" a%d='%s'" % (i, b"v" * 1000) for i in range(16))
    for i in range(len(tag)):
        parser.feed(tag[i:i + 1])
    pieces = 1 + len(parser._parts)  # internals: the head and the pieces after it
    assert pieces <= len(tag) // 512 + 2, pieces
    parser.feed(b"/>")
    assert parser.stanzas == 1


def test_errors_in_an_unfinished_tag_after_shapes_are_known():
    # The same errors once the parser knows tag shapes (a cheaper screen
    # then passes a cut tag that starts like a known one).
    warm = b"<s><m a='1' b='2'/><m a='1' b='2'/><doc a='1'/>"
    for data, bad in (
        (warm + b"<'m/>", b"'"),
        (warm + b"<m a='1' b='x<", b"<"),
        (warm + b"<m a='1'b", b"b"),
        (warm + b"<m a='1' b=2", b"2"),
        (warm + b"<m a='1' b='2' c='3'", b"c"),
        (warm + b"<m a='" + b"v" * 9, b"v" * 9),
    ):
        at, _ = fails_at(data, max_attrs=2, max_attr_value=8)
        assert at == data.rindex(bad) + len(bad) - 1, (data, at)
