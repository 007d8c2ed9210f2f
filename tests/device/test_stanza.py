"""Tests of xmpp_lite.stanza: Element, serialisation, the stream Builder, stanza builders."""

from support import RANDOM_SPLITS, Prng, chunkings, raises

from xmpp_lite.parser import Parser, XMLError
from xmpp_lite.stanza import (
    NS_CLIENT,
    NS_STANZAS,
    NS_STREAMS,
    Builder,
    Element,
    error_reply,
    escape_attr,
    escape_text,
    iq,
    message,
    parse,
    presence,
    serialise,
)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"

STREAM_HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" from='example.com' id='s-1' version='1.0' xml:lang='en'>"
)

# A server's side of a c2s stream, with whitespace keepalives between stanzas.
STREAM = (
    STREAM_HEADER
    + b"<stream:features>"
    b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
    b"</stream:features>"
    b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    b" \n "
    b"<message from='ctl@example.com/desk' to='node7@example.com/esp' type='chat' id='m1'>"
    b"<body>relay 2 &amp; fan &lt;on&gt; \xe2\x82\xac</body>"
    b"<x xmlns='jabber:x:data' type='submit'><field var='relay'><value>1</value></field></x>"
    b"</message>"
    b"\n"
    b"<iq type='get' id='ping-1' from='example.com'><ping xmlns='urn:xmpp:ping'/></iq>"
    b" "
    b"<presence from='ctl@example.com/desk'>\n  <show>away</show>\n  <status>lunch</status>\n"
    b"  <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/>\n</presence>"
    b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced by new connection</text>"
    b"</stream:error>"
    b"</stream:stream>"
)


class Recorder:
    """Collects what a Builder reports, in order."""

    def __init__(self, **options):
        self.events = []
        self.stanzas = []
        self.builder = Builder(self.on_stanza, self.on_stream_start, self.on_stream_end, **options)
        self.parser = Parser(self.builder)

    def on_stanza(self, elem):
        self.events.append(("stanza", elem.name))
        self.stanzas.append(elem)
        # The builder keeps nothing of a stanza once it is dispatched.
        assert self.builder._stack == []

    def on_stream_start(self, name, attrs):
        self.events.append(("stream", name, attrs))

    def on_stream_end(self):
        self.events.append(("end",))

    def feed(self, chunks):
        for chunk in chunks:
            self.parser.feed(chunk)
        return self


def _same_xml(got, expected):
    """The same XML up to attribute order: MicroPython's dicts keep no insertion order."""
    return len(got) == len(expected) and parse(got) == parse(expected)


def _cut(data, way, seed, size=256):
    """Chunks of data cut the way-th way chunkings() cuts, done per window of size bytes.

    Cutting a whole stream byte by byte would hold a list of one-byte objects
    larger than the test heap; windows keep the list small and still fall in
    the middle of tags, references and UTF-8 sequences.
    """
    for start in range(0, len(data), size):
        for n, chunks in enumerate(chunkings(data[start:start + size], seed)):
            if n == way:
                for chunk in chunks:
                    yield chunk
                break

# chunkings() cuts data whole, byte by byte, then RANDOM_SPLITS random ways.
_WAYS = 2 + RANDOM_SPLITS


def _stream_of(body, root=b"<r>"):
    # A bare root with no default namespace: stanzas inside resolve just as standalone ones.
    return root + body


def _build(data, root=b"<r>"):
    """Stanzas built from a stream of root + data, fed whole."""
    return Recorder().feed([_stream_of(data, root)]).stanzas


# -- the Builder over a realistic stream ---------------------------------------


def _check_stream(rec):
    assert rec.events[0] == ("stream", "stream:stream", {
        "xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "from": "example.com",
        "id": "s-1", "version": "1.0", "xml:lang": "en"})
    assert [event[0] for event in rec.events[1:]] == ["stanza"] * 6 + ["end"]
    features, success, msg, ping, pres, error = rec.stanzas
    # The root is reported, not kept: the first Element is its first child.
    assert features.name == "stream:features" and features.local == "features"
    assert features.xmlns == NS_STREAMS
    assert features.find("starttls", NS_TLS).find("required").xmlns == NS_TLS
    mechanisms = features.find("mechanisms", NS_SASL)
    assert [m.text for m in mechanisms.find_all("mechanism")] == ["PLAIN", "SCRAM-SHA-1"]
    assert mechanisms.find("mechanism").xmlns == NS_SASL
    assert success.name == "success" and success.xmlns == NS_SASL and success.children == []
    assert msg.xmlns == NS_CLIENT
    assert msg.get("type") == "chat" and msg.get("id") == "m1"
    assert msg.find_text("body") == "relay 2 & fan <on> \u20ac"
    assert msg.find("body").xmlns == NS_CLIENT
    form = msg.find("x", "jabber:x:data")
    assert form.find("field").find_text("value") == "1"
    assert form.find("field").xmlns == "jabber:x:data"
    assert ping.xmlns == NS_CLIENT and ping.find("ping", "urn:xmpp:ping") is not None
    assert pres.find_text("show") == "away" and pres.find_text("status") == "lunch"
    assert pres.text == "\n  " and pres.find("status").tail == "\n  "
    assert pres.find("c", "http://jabber.org/protocol/caps").get("ver") == "v="
    assert error.name == "stream:error" and error.xmlns == NS_STREAMS
    assert error.find("conflict", NS_STREAM_ERRORS) is not None
    assert error.find_text("text", NS_STREAM_ERRORS) == "Replaced by new connection"
    assert error.find("text").get("xml:lang") == "en"


def test_builder_over_a_stream_in_every_chunking():
    first = None
    for way in range(_WAYS):
        rec = Recorder().feed(_cut(STREAM, way, 7))
        _check_stream(rec)
        if first is None:
            first = rec.stanzas
        else:
            # However the bytes arrive, the same elements come out.
            assert rec.stanzas == first
            for a, b in zip(rec.stanzas, first):
                assert serialise(a) == serialise(b)


def test_builder_reports_events_as_soon_as_they_complete():
    rec = Recorder()
    rec.feed([STREAM_HEADER])
    assert len(rec.events) == 1 and rec.events[0][1] == "stream:stream"
    assert rec.builder._stack == []  # the root is not kept
    rec.feed([b"<message><body>hi</bo"])
    assert rec.stanzas == [] and len(rec.builder._stack) == 2
    rec.feed([b"dy></message>"])
    assert rec.stanzas[0].find_text("body") == "hi"
    assert rec.builder._stack == []
    rec.feed([b"   ", b"\n", b"\t"])  # keepalives
    assert len(rec.events) == 2
    rec.feed([b"</stream:stream>"])
    assert rec.events[-1] == ("end",)


def test_builder_keeps_nothing_from_earlier_stanzas():
    kept = []
    builder = Builder(lambda elem: kept.append(len(elem.children)))
    parser = Parser(builder)
    parser.feed(STREAM_HEADER)
    for n in range(50):
        parser.feed(("<message id='%d'><body>%d</body></message> " % (n, n)).encode())
        assert builder._stack == []
    assert kept == [1] * 50
    for value in builder.__dict__.values():
        assert not isinstance(value, Element)


def test_builder_with_direct_calls_concatenates_text():
    got = []
    builder = Builder(got.append)
    builder.start("stream:stream", {"xmlns": "jabber:client", "xmlns:stream": NS_STREAMS})
    builder.text("\n")
    builder.start("message", {})
    builder.text("a")
    builder.text("b")
    builder.start("body", {})
    builder.text("c")
    builder.text("d")
    builder.end("body")
    builder.text("e")
    builder.text("f")
    builder.end("message")
    assert len(got) == 1
    msg = got[0]
    assert msg.text == "ab" and msg.find_text("body") == "cd" and msg.find("body").tail == "ef"
    assert msg.xmlns == NS_CLIENT


def test_builder_without_callbacks_for_the_root():
    got = []
    builder = Builder(got.append)
    Parser(builder).feed(STREAM_HEADER + b"<a/></stream:stream>")
    assert [elem.name for elem in got] == ["a"]


def test_builder_caps_the_elements_of_one_stanza():
    rec = Recorder(max_elements=3)
    rec.feed([STREAM_HEADER, b"<a><b/><c/></a>", b"<a><b/></a><x/>"])
    assert len(rec.stanzas) == 3  # the count starts again at every stanza
    error = raises(XMLError, rec.feed, [b"<a><b/><c/><d/></a>"])
    assert "3" in str(error)


def test_reset_for_a_stream_restart():
    rec = Recorder()
    rec.feed([STREAM_HEADER, b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"])
    rec.parser.reset()
    rec.builder.reset()
    header = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
              b" id='s-2' version='1.0'>")
    rec.feed([header, b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"])
    assert [event[0] for event in rec.events] == ["stream", "stanza", "stream", "stanza"]
    assert rec.events[2][2]["id"] == "s-2"
    features = rec.stanzas[1]
    assert features.xmlns == NS_STREAMS and features.find("bind").xmlns == "urn:ietf:params:xml:ns:xmpp-bind"


def test_reset_in_the_middle_of_a_stanza_drops_it():
    rec = Recorder()
    rec.feed([STREAM_HEADER, b"<message><body>half"])
    rec.parser.reset()
    rec.builder.reset()
    assert rec.builder._stack == []
    # A new stream with another default namespace: nothing of the old scope is left.
    rec.feed([b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
              b"<message><body>whole</body></message>"])
    assert len(rec.stanzas) == 1
    msg = rec.stanzas[0]
    assert msg.xmlns == "jabber:server" and msg.find_text("body") == "whole"


# -- namespaces ------------------------------------------------------------------


def test_namespace_resolution_defaults_and_redefinitions():
    (elem,) = _build(b"<a xmlns='u1'><b xmlns='u2'><c/></b><d/><e xmlns=''><f/></e></a>",
                     root=b"<r xmlns='root'>")
    assert elem.xmlns == "u1"
    b, d, e = elem.children
    assert b.xmlns == "u2" and b.find("c").xmlns == "u2"
    assert d.xmlns == "u1"
    assert e.xmlns == "" and e.find("f").xmlns == ""


def test_namespace_resolution_prefixes():
    (elem,) = _build(
        b"<p:a xmlns:p='u1' xmlns='d'>"
        b"<p:b xmlns:p='u2'><p:c/><c/></p:b>"
        b"<p:d/><e/><q:f/><stream:g/></p:a>",
        root=b"<r xmlns:stream='http://etherx.jabber.org/streams'>")
    assert elem.xmlns == "u1" and elem.local == "a"
    b, d, e, f, g = elem.children
    assert b.xmlns == "u2" and b.find("p:c").xmlns == "u2" and b.children[1].xmlns == "d"
    assert b.find("c", "d") is b.children[1]
    assert d.xmlns == "u1"  # the redefinition ended with p:b
    assert e.xmlns == "d"  # a prefixed element's default declaration applies to its children
    assert f.xmlns is None  # unbound prefix
    assert g.xmlns == NS_STREAMS  # bound on the stream root
    assert elem.find("g", NS_STREAMS) is g and elem.find("stream:g") is g


def test_namespace_scope_does_not_leak_between_stanzas():
    first, second = _build(b"<a xmlns:q='uq'><q:b/></a><q:c/>")
    assert first.find("b").xmlns == "uq"
    assert second.xmlns is None


def test_stanza_without_namespace_anywhere():
    (elem,) = _build(b"<a><b/></a>")
    assert elem.xmlns is None and elem.find("b").xmlns is None


def test_xml_prefix_is_predefined():
    (elem,) = _build(b"<xml:a/>")
    assert elem.xmlns == "http://www.w3.org/XML/1998/namespace"
    assert serialise(Element("a", {"xml:lang": "de"})) == b'<a xml:lang="de"/>'


# -- Element API -------------------------------------------------------------------


def test_element_basics():
    elem = Element("stream:features")
    assert elem.local == "features" and elem.xmlns is None
    assert Element("message").local == "message"
    assert Element("a", {"xmlns": "u"}).xmlns == "u"
    assert Element("a", {"xmlns": "u"}, xmlns="v").xmlns == "v"
    # A prefixed element's xmlns attribute is the default for its children, not its own namespace.
    assert Element("p:a", {"xmlns": "u"}).xmlns is None
    assert elem.text == "" and elem.tail == "" and elem.children == [] and elem.attrs == {}
    assert Element("a", text=None).text == ""


def test_get_and_set():
    elem = Element("iq", {"type": "get"})
    assert elem.get("type") == "get" and elem.get("id") is None and elem.get("id", "x") == "x"
    assert elem.set("id", "q1") is elem
    assert elem.get("id") == "q1"
    elem.set("n", 5)
    assert elem.get("n") == "5"
    elem.set("n", None)
    elem.set("missing", None)
    assert elem.attrs == {"type": "get", "id": "q1"}


def test_append_inherits_the_default_namespace():
    parent = Element("message", xmlns=NS_CLIENT)
    body = Element("body", text="x")
    assert parent.append(body) is body
    assert body.xmlns == NS_CLIENT
    own = parent.append(Element("x", xmlns="jabber:x:data"))
    assert own.xmlns == "jabber:x:data"
    field = own.append(Element("field"))
    assert field.xmlns == "jabber:x:data"
    prefixed = parent.append(Element("p:y"))
    assert prefixed.xmlns is None
    # Descendants without a namespace take it too.
    tree = Element("a", children=[Element("b", children=[Element("c")])])
    Element("root", xmlns="u").append(tree)
    assert tree.xmlns == "u" and tree.children[0].children[0].xmlns == "u"
    # A prefixed parent passes on its default declaration, not its own namespace.
    features = Element("stream:features", {"xmlns": NS_CLIENT}, xmlns=NS_STREAMS)
    assert features.append(Element("bind")).xmlns == NS_CLIENT
    assert Element("stream:features", xmlns=NS_STREAMS).append(Element("bind")).xmlns is None


def test_constructor_children_inherit():
    elem = Element("a", xmlns="u", children=[Element("b"), Element("c", xmlns="v")])
    assert [c.xmlns for c in elem.children] == ["u", "v"]


def test_find_find_all_find_text():
    elem = parse(
        "<query xmlns='jabber:iq:roster'><item jid='a'/><other xmlns='u'/>"
        "<item jid='b'><group>g</group></item><p:item xmlns:p='u'>t</p:item></query>")
    assert elem.find("item").get("jid") == "a"
    assert elem.find("item", "jabber:iq:roster").get("jid") == "a"
    assert elem.find("item", "u").name == "p:item"
    assert elem.find("nothing") is None and elem.find("item", "w") is None
    assert [c.get("jid") for c in elem.find_all("item", "jabber:iq:roster")] == ["a", "b"]
    assert len(elem.find_all("item")) == 3
    assert [c.local for c in elem.find_all(xmlns="u")] == ["other", "item"]
    assert len(elem.find_all()) == 4
    assert elem.find_all("nothing") == []
    assert elem.find_text("item", "u") == "t"
    assert elem.find_text("item") == ""
    assert elem.find_text("nothing") is None and elem.find_text("nothing", default="d") == "d"
    assert elem.find_all("item")[1].find_text("group") == "g"


def test_equality():
    assert Element("a", {"xmlns": "u"}) == Element("a", xmlns="u")
    assert Element("a", xmlns="u") != Element("a", xmlns="v")
    assert Element("a", xmlns="u") != Element("a")
    assert Element("a", {"k": "1"}) != Element("a", {"k": "2"})
    assert Element("a", {"k": "1"}) != Element("a", {"k": "1", "j": "2"})
    assert Element("a", text="t") != Element("a")
    assert Element("a") != Element("b")
    assert Element("a") != "a" and not (Element("a") == 1)
    # Namespace declarations are spelling; the resolved namespaces are compared.
    assert Element("a", {"xmlns:p": "u"}) == Element("a")
    with_decl = Element("a", {"xmlns:p": "u"}, children=[Element("p:b")])
    assert with_decl == Element("a", children=[Element("p:b", xmlns="u")])
    assert with_decl != Element("a", children=[Element("p:b", xmlns="v")])
    # A child without a namespace has its parent's.
    loose = Element("a", xmlns="u")
    loose.children.append(Element("b"))
    assert loose == Element("a", xmlns="u", children=[Element("b", xmlns="u")])
    # Children's tails count; the compared elements' own tails do not.
    x, y = Element("a", children=[Element("b")]), Element("a", children=[Element("b")])
    x.children[0].tail = "t"
    assert x != y
    y.children[0].tail = "t"
    x.tail = "outside"
    assert x == y
    assert len(repr(x)) < 60 and "a" in repr(x)


# -- escaping and serialisation -----------------------------------------------------


def test_escape_text():
    assert escape_text("plain") == "plain"
    assert escape_text("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_text("]]>") == "]]&gt;"
    assert escape_text("&amp;") == "&amp;amp;"
    assert escape_text("q\"'") == "q\"'"
    assert escape_text("a\r\nb\tc") == "a&#13;\nb\tc"


def test_escape_attr():
    assert escape_attr("plain") == "plain"
    assert escape_attr("<&>\"'") == "&lt;&amp;&gt;&quot;&apos;"
    assert escape_attr("a\tb\nc\rd") == "a&#9;b&#10;c&#13;d"
    assert escape_attr("\u00e9\U0001f600") == "\u00e9\U0001f600"


def test_serialise_forms():
    assert serialise(Element("a")) == b"<a/>"
    assert Element("a").serialise() == b"<a/>"
    assert serialise(Element("a", text="x")) == b"<a>x</a>"
    assert _same_xml(serialise(Element("a", {"k": "v", "n": 3})), b'<a k="v" n="3"/>')
    elem = Element("a", text="t", children=[Element("b")])
    elem.children[0].tail = "u"
    elem.tail = "not written"
    assert serialise(elem) == b"<a>t<b/>u</a>"
    assert serialise(Element("a", text="caf\u00e9 \U0001f600")) == b"<a>caf\xc3\xa9 \xf0\x9f\x98\x80</a>"


def test_serialise_writes_needed_namespace_declarations():
    elem = Element("message", xmlns=NS_CLIENT)
    elem.append(Element("body", text="x"))
    elem.append(Element("x", xmlns="jabber:x:data"))
    assert serialise(elem) == b'<message xmlns="jabber:client"><body>x</body><x xmlns="jabber:x:data"/></message>'
    # Inside a client stream the stanza's own namespace is already in force.
    assert serialise(elem, NS_CLIENT) == b'<message><body>x</body><x xmlns="jabber:x:data"/></message>'
    assert elem.serialise(NS_CLIENT) == serialise(elem, NS_CLIENT)
    # A prefixed element gets its prefix declared once, where needed.
    error = Element("stream:error", xmlns=NS_STREAMS)
    error.append(Element("stream:text", xmlns=NS_STREAMS))
    assert serialise(error) == (
        b'<stream:error xmlns:stream="http://etherx.jabber.org/streams"><stream:text/></stream:error>')
    # A declaration already written as an attribute is not repeated.
    spelt = Element("p:a", {"xmlns:p": "u"}, xmlns="u")
    assert serialise(spelt) == b'<p:a xmlns:p="u"/>'
    # The element's xmlns wins over a contradicting attribute.
    contradicting = Element("a", {"xmlns": "v"}, xmlns="u")
    assert serialise(contradicting) == b'<a xmlns="u"/>'
    assert serialise(Element("a", xmlns="")) == b'<a xmlns=""/>'


def test_serialise_parsed_stanza_inside_its_stream():
    rec = Recorder().feed([STREAM])
    msg = rec.stanzas[2]
    data = serialise(msg, NS_CLIENT)
    assert data.startswith(b"<message ") and b"jabber:client" not in data
    assert b"<x xmlns=\"jabber:x:data\"" in data
    again = Recorder().feed([STREAM_HEADER, data]).stanzas[0]
    assert again == msg


def test_serialise_rejects_characters_xml_cannot_carry():
    bad = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ufffe", "\uffff", chr(0xD800), chr(0xDFFF)]
    for ch in bad:
        s = "a" + ch + "b"
        raises(ValueError, serialise, Element("a", text=s))
        raises(ValueError, serialise, Element("a", {"k": s}))
        tailed = Element("a", children=[Element("b")])
        tailed.children[0].tail = s
        raises(ValueError, serialise, tailed)
    for ch in ["\t", "\n", "\x7f", "\x85", "\u2028", "\ufffd", "\U00010000", "\U0010ffff"]:
        text = "a" + ch + "b"
        assert parse(serialise(Element("a", {"k": text}, text=text))) == Element("a", {"k": text}, text=text)


def test_serialise_rejects_bad_names():
    for name in ["", "a b", "1a", "-a", ".a", "a<", "a>", "a&", "a=b", "a/b", "a\tb", "a:b:c", ":a", "a:",
                 "a\x00", "a\x01", "\u00d7a", "a\u00d7"]:
        raises(ValueError, serialise, Element(name))
        raises(ValueError, serialise, Element("a", {name: "v"}))
    for name in ["a", "_a", "a-b.c_d9", "p:q", "caf\u00e9", "\u540d\u524d", "a\u00b7b"]:
        assert parse(serialise(Element(name, {name: "v"}))).name == name


def test_parse():
    assert parse("<a k='v'>t</a>") == Element("a", {"k": "v"}, text="t")
    assert parse(b"<?xml version='1.0'?><a/>\n") == Element("a")
    raises(XMLError, parse, b"<a>")
    raises(XMLError, parse, b"<a/><b/>")
    raises(XMLError, parse, b"")
    raises(XMLError, parse, b"<a></b>")


# -- stanza builders -------------------------------------------------------------------


def test_message_builder():
    msg = message("ctl@example.com", "22.5 \u00b0C", "chat", "m1")
    assert _same_xml(serialise(msg), (
        b'<message to="ctl@example.com" type="chat" id="m1"><body>22.5 \xc2\xb0C</body></message>'))
    assert msg.xmlns is None  # takes the stream's namespace where it is written
    assert serialise(message()) == b"<message/>"
    reading = Element("reading", {"unit": "C"}, text="22.5", xmlns="urn:example:sensor")
    msg = message("ctl@example.com", payload=reading)
    assert msg.find("reading", "urn:example:sensor").text == "22.5"
    msg = message(payload=[Element("a", xmlns="u"), Element("b", xmlns="v")])
    assert [c.xmlns for c in msg.children] == ["u", "v"]
    assert parse(serialise(msg)) == msg


def test_presence_builder():
    pres = presence(show="dnd", status="busy", priority=-1, id="p1")
    assert serialise(pres) == (
        b'<presence id="p1"><show>dnd</show><status>busy</status><priority>-1</priority></presence>')
    leaving = serialise(presence("room@muc/n", "unavailable"))
    assert _same_xml(leaving, b'<presence to="room@muc/n" type="unavailable"/>')
    caps = presence(payload=Element("c", {"node": "n"}, xmlns="http://jabber.org/protocol/caps"))
    assert caps.find("c").xmlns == "http://jabber.org/protocol/caps"
    assert serialise(presence()) == b"<presence/>"


def test_iq_builder():
    query = iq("get", "v1", "example.com", Element("query", xmlns="jabber:iq:version"))
    assert _same_xml(serialise(query),
                     b'<iq type="get" id="v1" to="example.com"><query xmlns="jabber:iq:version"/></iq>')
    assert _same_xml(serialise(iq("result", "r1")), b'<iq type="result" id="r1"/>')


def test_error_reply():
    request = parse(b"<iq xmlns='jabber:client' type='set' id='x1' from='a@b/c' to='node@b/esp'>"
                    b"<unknown xmlns='urn:example'/></iq>")
    reply = error_reply(request, "cancel", "service-unavailable")
    assert _same_xml(serialise(reply), (
        b'<iq to="a@b/c" from="node@b/esp" type="error" id="x1"><error type="cancel">'
        b'<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'))
    reply = error_reply(parse(b"<message from='a@b'><body>x</body></message>"), "modify", "bad-request", "why")
    assert reply.get("to") == "a@b" and reply.get("from") is None and reply.get("id") is None
    condition, text = reply.find("error").children
    assert condition.name == "bad-request" and condition.xmlns == NS_STANZAS
    assert text.name == "text" and text.xmlns == NS_STANZAS and text.text == "why"
    assert reply.find("body") is None
    assert parse(serialise(reply)) == reply
    raises(ValueError, error_reply, parse(b"<iq type='error' id='1'/>"), "cancel", "undefined-condition")


# -- round trips -----------------------------------------------------------------------

HANDCRAFTED = [
    b"<a/>",
    b"<a>text</a>",
    b"<a k='v' j=\"w\"/>",
    b"<a>one<b/>two<c>three</c>four</a>",
    b"<a k='&lt;&amp;&gt;&quot;&apos;'>&lt;&amp;&gt;]]&gt;\"'</a>",
    b"<a k='tab&#9;nl&#10;cr&#13;'>cr&#13;lf\n</a>",
    b"<a><![CDATA[<not a tag> & ]]></a>",
    b"<a xmlns='u'><b/><c xmlns='v'><d/></c><e xmlns=''/></a>",
    b"<p:a xmlns:p='u' xmlns='d'><p:b/><c/><p:e xmlns:p='w'><p:f/></p:e></p:a>",
    b"<caf\xc3\xa9 \xc3\xa9t\xc3\xa9='\xe2\x82\xac'>\xf0\x9f\x98\x80 \xe5\x90\x8d</caf\xc3\xa9>",
    b"<a xml:lang='de'>Gr\xc3\xbc\xc3\x9fe</a>",
    b"<a>\n  <b>x</b>\n  <c/>\n</a>",
    b"<a>&#x1F600;&#233;</a>",
]


def _check_round_trip(elem, seed):
    data = serialise(elem)
    assert parse(data) == elem, data
    for way in range(_WAYS):
        stanzas = Recorder().feed(_cut(_stream_of(data), way, seed)).stanzas
        assert len(stanzas) == 1 and stanzas[0] == elem, data
        assert _same_xml(serialise(stanzas[0]), data)


def test_round_trips_handcrafted():
    for n, data in enumerate(HANDCRAFTED):
        elem = parse(data)
        _check_round_trip(elem, n + 1)


# Pieces for random elements: every character that needs escaping, line ends,
# and non-ASCII from two to four UTF-8 bytes.
_CHARS = ["a", "Z", "0", " ", "\t", "\n", "\r", "\r\n", "\"", "'", "<", ">", "&", "]", "]]>", ";", "=",
          "\u00e9", "\u20ac", "\U0001f600", "\u540d", "\x7f", "\x85", "\u2028", "&amp;", "#"]
_NAMES = ["a", "b1", "x-y", "_u", "n.m", "donn\u00e9es", "\u043a\u043b\u044e\u0447", "\u540d\u524d", "ping"]
_ATTR_NAMES = ["k", "id", "type", "a-b", "\u00e9", "xml:lang", "q:at"]
_NAMESPACES = [None, None, "urn:a", "urn:b", "jabber:client", "", "urn:x?a=1&b='2'"]


def _random_text(prng, most):
    return "".join(_CHARS[prng.randrange(0, len(_CHARS))] for _ in range(prng.randrange(0, most + 1)))


def _random_element(prng, depth):
    kind = prng.randrange(0, 10)
    xmlns = _NAMESPACES[prng.randrange(0, len(_NAMESPACES))]
    name = _NAMES[prng.randrange(0, len(_NAMES))]
    if kind == 0:
        name = "p:" + name
        xmlns = "urn:p%d" % prng.randrange(0, 3)  # declared by the serialiser
    elif kind == 1:
        name = "q:" + name  # bound, or not, by an xmlns:q on an ancestor
        xmlns = None
    attrs = {}
    for _ in range(prng.randrange(0, 4)):
        attrs[_ATTR_NAMES[prng.randrange(0, len(_ATTR_NAMES))]] = _random_text(prng, 5)
    if prng.randrange(0, 5) == 0:
        attrs["xmlns:q"] = "urn:q%d" % prng.randrange(0, 2)
    if prng.randrange(0, 8) == 0:
        attrs["xmlns"] = "urn:attr"
    elem = Element(name, attrs, text=_random_text(prng, 6) if prng.randrange(0, 2) else "", xmlns=xmlns)
    elem.tail = _random_text(prng, 4)
    if depth < 4:
        for _ in range(prng.randrange(0, 4 - depth)):
            child = _random_element(prng, depth + 1)
            if prng.randrange(0, 2):
                elem.append(child)
            else:
                elem.children.append(child)  # no inheritance: the namespace stays implicit
    return elem


def test_round_trips_random():
    prng = Prng(2024)
    for n in range(200):
        elem = _random_element(prng, 0)
        _check_round_trip(elem, n + 1)
        # Serialising the parsed copy again gives the same bytes.
        assert _same_xml(serialise(parse(serialise(elem))), serialise(elem))
