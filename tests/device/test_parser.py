"""Tests of xmpp_lite.parser: events, chunking, well-formedness, XMPP restrictions, caps, memory.

Every fixture is fed whole, byte by byte, in random splits (support.chunkings)
and, when it is short, cut in two at every position; each way must give the
same events (adjacent text events joined) or raise XMLError.
"""

import sys

from support import RANDOM_SPLITS, Prng, chunkings, raises

from xmpp_lite import parser as parser_module
from xmpp_lite.parser import (
    MAX_ATTRS,
    MAX_DEPTH,
    MAX_NAME,
    MAX_REFERENCE,
    MAX_STANZA_BYTES,
    XMLError,
)

try:
    import gc
except ImportError:  # pragma: no cover
    gc = None

try:
    import tracemalloc  # CPython only
except ImportError:  # pragma: no cover - MicroPython
    tracemalloc = None



def Parser(handler, **options):  # noqa: N802 - stands in for the class
    """A parser of plain documents: most fixtures here hold text right inside
    their root. The rules of XMPP streams (only whitespace between stanzas)
    are tested in test_parser_stream.py."""
    options.setdefault("stream", False)
    return parser_module.Parser(handler, **options)


NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

# Fixtures up to this size are also cut in two at every byte.
SHORT = 80
# Longer fixtures are cut in windows of this size, see splits().
WINDOW = 256


# -- recording and feeding ----------------------------------------------------


class Recorder:
    """Parser handler that records events, joining adjacent text events."""

    def __init__(self):
        self.events = []

    def start(self, name, attrs):
        assert isinstance(name, str)
        assert isinstance(attrs, dict)
        for key in attrs:
            assert isinstance(key, str) and isinstance(attrs[key], str)
        self.events.append(("start", name, dict(attrs)))

    def end(self, name):
        assert isinstance(name, str)
        self.events.append(("end", name))

    def text(self, data):
        assert isinstance(data, str)
        events = self.events
        if events and events[-1][0] == "text":
            events[-1] = ("text", events[-1][1] + data)
        elif data:
            events.append(("text", data))


class Counter:
    """Parser handler that only counts, for the long-stream test."""

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


def start(name, attrs=None):
    return ("start", name, attrs or {})


def end(name):
    return ("end", name)


def text(data):
    return ("text", data)


def element(name, attrs=None, *content):
    """The events of a whole element; content items are text (str) or event lists."""
    events = [start(name, attrs)]
    for item in content:
        if isinstance(item, str):
            events.append(text(item))
        else:
            events.extend(item)
    events.append(end(name))
    return events


def feed_all(parser, chunks):
    for chunk in chunks:
        parser.feed(chunk)


def parse(chunks, **caps):
    recorder = Recorder()
    feed_all(Parser(recorder, **caps), chunks)
    return recorder.events


def _windowed(data, way, first):
    """Chunks of data: windows of WINDOW bytes (the first one `first` bytes
    long), each cut the way-th way that chunkings() cuts it.

    The chunks come one by one, not as chunkings()'s lists: a list of one
    bytes object per byte of a window needs a block of 8 * WINDOW bytes,
    which a fragmented heap of the VM may not have.
    """
    start, stop = 0, first
    while start < len(data):
        window = data[start:stop]
        if way == 0:
            yield window
        elif way == 1:
            for i in range(len(window)):
                yield window[i:i + 1]
        else:
            # chunkings()'s random cuts: the same draws from the same Prng.
            prng = Prng(1)
            for split in range(way - 1):
                largest = (1 << (split + 2)) - 1
                pos = 0
                while pos < len(window):
                    size = prng.randrange(1, largest + 1)
                    if split == way - 2:
                        yield window[pos:pos + size]
                    pos += size
        start, stop = stop, stop + WINDOW


def test_windowed_cuts_as_chunkings_does():
    data = bytes(range(100))  # two windows: 40 bytes, then the 60 left
    for way in range(2 + RANDOM_SPLITS):
        expected = list(chunkings(data[:40]))[way] + list(chunkings(data[40:]))[way]
        assert list(_windowed(data, way, 40)) == expected, way


def splits(data):
    """Yield (label, chunks): every way support.chunkings() cuts data and, if
    data is short, every cut in two pieces.

    One bytes object per byte of a long stream does not fit the VM's heap, so
    data longer than WINDOW is cut window by window, lazily, each window in
    every way chunkings() cuts it; a second pass moves the window edges by
    half a window, so that no cut is forced at the same place twice.
    """
    if len(data) <= WINDOW:
        for chunks in chunkings(data):
            yield chunks, chunks
        if len(data) <= SHORT:
            for cut in range(1, len(data)):
                chunks = [data[:cut], data[cut:]]
                yield chunks, chunks
        return
    yield "whole", [data]
    for first in (WINDOW, WINDOW // 2):
        for way in range(2 + RANDOM_SPLITS):
            yield "way %d of windows from %d" % (way, first), _windowed(data, way, first)


def check(data, expected, **caps):
    """data gives exactly the expected events however it is cut."""
    for label, chunks in splits(data):
        got = parse(chunks, **caps)
        if got != expected:
            raise AssertionError("%r cut as %r gave %r, expected %r" % (data, label, got, expected))


def check_error(data, **caps):
    """data raises XMLError however it is cut, and the parser stays failed."""
    for label, chunks in splits(data):
        parser = Parser(Recorder(), **caps)
        try:
            feed_all(parser, chunks)
        except XMLError as error:
            assert isinstance(error, ValueError)
        else:
            raise AssertionError("no XMLError for %r cut as %r" % (data, label))
        raises(XMLError, parser.feed, b"<a/>")


def check_errors(fixtures, **caps):
    for data in fixtures:
        check_error(data, **caps)


def in_root(data):
    return b"<r>" + data + b"</r>"


# -- a realistic stream ---------------------------------------------------------

# The server's side of a c2s session (after TLS) up to SASL success; the stream
# then restarts.
STREAM_AUTH = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" id='c2s-5e1' from='example.net' version='1.0' xml:lang='en'>"
    b"<stream:features>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>"
    b"</mechanisms>"
    b"</stream:features>"
    b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng=="
    b"</challenge>"
    b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9</success>"
)

STREAM_AUTH_EVENTS = (
    [
        start("stream:stream", {
            "xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "id": "c2s-5e1",
            "from": "example.net", "version": "1.0", "xml:lang": "en",
        })
    ]
    + element(
        "stream:features", None,
        element(
            "mechanisms", {"xmlns": NS_SASL},
            element("mechanism", None, "SCRAM-SHA-1"),
            element("mechanism", None, "PLAIN"),
        ),
    )
    + element(
        "challenge", {"xmlns": NS_SASL},
        "cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==",
    )
    + element("success", {"xmlns": NS_SASL}, "dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9")
)

# The restarted stream: bind, stanzas with nested payloads, whitespace
# keepalives between them, and the server closing the stream.
STREAM_ONLINE = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"'
    b' id="c2s-5e2" from="example.net" version="1.0" xml:lang="en">'
    b"<stream:features>"
    b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
    b"<sm xmlns='urn:xmpp:sm:3'/>"
    b"</stream:features>"
    b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    b"<jid>node7@example.net/esp32-a1</jid></bind></iq>"
    b"\n"
    b'<message from="ctl@example.net/desk" to="node7@example.net/esp32-a1" type="chat" id="m-17">\n'
    b"  <body>Set relay 2 &amp; fan &lt;on&gt; at 21.5 \xc2\xb0C \xe2\x80\x94 caf\xc3\xa9 \xf0\x9f\x8c\xa1</body>\n"
    b"  <thread>t-1</thread>\n"
    b'  <x xmlns="jabber:x:data" type="submit">'
    b'<field var="relay"><value>2</value></field>'
    b'<field var="mode"><value>auto</value></field>'
    b"</x>\n"
    b"</message>"
    b" "
    b"<presence from='ctl@example.net/desk' to='node7@example.net'>"
    b"<show>dnd</show><status>in a meeting &#x2014; back at 14:00</status><priority>5</priority>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/client'"
    b" ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
    b"</presence>"
    b" "
    b"<iq from='example.net' to='node7@example.net/esp32-a1' id='ping-3' type='get'>"
    b"<ping xmlns='urn:xmpp:ping'/></iq>"
    b"\r\n"
    b"<message from='ctl@example.net/desk' type='chat'>"
    b"<body><![CDATA[if (t < 5 && rh > 80) { fan(\"on\"); }]]></body>"
    b"</message>"
    b"</stream:stream>"
)

STREAM_ONLINE_EVENTS = (
    [
        start("stream:stream", {
            "xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "id": "c2s-5e2",
            "from": "example.net", "version": "1.0", "xml:lang": "en",
        })
    ]
    + element(
        "stream:features", None,
        element("bind", {"xmlns": "urn:ietf:params:xml:ns:xmpp-bind"}),
        element("session", {"xmlns": "urn:ietf:params:xml:ns:xmpp-session"}, element("optional")),
        element("sm", {"xmlns": "urn:xmpp:sm:3"}),
    )
    + element(
        "iq", {"type": "result", "id": "bind_1"},
        element(
            "bind", {"xmlns": "urn:ietf:params:xml:ns:xmpp-bind"},
            element("jid", None, "node7@example.net/esp32-a1"),
        ),
    )
    + [text("\n")]
    + element(
        "message",
        {"from": "ctl@example.net/desk", "to": "node7@example.net/esp32-a1", "type": "chat", "id": "m-17"},
        "\n  ",
        element("body", None, "Set relay 2 & fan <on> at 21.5 \u00b0C \u2014 caf\u00e9 \U0001f321"),
        "\n  ",
        element("thread", None, "t-1"),
        "\n  ",
        element(
            "x", {"xmlns": "jabber:x:data", "type": "submit"},
            element("field", {"var": "relay"}, element("value", None, "2")),
            element("field", {"var": "mode"}, element("value", None, "auto")),
        ),
        "\n",
    )
    + [text(" ")]
    + element(
        "presence", {"from": "ctl@example.net/desk", "to": "node7@example.net"},
        element("show", None, "dnd"),
        element("status", None, "in a meeting \u2014 back at 14:00"),
        element("priority", None, "5"),
        element("c", {
            "xmlns": "http://jabber.org/protocol/caps", "hash": "sha-1",
            "node": "https://example.org/client", "ver": "QgayPKawpkPSDYmwT/WM94uAlu0=",
        }),
    )
    + [text(" ")]
    + element(
        "iq", {"from": "example.net", "to": "node7@example.net/esp32-a1", "id": "ping-3", "type": "get"},
        element("ping", {"xmlns": "urn:xmpp:ping"}),
    )
    + [text("\n")]
    + element(
        "message", {"from": "ctl@example.net/desk", "type": "chat"},
        element("body", None, 'if (t < 5 && rh > 80) { fan("on"); }'),
    )
    + [end("stream:stream")]
)


def test_xml_error_is_a_value_error():
    assert issubclass(XMLError, ValueError)


def test_realistic_stream_before_authentication():
    check(STREAM_AUTH, STREAM_AUTH_EVENTS)


def test_realistic_stream_after_restart():
    check(STREAM_ONLINE, STREAM_ONLINE_EVENTS)


def _python_screen(data, size):
    """parser._screen's contract in Python, for runtimes without the native one."""
    found = 0
    for byte in data[:size]:
        if byte < 0x20:
            if byte != 0x09 and byte != 0x0A and byte != 0x0D:
                return 2
            found = 1
    return found


def test_a_session_stream_needs_no_parser_rare():
    # What a session sees all the time is parsed by xmpp_lite.parser alone,
    # however it is cut: a board keeps only that module on its heap. (The
    # declaration comes whole, with the stream header, as from a server.)
    # Without the native control screen (CPython) the portable one is in
    # parser_rare: a Python stand-in takes its place here.
    from xmpp_lite import unload

    stream = STREAM_AUTH[21:] + (
        b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<jid>node7@example.net/esp32-a1</jid></bind></iq>\r\n"
        b"<message from='ctl@example.net/desk' to='node7@example.net/esp32-a1' type='chat' id='m-17'>"
        b"<body>it&apos;s 21.5 \xc2\xb0C &amp; caf\xc3\xa9 \xe2\x80\x94 &lt;ok&gt;\r\nbye</body></message> "
        b'<presence from="ctl@example.net/desk"><show>dnd</show></presence>\n'
        b"<iq from='example.net' id='ping-3' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        b"</stream:stream>"
    )
    saved = parser_module._screen
    if saved is None:
        parser_module._screen = _python_screen
    try:
        unload("xmpp_lite.parser_rare")
        for label, chunks in splits(stream):
            recorder = Recorder()
            parser = Parser(recorder)
            parser.feed(STREAM_AUTH[:21])
            feed_all(parser, chunks)
            assert recorder.events[-1] == end("stream:stream"), label
            assert "xmpp_lite.parser_rare" not in sys.modules, label
    finally:
        parser_module._screen = saved


def test_stream_restart_with_reset_between_feeds():
    for _, chunks in splits(STREAM_AUTH + STREAM_ONLINE):
        recorder = Recorder()
        parser = Parser(recorder)
        fed = 0
        for chunk in chunks:
            fed += len(chunk)
            if fed <= len(STREAM_AUTH):
                parser.feed(chunk)
                continue
            # The first chunk past the restart point: the old stream's part of
            # it, reset, then the new stream's part.
            head = len(chunk) - (fed - len(STREAM_AUTH))
            if head > 0:
                parser.feed(chunk[:head])
            if head >= 0:
                assert parser.depth == 1
                parser.reset()
                assert parser.depth == 0
            parser.feed(chunk[max(head, 0):])
        assert recorder.events == STREAM_AUTH_EVENTS + STREAM_ONLINE_EVENTS
        assert parser.depth == 0


def test_depth_follows_the_open_elements():
    recorder = Recorder()
    parser = Parser(recorder)
    assert parser.depth == 0
    parser.feed(b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")
    assert parser.depth == 1
    parser.feed(b"<message><body>hi")
    assert parser.depth == 3
    parser.feed(b"</body><x/>")
    assert parser.depth == 2
    parser.feed(b"</message> ")
    assert parser.depth == 1
    parser.feed(b"</stream:stream>")
    assert parser.depth == 0


def test_events_fire_as_soon_as_their_bytes_arrive():
    recorder = Recorder()
    events = recorder.events
    parser = Parser(recorder)
    parser.feed(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + NS_STREAMS.encode())
    assert events == []
    parser.feed(b"' version='1.0'")
    assert events == []
    parser.feed(b">")
    header = start("stream:stream", {"xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "version": "1.0"})
    assert events == [header]
    parser.feed(b"<message to='a@example.net'>")
    assert events[-1] == start("message", {"to": "a@example.net"})
    parser.feed(b"<body>hel")
    assert events[-2:] == [start("body"), text("hel")]
    parser.feed(b"lo")
    assert events[-1] == text("hello")
    parser.feed(b"</body")
    assert events[-1] == text("hello")
    parser.feed(b">")
    assert events[-1] == end("body")
    parser.feed(b"<active xmlns='http://jabber.org/protocol/chatstates'/>")
    assert events[-2:] == [start("active", {"xmlns": "http://jabber.org/protocol/chatstates"}), end("active")]
    parser.feed(b"</message>")
    assert events[-1] == end("message")
    parser.feed(b" ")  # a whitespace keepalive
    assert events[-1] == text(" ")
    parser.feed(b"<presence/>")
    assert events[-2:] == [start("presence"), end("presence")]
    assert len(events) == 11
    assert parser.depth == 1


def test_empty_feeds_change_nothing():
    recorder = Recorder()
    parser = Parser(recorder)
    parser.feed(b"")
    parser.feed(b"<a>")
    parser.feed(b"")
    parser.feed(b"x</a>")
    parser.feed(b"")
    assert recorder.events == element("a", None, "x")


# -- text, references, CDATA, line ends -----------------------------------------


def test_predefined_entities_and_character_references():
    check(
        in_root(b"&amp;&lt;&gt;&quot;&apos;|&#65;&#x42;&#x0043;&#00068;&#xe9;&#xE9;&#x20AC;&#128512;&#x1F600;"),
        element("r", None, "&<>\"'|ABCD\u00e9\u00e9\u20ac\U0001f600\U0001f600"),
    )


def test_character_references_at_the_edges_of_the_allowed_ranges():
    check(
        in_root(b"&#9;&#xA;&#x20;&#xD7FF;&#xE000;&#xFFFD;&#x10000;&#x10FFFF;&#1114111;"),
        element("r", None, "\t\n \ud7ff\ue000\ufffd\U00010000\U0010ffff\U0010ffff"),
    )


def test_references_split_across_chunks():
    # splits() cuts this short fixture at every byte, inside every reference.
    check(
        b"<r a='&amp;&#x41;&#66;&lt;'>&amp;&#x41;&#66;&gt;&quot;&apos;</r>",
        element("r", {"a": "&AB<"}, "&AB>\"'"),
    )
    check(in_root(b"x&#x1F600;y&#128512;z"), element("r", None, "x\U0001f600y\U0001f600z"))


def test_reference_of_exactly_max_reference_bytes():
    ref = b"&#" + b"0" * (MAX_REFERENCE - 5) + b"65;"
    assert len(ref) == MAX_REFERENCE
    check(in_root(ref), element("r", None, "A"))
    check(b"<r a='" + ref + b"'/>", element("r", {"a": "A"}))
    hex_ref = b"&#x" + b"0" * (MAX_REFERENCE - 6) + b"41;"
    assert len(hex_ref) == MAX_REFERENCE
    check(in_root(hex_ref), element("r", None, "A"))


def test_reference_longer_than_max_reference_is_an_error():
    ref = b"&#" + b"0" * (MAX_REFERENCE - 4) + b"65;"
    assert len(ref) == MAX_REFERENCE + 1
    check_errors([in_root(ref), b"<r a='" + ref + b"'/>"])


def test_unterminated_reference_fails_once_past_max_reference():
    parser = Parser(Recorder())
    parser.feed(b"<r>text &#")
    for _ in range(MAX_REFERENCE - 2):
        parser.feed(b"0")  # "&#000..." is MAX_REFERENCE bytes now, still possibly valid
    raises(XMLError, parser.feed, b"0")


def test_brackets_inside_text():
    check(in_root(b"a]b]]c]]]d] ]>e]]&gt;f>"), element("r", None, "a]b]]c]]]d] ]>e]]>f>"))
    check(in_root(b"]"), element("r", None, "]"))
    check(in_root(b"]]"), element("r", None, "]]"))
    check(in_root(b"x]]<y/>]]"), element("r", None, "x]]", element("y"), "]]"))


def test_cdata_sections():
    check(in_root(b"<![CDATA[<message> & &amp; </body>]]>"), element("r", None, "<message> & &amp; </body>"))
    check(in_root(b"<![CDATA[x]y]]z]]]]>"), element("r", None, "x]y]]z]]"))
    check(in_root(b"<![CDATA[]]>"), element("r"))
    check(in_root(b"<![CDATA[]]]>"), element("r", None, "]"))
    check(in_root(b"<![CDATA[a\r\nb\rc\nd\r\r\ne\r]]>"), element("r", None, "a\nb\nc\nd\n\ne\n"))
    check(in_root(b"t1<![CDATA[c1]]>t2<![CDATA[c2]]><x/>"), element("r", None, "t1c1t2c2", element("x")))
    check(
        in_root(b"<![CDATA[caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80]]>"),
        element("r", None, "caf\u00e9 \u20ac \U0001f600"),
    )
    check(in_root(b"<![CDATA[<![CDATA[ ]]>"), element("r", None, "<![CDATA[ "))


def test_line_ends_in_text_are_normalised():
    check(in_root(b"1\r\n2\r3\n4\r\n\r\n5\r\r6\n\r7\r"), element("r", None, "1\n2\n3\n4\n\n5\n\n6\n\n7\n"))
    check(in_root(b"\r\n<x>\r</x>\r\n"), element("r", None, "\n", element("x", None, "\n"), "\n"))


def test_crlf_split_across_chunks_gives_one_line_end():
    data = in_root(b"a\r\nb")
    for cut in range(len(data)):
        assert parse([data[:cut], data[cut:]]) == element("r", None, "a\nb")
    assert parse([b"<r>a\r", b"\n", b"\r", b"\nb</r>"]) == element("r", None, "a\n\nb")
    assert parse([b"<r>a\r", b"\r", b"\n", b"b</r>"]) == element("r", None, "a\n\nb")


def test_character_references_to_line_ends_are_kept():
    check(in_root(b"&#13;&#10;|&#xD;|&#13;\r\n"), element("r", None, "\r\n|\r|\r\n"))


def test_characters_xml_allows():
    # TAB, LF, CR, DEL, the C1 range, the edges around the surrogates and U+FFFE,
    # and the last plane are all XML characters.
    raw = (
        b"\t\x7f\xc2\x80\xc2\x85\xc2\x9f\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd"
        b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xe2\x80\xa8"
    )
    expected = "\t\x7f\x80\x85\x9f\ud7ff\ue000\ufffd\U00010000\U0010ffff\u2028"
    check(in_root(raw), element("r", None, expected))
    check(b"<r a='" + raw + b"'/>", element("r", {"a": " " + expected[1:]}))
    check(in_root(b"<![CDATA[" + raw + b"]]>"), element("r", None, expected))


# -- UTF-8 ------------------------------------------------------------------------


def test_multibyte_characters_split_at_every_position():
    # One character of each length; splits() cuts every short fixture at each
    # byte, so each sequence is cut at every position.
    for char in ("\u00e9", "\u20ac", "\U0001f600"):
        raw = char.encode("utf-8")
        check(in_root(b"x" + raw + b"y" + raw), element("r", None, "x" + char + "y" + char))
        check(in_root(raw), element("r", None, char))
        check(b"<r a='" + raw + b"' b=\"" + raw + raw + b"\"/>", element("r", {"a": char, "b": char + char}))
        check(in_root(b"<![CDATA[" + raw + b"]]>"), element("r", None, char))
        check(b"<r>" + raw + b"&amp;" + raw + b"</r>", element("r", None, char + "&" + char))
    for name in ("\u00e9t\u00e9", "\u6e29\u5ea6"):
        raw = name.encode("utf-8")
        check(b"<" + raw + b" " + raw + b"='1'>t</" + raw + b">", element(name, {name: "1"}, "t"))


def test_non_ascii_names_and_values():
    data = (
        "<capteur:temp\u00e9rature xmlns:capteur='urn:x:capteur' unit\u00e9='\u00b0C' "
        "\u540d\u524d=\"\u6e29\u5ea6\" a\u00b7b='\u0394\u03b8' _\u0300='x'>"
        "21,5 \u00b0C</capteur:temp\u00e9rature>"
    ).encode("utf-8")
    check(data, element(
        "capteur:temp\u00e9rature",
        {
            "xmlns:capteur": "urn:x:capteur", "unit\u00e9": "\u00b0C", "\u540d\u524d": "\u6e29\u5ea6",
            "a\u00b7b": "\u0394\u03b8", "_\u0300": "x",
        },
        "21,5 \u00b0C",
    ))


INVALID_UTF8 = (
    b"\x80",  # lone continuation bytes
    b"\xbf",
    b"\xc3\xa9\xa9",  # a continuation byte too many
    b"\xc3",  # truncated sequences
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xc0\xaf",  # overlong 2-byte
    b"\xc1\xbf",
    b"\xe0\x80\xaf",  # overlong 3-byte
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\xaf",  # overlong 4-byte
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # UTF-16 surrogates
    b"\xed\xbf\xbf",
    b"\xed\xa0\xbd\xed\xb8\x80",  # a surrogate pair written as two sequences
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf7\xbf\xbf\xbf",
    b"\xf8\x88\x80\x80\x80",  # 5- and 6-byte forms
    b"\xfc\x84\x80\x80\x80\x80",
)


def _in_every_place(bad):
    """Fixtures with bad bytes in text, a value, CDATA, names, and outside the root."""
    return (
        in_root(b"x" + bad + b"y"),
        in_root(bad),
        b"<r a='x" + bad + b"y'/>",
        b'<r a="' + bad + b'"/>',
        in_root(b"<![CDATA[x" + bad + b"y]]>"),
        b"<r" + bad + b"/>",
        b"<r a" + bad + b"='1'/>",
        bad + b"<r/>",
        b"<r/>" + bad + b" ",
    )


def test_invalid_utf8_is_an_error():
    for bad in INVALID_UTF8:
        check_errors(_in_every_place(bad))


def test_bytes_f5_to_ff_and_c0_c1_are_errors():
    for byte in [0xC0, 0xC1] + list(range(0xF5, 0x100)):
        bad = bytes([byte])
        check_errors(_in_every_place(bad))
        check_errors(_in_every_place(bad + b"\x80\x80\x80"))


def test_bad_utf8_next_to_good_multibyte_characters():
    # Two-byte characters around an overlong form, and characters of every
    # length around the other bad sequences.
    for good in (b"caf\xc3\xa9", b"\xd0\xb4\xd0\xb0", b"\xe4\xb8\xad", b"\xf0\x9f\x98\x80"):
        for bad in (b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xef\xbf\xbe",
                    b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80"):
            check_errors(_in_every_place(good + bad + good))
        check(in_root(good + b"<x a='" + good + b"'/>"),
              element("r", None, str(good, "utf-8"), element("x", {"a": str(good, "utf-8")})))


def test_byte_that_never_starts_a_character_fails_at_once():
    # Nothing that follows can make these bytes valid, so the feed that brings
    # them must fail, even when they end the chunk.
    for byte in [0x80, 0xC0, 0xC1] + list(range(0xF5, 0x100)):
        bad = bytes([byte])
        for prefix in (b"<r>", b"<r>text", b"<r>]"):
            parser = Parser(Recorder())
            parser.feed(prefix)
            error = raises(XMLError, parser.feed, bad)
            assert isinstance(error, ValueError)


CONTROL_CHARACTERS = [bytes([code]) for code in range(0x20) if code not in (0x09, 0x0A, 0x0D)]


def test_control_characters_are_errors():
    for char in CONTROL_CHARACTERS:
        check_errors([
            in_root(b"x" + char + b"y"),
            b"<r a='" + char + b"'/>",
            in_root(b"<![CDATA[" + char + b"]]>"),
            b"<r" + char + b"/>",
            char + b"<r/>",
        ])


def test_control_characters_anywhere_in_a_long_chunk_are_errors():
    # Chunks are screened for control characters in pieces of a few hundred
    # bytes: a control character in any piece, first byte to last, and in a
    # short last piece, must be found; TAB, LF and CR must pass.
    body = b"caf\xc3\xa9 \xd0\xb4\xd0\xb0 " * 50  # 600 bytes, bytes >= 0x80 among them
    for size in (1, 64, 65, 255, 256, 257, 511, 512, 513, 600):
        data = body[:size].rstrip(b"\x80\x81\x82\x83\xa9\xb0\xb4\xc3\xd0")  # no cut character
        data += b"x" * (size - len(data))
        for at in range(0, size, 1 if size < 260 else 7):
            if data[at] >= 0x80:
                continue
            for char in (b"\x00", b"\x01", b"\x1f", b"\x0b"):
                parser = Parser(Recorder())
                parser.feed(b"<r>")
                raises(XMLError, parser.feed, data[:at] + char + data[at + 1:])
        for char in (b"\t", b"\n", b"\r"):
            recorder = Recorder()
            parser = Parser(recorder)
            parser.feed(b"<r>" + char + data + char + b"</r>")
            assert recorder.events[-1] == end("r")


def test_both_control_character_screens_agree():
    # The native screen runs where MicroPython has a native emitter, the
    # portable one elsewhere: each is checked here wherever it exists.
    from xmpp_lite import parser_rare

    screens = [parser_rare.check_controls_portable]
    if parser_module._screen is not None:
        screens.append(parser_rare.check_controls)
    body = b"temp=21.5C caf\xc3\xa9 " * 40
    for size in (1, 63, 64, 65, 256, 300, 512, 700):
        data = (body * 2)[:size]
        for check in screens:
            assert check(data) is True
            for at in (0, size // 2, size - 1):
                for allowed in (b"\t", b"\n", b"\r"):
                    assert check(data[:at] + allowed + data[at + 1:]) is False
                for char in CONTROL_CHARACTERS:
                    raises(XMLError, check, data[:at] + char + data[at + 1:])


def test_noncharacters_fffe_and_ffff_are_errors():
    for raw in (b"\xef\xbf\xbe", b"\xef\xbf\xbf"):
        check_errors(_in_every_place(raw))
    check_errors([
        in_root(b"&#xFFFE;"), in_root(b"&#xFFFF;"), in_root(b"&#65534;"), in_root(b"&#65535;"),
        b"<r a='&#xFFFE;'/>", b"<r a='&#65535;'/>",
    ])


def test_character_references_to_forbidden_characters_are_errors():
    fixtures = []
    for ref in (
        b"&#0;", b"&#x0;", b"&#x00000;", b"&#1;", b"&#x8;", b"&#xB;", b"&#xC;", b"&#x1F;", b"&#31;",
        b"&#xD800;", b"&#xDFFF;", b"&#55296;", b"&#57343;",
        b"&#x110000;", b"&#1114112;", b"&#xFFFFFFFF;", b"&#99999999999;",
    ):
        fixtures.append(in_root(ref))
        fixtures.append(b"<r a='" + ref + b"'/>")
    check_errors(fixtures)


def test_malformed_character_references_are_errors():
    fixtures = []
    for ref in (
        b"&#;", b"&#x;", b"&#12a;", b"&#x_1;", b"&#_1;", b"&#X41;", b"&#x 41;", b"&# 65;", b"&#65 ;",
        b"&#+65;", b"&#-65;", b"&#x-41;", b"&#xG;", b"&#6.5;", b"&#x41", b"&#65", b"&amp", b"&",
        b"& amp;", b"&#\xd9\xa5;",
    ):
        fixtures.append(in_root(ref + b" "))
        fixtures.append(b"<r a='" + ref + b"'/>")
    check_errors(fixtures)


def test_other_entities_are_errors():
    fixtures = []
    for ref in (b"&nbsp;", b"&copy;", b"&AMP;", b"&Amp;", b"&lt ;", b"&;", b"&foo:bar;", b"&\xc3\xa9;"):
        fixtures.append(in_root(ref))
        fixtures.append(b"<r a='" + ref + b"'/>")
    check_errors(fixtures)


def test_cdata_end_in_text_is_an_error():
    check_errors([
        in_root(b"]]>"),
        in_root(b"a]]>b"),
        in_root(b"]]]>"),
        in_root(b"<x/>]]><x/>"),
        b"<r>" + b"]" * 9 + b">",
    ])


# -- tags and attributes ---------------------------------------------------------


def test_attribute_quotes_and_white_space():
    check(
        b"<r a=\"it's\" b='say \"hi\"' c=\"\" d='' e='x=y' f=\"/\"/>",
        element("r", {"a": "it's", "b": 'say "hi"', "c": "", "d": "", "e": "x=y", "f": "/"}),
    )
    check(
        b"<r a = '1'\tb\t=\t\"2\"\nc\n=\n'3'\r\nd\r\n=\r\n\"4\"  \n/>",
        element("r", {"a": "1", "b": "2", "c": "3", "d": "4"}),
    )
    check(b"<r\n>x</r\n>", element("r", None, "x"))
    check(b"<r >x</r >", element("r", None, "x"))
    check(b"<r/>", element("r"))
    check(b"<r />", element("r"))
    check(b"<r a='1' />", element("r", {"a": "1"}))
    check(b"<r\ta='1'\r\n/>", element("r", {"a": "1"}))


def test_one_quote_style_with_the_other_quote_in_values():
    check(b"<r a='say \"hi\"' b='\"'/>", element("r", {"a": 'say "hi"', "b": '"'}))
    check(b"<r a=\"it's\" b=\"'\">x</r>", element("r", {"a": "it's", "b": "'"}, "x"))
    check(b"<r a='\"' b='x\ty'/>", element("r", {"a": '"', "b": "x y"}))
    check(b"<r a=\"1\" b='2\"/>'/>", element("r", {"a": "1", "b": '2"/>'}))
    check_errors([b"<r a='1\"' \"b='2'/>", b"<r a='1' b\"='2'/>", b"<r a='1\"\"'\"/>", b"<r\"/>"])


def test_greater_than_inside_attribute_values():
    check(b"<r a='>' b=\">>\"/>", element("r", {"a": ">", "b": ">>"}))
    check(b"<r a='x>y'>t</r>", element("r", {"a": "x>y"}, "t"))
    check(b"<r a='/>'><x b=\"a>b\" c='>'/></r>", element("r", {"a": "/>"}, element("x", {"b": "a>b", "c": ">"})))
    check(b"<r a='1' b='>' c='2'/>", element("r", {"a": "1", "b": ">", "c": "2"}))
    check(b"<r a=']]>'/>", element("r", {"a": "]]>"}))


def test_attribute_value_normalisation():
    # Literal TAB, LF and CR (CRLF counting as one) become spaces; the same
    # characters written as references are kept.
    check(
        b"<r a='x\ty\nz\r\nw\rv' b='&#9;&#10;&#13;' c=' &#13;&#10; \r\n' d='\r\n\r\n' e='&#x9;\t&#xA;\n&#xD;\r'/>",
        element("r", {
            "a": "x y z w v", "b": "\t\n\r", "c": " \r\n  ", "d": "  ", "e": "\t \n \r ",
        }),
    )


def test_attribute_value_line_end_split_across_chunks():
    data = b"<r a='1\r\n2'/>"
    expected = element("r", {"a": "1 2"})
    for cut in range(len(data)):
        assert parse([data[:cut], data[cut:]]) == expected


def test_namespace_declarations_are_plain_attributes():
    check(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en'>"
        b"<p:x xmlns:p='urn:p' p:a='1' a='2'/>",
        [
            start("stream:stream", {"xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "xml:lang": "en"}),
            start("p:x", {"xmlns:p": "urn:p", "p:a": "1", "a": "2"}),
            end("p:x"),
        ],
    )


def test_names_with_every_ascii_name_character():
    name = "_:Az-09.b"
    raw = name.encode()
    check(b"<" + raw + b" " + raw + b"='v' A.-_:9='w'></" + raw + b">", element(name, {name: "v", "A.-_:9": "w"}))


def test_invalid_names_are_errors():
    check_errors([
        b"<1a/>", b"<-a/>", b"<.a/>", b"< a/>", b"<>", b"</>", b"<a$/>", b"<a!/>",
        b"<r 1a='1'/>", b"<r -a='1'/>", b"<r a$='1'/>",
        "<\u00b7a/>".encode("utf-8"),  # may follow a name's first character, not start it
        "<\u0300a/>".encode("utf-8"),
        "<a\u00a0b/>".encode("utf-8"),  # no-break space
        "<a\u2028/>".encode("utf-8"),
        "<a\u00d7/>".encode("utf-8"),  # multiplication sign
        "<r \u00b7a='1'/>".encode("utf-8"),
        "<r a\u00f7='1'/>".encode("utf-8"),
    ])


def test_malformed_tags_are_errors():
    check_errors([
        b"<r a=1/>",  # unquoted value
        b"<r a=1>x</r>",
        b"<r a>x</r>",  # no value
        b"<r a=>x</r>",
        b"<r a='1'b='2'/>",  # no white space between attributes
        b'<r a="1"b="2"/>',
        b"<r a='1'/ >",
        b"<r / >",
        b"<r/ >",
        b"<r a='1' / >",
        b"<r a='1'='2'/>",
        b"<r a=='1'/>",
        b"<r 'a'='1'/>",
        b"<r a='1' \"/>",
        b"<r></ r>",
        b"<r></r a='1'>",
        b"<r></r/>",
        b"<r><x></x x></r>",
    ])


def test_less_than_in_attribute_value_is_an_error():
    check_errors([b"<r a='<'/>", b"<r a='x<y'/>", b'<r a="<x/>"/>', b"<r a='&amp;<'/>"])


def test_duplicate_attributes_are_errors():
    check_errors([
        b"<r a='1' a='2'/>",
        b"<r a='1' a=\"2\"/>",
        b"<r a='1' b='2' a='1'/>",
        b"<r xmlns='x' xmlns='y'/>",
        b"<r xmlns:p='x' xmlns:p='x'/>",
        b"<r a\n=\n'1'\ta='&amp;'/>",
    ])


def test_mismatched_end_tags_are_errors():
    check_errors([
        b"<r></x>",
        b"<r><x></r></x>",
        b"<r><x></r>",
        b"<r></R>",
        b"<r></rr>",
        b"<rr></r>",
        b"<p:r></r>",
        b"<r></p:r>",
        "<\u00e9></e>".encode("utf-8"),
        b"</r>",
        b"<r/></r>",
    ])


# -- what XMPP forbids, and the document around the root ------------------------


def test_comments_are_errors():
    check_errors([
        b"<!-- hi --><r/>",
        in_root(b"<!-- hi -->"),
        in_root(b"<!---->"),
        b"<r/><!-- hi -->",
        b"<?xml version='1.0'?><!-- hi --><r/>",
    ])


def test_processing_instructions_are_errors():
    check_errors([
        b"<?pi data?><r/>",
        in_root(b"<?pi data?>"),
        in_root(b"<?pi?>"),
        b"<r/><?pi?>",
        b"<?xml-stylesheet href='a.xsl'?><r/>",
        b"<?xml version='1.0'?><?pi?><r/>",
        b"<?XML version='1.0'?><r/>",
        b"<?xmlx version='1.0'?><r/>",
    ])


def test_doctype_and_other_declarations_are_errors():
    check_errors([
        b"<!DOCTYPE r><r/>",
        b"<!DOCTYPE r [<!ENTITY e 'x'>]><r>&e;</r>",
        b"<?xml version='1.0'?><!DOCTYPE r SYSTEM 'r.dtd'><r/>",
        in_root(b"<!DOCTYPE r>"),
        in_root(b"<!ENTITY e 'x'>"),
        in_root(b"<!ELEMENT r ANY>"),
        in_root(b"<![IGNORE[x]]>"),
        in_root(b"<!x>"),
        b"<![CDATA[x]]><r/>",  # CDATA is content: not outside the root
    ])


def test_xml_declaration_forms():
    for decl in (
        b"<?xml version='1.0'?>",
        b'<?xml version="1.0"?>',
        b"<?xml version='1.0' encoding='UTF-8'?>",
        b"<?xml version='1.0' encoding='utf-8'?>",
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>",
        b"<?xml version='1.0' standalone='no' ?>",
        b"<?xml  version = '1.0'\n encoding\t=\t'UTF-8'\r\n?>",
        b"<?xml version='1.1'?>",
    ):
        check(decl + b"<r/>", element("r"))
        check(decl + b"\r\n \t<r/>", element("r"))


def test_byte_order_mark_before_the_declaration_or_the_root():
    bom = b"\xef\xbb\xbf"
    check(bom + b"<?xml version='1.0'?><r>x</r>", element("r", None, "x"))
    check(bom + b"<r>x</r>", element("r", None, "x"))
    check(bom + b" \n<r>x</r>", element("r", None, "x"))
    check_errors([
        bom + bom + b"<r/>",
        b" " + bom + b"<r/>",
        bom + b" <?xml version='1.0'?><r/>",
        b"<?xml version='1.0'?>" + bom + b"<r/>",
    ])


def test_misplaced_or_malformed_xml_declarations_are_errors():
    decl = b"<?xml version='1.0'?>"
    check_errors([
        b" " + decl + b"<r/>",  # after white space
        b"\n" + decl + b"<r/>",
        b"\r\n" + decl + b"<r/>",
        decl + decl + b"<r/>",  # twice
        decl + b" " + decl + b"<r/>",
        in_root(decl),  # inside the root
        b"<r/>" + decl,  # after it
        b"<?xml?><r/>",
        b"<?xml ?><r/>",
        b"<?xml encoding='UTF-8'?><r/>",  # no version
        b"<?xml version='1.0' standalone='yes' encoding='UTF-8'?><r/>",  # wrong order
        b"<?xml version=\"1.0'?><r/>",
        b"<?xml version=1.0?><r/>",
        b"<?xml version='1.0' encoding='ISO-8859-1'?><r/>",  # XMPP is UTF-8 only
        b"<?xml version='1.0' standalone='maybe'?><r/>",
        b"<?xml version='1.0' foo='bar'?><r/>",
    ])


def test_malformed_xml_declaration_fails_when_its_end_arrives():
    # The declaration cannot contain '>' except in its closing "?>", so a
    # declaration broken before its first '>' is known to be bad there; it
    # must not swallow the stream up to the stanza cap waiting for "?>".
    check_errors([
        b"<?xml version='1.0'?x><stream:stream xmlns='jabber:client'>",
        b"<?xml version='1.0' ><stream:stream xmlns='jabber:client'>",
        b"<?xml version='1.0'><r>some text</r>",
    ])


def test_white_space_around_the_root_is_not_reported():
    check(b" \t\r\n<r>x</r> \t\r\n", element("r", None, "x"))
    check(b"<?xml version='1.0'?>\n\n<r/>\n", element("r"))


def test_content_outside_the_root_is_an_error():
    check_errors([
        b"x<r/>",
        b"<r/>x",
        b"<r/> x ",
        b"&amp;<r/>",
        b"<r/>&amp;",
        b"&#32;<r/>",
        b"<r/>&#32;",
        b"<r/><r/>",  # a second root
        b"<r/> <r/>",
        b"<r></r><x>",
        b"<r/></r>",
        b"<r/>]]>",
        b"\xc2\xa0<r/>",  # white space that XML does not count as S
        b"\xe3\x80\x80<r/>",
        b"\x0c<r/>",
    ])


def test_end_of_the_stream_root_then_white_space():
    check(b"<stream:stream>" + b"<x/>" + b"</stream:stream>\r\n ", element("stream:stream", None, element("x")))


# -- caps -----------------------------------------------------------------------


def _nested(depth):
    return b"".join(b"<e" + str(i).encode() + b">" for i in range(depth)) + b"".join(
        b"</e" + str(i).encode() + b">" for i in reversed(range(depth))
    )


def _nested_events(depth):
    names = ["e" + str(i) for i in range(depth)]
    return [start(name) for name in names] + [end(name) for name in reversed(names)]


def test_depth_cap_met_exactly():
    check(_nested(MAX_DEPTH), _nested_events(MAX_DEPTH))
    check(_nested(3), _nested_events(3), max_depth=3)
    check(_nested(1), _nested_events(1), max_depth=1)


def test_depth_cap_exceeded_by_one():
    check_error(_nested(MAX_DEPTH + 1))
    check_error(_nested(4), max_depth=3)
    check_error(b"<r><x/></r>", max_depth=1)
    check_error(b"<a><b><c/></b></a>", max_depth=2)


def test_depth_cap_counts_open_elements_not_total():
    siblings = b"<r>" + b"<a><b/></a>" * 20 + b"</r>"
    check(siblings, element("r", None, *([element("a", None, element("b"))] * 20)), max_depth=3)


def _stanza(size):
    """A depth-1 element of exactly size bytes."""
    return b"<m>" + b"x" * (size - 7) + b"</m>"


def test_stanza_cap_met_exactly():
    for cap in (64, 100):
        stanza = _stanza(cap)
        assert len(stanza) == cap
        check(
            b"<s>" + stanza + b" " + stanza + b"</s>",
            element("s", None, element("m", None, "x" * (cap - 7)), " ", element("m", None, "x" * (cap - 7))),
            max_stanza_bytes=cap,
        )
        empty = b"<m a='" + b"v" * (cap - 9) + b"'/>"
        assert len(empty) == cap
        check(b"<s>" + empty + b"</s>", element("s", None, element("m", {"a": "v" * (cap - 9)})), max_stanza_bytes=cap)


def test_stanza_cap_exceeded_by_one():
    for cap in (64, 100):
        check_error(b"<s>" + _stanza(cap + 1) + b"</s>", max_stanza_bytes=cap)
        check_error(b"<s>" + _stanza(cap) + _stanza(cap + 1), max_stanza_bytes=cap)
        check_error(b"<s><m a='" + b"v" * (cap - 8) + b"'/></s>", max_stanza_bytes=cap)
        # Nested elements count with their stanza: cap bytes pass, one more fails.
        check(
            b"<s><m><x>" + b"y" * (cap - 14) + b"</x></m></s>",
            element("s", None, element("m", None, element("x", None, "y" * (cap - 14)))),
            max_stanza_bytes=cap,
        )
        check_error(b"<s><m><x>" + b"y" * (cap - 13) + b"</x></m></s>", max_stanza_bytes=cap)


def _stanza_pieces(size, piece):
    """A depth-1 element of size bytes, in pieces of at most piece bytes, ">" last.

    Made piece by piece: the VM's heap may not have 16 KB in one block.
    """
    yield b"<m>"
    left = size - 7
    while left > 0:
        count = min(piece, left)
        yield b"x" * count
        left -= count
    yield b"</m"
    yield b">"


def test_default_stanza_cap():
    for piece in (7, 1000, 4096):
        parser = Parser(Counter())
        parser.feed(b"<s>")
        feed_all(parser, _stanza_pieces(MAX_STANZA_BYTES, piece))
        assert parser.depth == 1
        # All but the last byte of a stanza one byte too big are within the cap.
        parser = Parser(Counter())
        parser.feed(b"<s>")
        for chunk in _stanza_pieces(MAX_STANZA_BYTES + 1, piece):
            if chunk == b">":
                raises(XMLError, parser.feed, chunk)
                break
            parser.feed(chunk)
        assert chunk == b">"


def _fails_at(parser, head, piece, cap):
    """Feed head, then piece until it fails; return how many bytes had been fed then."""
    fed = 0
    parser.feed(head)
    fed += len(head)
    while fed <= cap + 4 * len(piece):
        try:
            parser.feed(piece)
        except XMLError:
            return fed + len(piece)
        fed += len(piece)
    raise AssertionError("no XMLError after %d bytes" % fed)


def test_stanza_that_never_ends_fails_once_past_the_cap():
    cap = 100
    # Text, an unclosed start tag, an unclosed CDATA section, child elements:
    # each fails with the feed that takes the stanza past cap bytes.
    for head, piece in (
        (b"<m>", b"x"),
        (b"<m>", b"xyz"),
        (b"<m>", b"<x>"),
        (b"<m>", b"<x/>"),
        (b"<m a='", b"v"),
        (b"<m><x a='", b"vvvvv"),
        (b"<m><![CDATA[", b"c"),
        (b"<m><![CDATA[", b"]]]"),
        (b"<m>", b"]"),
        (b"<m>", b"\r"),
        (b"<m a='1' ", b" "),
    ):
        parser = Parser(Recorder(), max_stanza_bytes=cap, max_depth=100)
        parser.feed(b"<stream:stream>")
        fed = _fails_at(parser, head, piece, cap)
        assert fed > cap and fed - len(piece) <= cap, (head, piece, fed)
        raises(XMLError, parser.feed, b"</m>")


def test_token_outside_a_stanza_that_never_ends_fails_once_past_the_cap():
    # The stream header, the XML declaration and a stanza's own start tag are
    # held whole until they end; each may hold at most cap bytes.
    cap = 100
    for before, head, piece in (
        (b"", b"<stream:stream a='", b"v"),
        (b"", b"<stream:stream", b" "),
        (b"", b"<?xml version='1.0'", b" "),
        (b"<stream:stream><m/>", b"<x a='", b"v"),
    ):
        parser = Parser(Recorder(), max_stanza_bytes=cap)
        if before:
            parser.feed(before)
        fed = _fails_at(parser, head, piece, cap)
        assert fed > cap and fed - len(piece) <= cap, (head, piece, fed)


def test_text_between_stanzas_is_not_capped():
    # Whitespace keepalives at depth 1 go on for ever; nothing is kept of them.
    recorder = Counter()
    parser = Parser(recorder, max_stanza_bytes=64)
    parser.feed(b"<stream:stream>")
    for _ in range(200):
        parser.feed(b" \n \r\n\t")
    parser.feed(b"<m>x</m>")
    assert parser.depth == 1
    assert recorder.text_bytes == 200 * 5 + 1
    assert recorder.starts == 2


def _attrs_tag(count, value=b"v", quote=b"'"):
    return b"<r" + b"".join(
        b" a" + str(i).encode() + b"=" + quote + value + quote for i in range(count)
    ) + b"/>"


def _attrs(count, value="v"):
    attrs = {}
    for i in range(count):
        attrs["a" + str(i)] = value
    return attrs


def test_attribute_cap_met_exactly():
    check(_attrs_tag(MAX_ATTRS), element("r", _attrs(MAX_ATTRS)))
    check(_attrs_tag(MAX_ATTRS, b"&amp;", b'"'), element("r", _attrs(MAX_ATTRS, "&")))
    check(_attrs_tag(2), element("r", _attrs(2)), max_attrs=2)
    check(b"<r xmlns='a' xmlns:p='b'/>", element("r", {"xmlns": "a", "xmlns:p": "b"}), max_attrs=2)


def test_attribute_cap_exceeded_by_one():
    check_error(_attrs_tag(MAX_ATTRS + 1))
    check_error(_attrs_tag(MAX_ATTRS + 1, b"&amp;", b'"'))
    check_error(_attrs_tag(3), max_attrs=2)
    check_error(b"<r xmlns='a' xmlns:p='b' p:c='1'/>", max_attrs=2)
    check_error(b"<r><x a='1' b='2' c='3'/></r>", max_attrs=2)


def test_name_cap_met_exactly():
    name = "n" * MAX_NAME
    raw = name.encode()
    check(b"<" + raw + b" " + raw + b"='1'>x</" + raw + b">", element(name, {name: "1"}, "x"))
    check(b"<" + raw + b" " + raw + b"='&amp;'/>", element(name, {name: "&"}))
    # The cap counts bytes: 8 two-byte characters fill a 16-byte cap.
    wide = "\u00e9" * 8
    check(("<" + wide + " " + wide + "='1'/>").encode("utf-8"), element(wide, {wide: "1"}), max_name=16)
    check(b"<p:abcd q:abcd='1'/>", element("p:abcd", {"q:abcd": "1"}), max_name=6)


def test_name_cap_exceeded_by_one():
    raw = b"n" * (MAX_NAME + 1)
    check_errors([
        b"<" + raw + b"/>",
        b"<" + raw + b">x</" + raw + b">",
        b"<r " + raw + b"='1'/>",
        b"<r " + raw + b"='&amp;'/>",
        in_root(b"<" + raw + b"/>"),
    ])
    check_errors([b"<p:abcde/>", b"<r q:abcde='1'/>", b"<abc><abcdefg/></abc>"], max_name=6)
    # The cap counts bytes: eight two-byte characters and one more byte.
    wide = "\u00e9" * 8 + "x"
    check_errors([("<" + wide + "/>").encode("utf-8"), ("<r " + wide + "='1'/>").encode("utf-8")], max_name=16)


def test_caps_are_per_parser():
    small = Parser(Recorder(), max_depth=2, max_stanza_bytes=32, max_attrs=1, max_name=4)
    default = Recorder()
    parser = Parser(default)
    data = b"<stream><message a='1' b='2'><body>" + b"x" * 40 + b"</body></message>"
    parser.feed(data)
    assert default.events[-1] == end("message")
    raises(XMLError, small.feed, data)
    assert small.max_depth == 2 and parser.max_depth == MAX_DEPTH
    assert parser.max_stanza_bytes == MAX_STANZA_BYTES
    assert parser.max_attrs == MAX_ATTRS
    assert parser.max_name == MAX_NAME


# -- errors, reset ---------------------------------------------------------------


def test_error_is_sticky_until_reset():
    recorder = Recorder()
    parser = Parser(recorder)
    parser.feed(b"<stream:stream><message>")
    raises(XMLError, parser.feed, b"<!-- no -->")
    for data in (b"</message>", b"", b" ", b"<?xml version='1.0'?><r/>"):
        error = raises(XMLError, parser.feed, data)
        assert isinstance(error, ValueError)
    count = len(recorder.events)
    parser.reset()
    assert parser.depth == 0
    parser.feed(b"<?xml version='1.0'?><stream:stream><message/>")
    assert recorder.events[count:] == [start("stream:stream"), start("message"), end("message")]


def test_cap_error_is_sticky_until_reset():
    parser = Parser(Recorder(), max_depth=2)
    parser.feed(b"<s><m>")
    raises(XMLError, parser.feed, b"<x>")
    raises(XMLError, parser.feed, b"</m>")
    parser.reset()
    parser.feed(b"<s><m/>")
    assert parser.depth == 1


def test_reset_forgets_a_half_parsed_stream():
    recorder = Recorder()
    parser = Parser(recorder)
    parser.feed(b"\xef\xbb\xbf<?xml version='1.0'?><stream:stream><message><body>hi &am")
    assert parser.depth == 3
    parser.reset()
    assert parser.depth == 0
    del recorder.events[:]
    # A new stream may start with a BOM and an XML declaration again, and the
    # held "&am" and "<message>" are gone.
    parser.feed(b"\xef\xbb\xbf<?xml version='1.0'?><stream:stream>p;</stream:stream>")
    assert recorder.events == element("stream:stream", None, "p;")


def test_reset_after_the_root_ended_allows_a_new_root():
    recorder = Recorder()
    parser = Parser(recorder)
    parser.feed(b"<?xml version='1.0'?><stream:stream></stream:stream>")
    raises(XMLError, Parser(Recorder()).feed, b"<s></s><s>")
    parser.reset()
    parser.feed(b"<?xml version='1.0'?><stream:stream>")
    assert recorder.events == element("stream:stream") + [start("stream:stream")]


def test_reset_from_a_handler_restarts_the_stream():
    # A client restarts the stream as soon as <success/> is reported, from
    # inside the parser's callback; what the parser still had of the old
    # stream must not leak into the new one.
    class Restarting(Recorder):
        def end(self, name):
            Recorder.end(self, name)
            if name == "success":
                self.parser.reset()

    for _, chunks in splits(STREAM_AUTH):
        recorder = Restarting()
        parser = recorder.parser = Parser(recorder)
        feed_all(parser, chunks)
        assert parser.depth == 0
        parser.feed(STREAM_ONLINE)
        assert recorder.events == STREAM_AUTH_EVENTS + STREAM_ONLINE_EVENTS


# -- long streams -----------------------------------------------------------------


def _stanzas(count):
    """Small stanzas of a few shapes, each cut in two at a varying point."""
    for i in range(count):
        n = str(i).encode()
        if i % 3 == 0:
            stanza = (
                b"<message to='node7@example.net/esp' id='m" + n + b"' type='chat'>"
                b"<body>reading " + n + b": 21.5 \xc2\xb0C &amp; 40%</body></message>"
            )
        elif i % 3 == 1:
            stanza = b"<presence id='p" + n + b"'><status>ok " + n + b"</status></presence>"
        else:
            stanza = b"<iq type='get' id='ping" + n + b"'><ping xmlns='urn:xmpp:ping'/></iq>\n "
        cut = i % len(stanza)
        yield i, stanza[:cut], stanza[cut:]


def _heap():
    if gc is not None:
        gc.collect()
    if gc is not None and hasattr(gc, "mem_alloc"):
        return gc.mem_alloc()  # MicroPython
    if tracemalloc is not None and tracemalloc.is_tracing():
        return tracemalloc.get_traced_memory()[0]
    return None


def test_long_stream_keeps_memory_flat():
    count = 5000
    counter = Counter()
    parser = Parser(counter)
    tracing = tracemalloc is not None and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        parser.feed(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'>")
        marks = {}
        for i, head, tail in _stanzas(count):
            parser.feed(head)
            parser.feed(tail)
            if i == 999 or i == count - 1:
                assert parser.depth == 1
                marks[i] = _heap()
    finally:
        if tracing:
            tracemalloc.stop()
    assert counter.starts == 1 + 2 * count
    assert counter.ends == counter.starts - 1
    first, last = marks[999], marks[count - 1]
    if first is not None:
        # Everything a stanza needs is dropped with it: 4000 more stanzas may
        # not leave more than a little behind.
        assert last - first < 1024, (first, last)
    parser.feed(b"</stream:stream>")
    assert parser.depth == 0
    assert counter.ends == counter.starts
