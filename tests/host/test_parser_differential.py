"""Differential fuzz tests: xmpp_lite.parser against CPython's expat (pyexpat).

Random XMPP-like streams, and byte-level mutations of them, go through both
parsers. Expat is the reference for XML 1.0 well-formedness and for the events
(start, end, text with adjacent runs joined). Our parser is fed every document
whole, in random chunks and, for a subset, byte by byte; every chunking must give
the same result.

Differences that are intended are not counted as disagreements; each has its own
test below:

* XMPP forbids comments, processing instructions (other than the XML
  declaration), DTDs and entities other than the five predefined ones: our
  parser rejects them, expat accepts them.
* Streams are UTF-8 only: an XML declaration naming another encoding is an error.
* Caps (depth, stanza bytes, attributes, name bytes, reference bytes).
* Names follow the XML 1.0 fifth-edition Name production; expat uses the older
  character tables, which allow fewer non-ASCII characters. Random names draw
  their non-ASCII characters from a set both accept.
* Expat does not check the VersionNum of the XML declaration ('1.' digits).

The parser has no end-of-stream call (XMPP streams never end), so for a complete
document "accepted" means: no error, the root element closed, and nothing but
white space left in the parser's buffer of unfinished input.

Run the long variant with ``pytest -m slow tests/host/test_parser_differential.py``;
``-s`` prints a summary of the counts.
"""

import random
import re
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyexpat
import pytest

from host_tools.tools import find_tool

from xmpp_lite.parser import (
    MAX_ATTRS,
    MAX_DEPTH,
    MAX_ATTR_VALUE,
    MAX_NAME,
    MAX_REFERENCE,
    MAX_STANZA_BYTES,
    Parser,
    XMLError,
)

BOM = b"\xef\xbb\xbf"
WS = b" \t\r\n"
VM_TIMEOUT_S = 300  # the differential run on the MicroPython VM

# Caps so large that no mutated document reaches them: mutations are compared
# on well-formedness alone; the caps have their own tests.
LOOSE_CAPS = {"max_depth": 1 << 20, "max_stanza_bytes": 1 << 30, "max_attrs": 1 << 20, "max_name": 1 << 20,
              "max_attr_value": 1 << 30}

# Non-ASCII characters that both XML 1.0 editions' tables accept as name start
# characters (and so anywhere in a name). U+00B7 is a name character, not a start.
SHARED_NAME_START = "éßжü中ñΩ"
SHARED_NAME_MORE = SHARED_NAME_START + "\u00b7"
NAME_START_ASCII = string.ascii_letters + "_"
NAME_MORE_ASCII = NAME_START_ASCII + string.digits + "-."
VALUE_CHARS = string.ascii_letters + string.digits + "@/.-_ "
TEXT_CHARS = string.ascii_letters + string.digits + " .,:-_/"
STANZA_NAMES = ("message", "presence", "iq", "r", "a", "stream:features", "stream:error", "enabled")
CHILD_NAMES = ("body", "show", "status", "priority", "query", "item", "x", "bind", "jid", "ping",
               "sensor", "value", "error", "text", "feature", "identity", "c", "delay", "thread")
ATTR_NAMES = ("to", "from", "id", "type", "xmlns", "xml:lang", "node", "name", "var", "jid", "h",
              "ver", "xmlns:x", "category", "stamp", "unit", "seq")
# Bytes that mutations like to insert: markup, the first byte of every UTF-8
# sequence length, bytes UTF-8 never uses, and controls XML forbids.
INTERESTING_BYTES = b"<>&;'\"/]!?=#x:-. \t\r\n\x00\x01\x1f\x7f\x80\xbf\xc0\xc2\xe0\xed\xef\xf0\xf4\xff"
# Sequences at the edges of what UTF-8, XML characters and references allow,
# and bits of markup.
INTERESTING_SEQUENCES = (
    # UTF-8: surrogates, overlong forms, beyond U+10FFFF, non-characters, edges.
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xef\xbf\xbe",
    b"\xef\xbf\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xc2\x85", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
    b"\xe0\xa0\x80", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xc3", b"\xe4\xb8",
    # References.
    b"&#0;", b"&#x9;", b"&#xB;", b"&#xD;", b"&#xD800;", b"&#xDFFF;", b"&#xFFFE;", b"&#xFFFF;", b"&#x10FFFF;",
    b"&#x110000;", b"&#1114111;", b"&#1114112;", b"&#X41;", b"&#x;", b"&#;", b"&#65", b"&#x-1;", b"&#+65;",
    b"&#6 5;", b"&lt", b"&lt;", b"&amp;", b"&apos;", b"&quot;", b"&gt;", b"&#x0041;", b"&#000000065;", b"& ;",
    b"&x;", b"&LT;", b"&#x1_0;",
    # Markup.
    b"]]>", b"]]", b"<![CDATA[", b"<![CDATA", b"<!--", b"-->", b"<?", b"?>", b"</", b"/>", b"<a>", b"</a>", b"</>",
    b"</<>", b"<>", b"< a>",
    b"<a/>", b" a='1'", b' b="2"', b"\r\n", b"xmlns:", b"=", b"''", b'""', b"<?xml version='1.0'?>",
)


# -- running both parsers ---------------------------------------------------


class Recorder:
    """Handler for both parsers: records events, joining adjacent text."""

    def __init__(self):
        self.events = []

    def start(self, name, attrs):
        self.events.append(("start", name, dict(attrs)))

    def end(self, name):
        self.events.append(("end", name))

    def text(self, data):
        assert isinstance(data, str)
        if not data:
            return
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", self.events[-1][1] + data)
        else:
            self.events.append(("text", data))


class Outcome:
    """What one parser made of one input: accepted or not, events, and notes."""

    def __init__(self, accepted, events, error=None, notes=()):
        self.accepted = accepted
        self.events = events
        self.error = error
        self.notes = set(notes)

    def __repr__(self):
        verdict = "accepted" if self.accepted else "rejected ({})".format(self.error)
        return "<{}, events={!r}>".format(verdict, self.events)


def chunks(data, sizes):
    """Cut data into pieces: sizes None = whole, an int = that size, else a list cycled through."""
    if sizes is None:
        return [data] if data else []
    if isinstance(sizes, int):
        sizes = [sizes]
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos:pos + size])
        pos += size
        i += 1
    return out


def random_sizes(rng, count=64):
    """A chunking that mixes tiny pieces (cuts inside tokens) with larger ones."""
    return [rng.choice((1, 1, 2, 3, 4, 5, 7, 8, 13)) if rng.random() < 0.75 else rng.randint(14, 400)
            for _ in range(count)]


def run_ours(data, sizes=None, complete=True, parser=None, recorder=None, **caps):
    """Feed data to our parser; complete=True also requires a finished document."""
    if parser is None:
        recorder = Recorder()
        caps.setdefault("stream", False)  # a plain document, as expat sees it; see test_stream_rules_*
        parser = Parser(recorder, **caps)
    else:
        parser.reset()
        recorder.events = []
    try:
        for piece in chunks(data, sizes):
            parser.feed(piece)
    except XMLError as exc:
        # An error is final: the parser refuses anything more until reset().
        with pytest.raises(XMLError):
            parser.feed(b" ")
        return Outcome(False, recorder.events, str(exc))
    except Exception as exc:
        # Bad input must raise XMLError and nothing else.
        raise AssertionError("{}: {} for input {!r} in chunks {!r}".format(
            type(exc).__name__, exc, data, sizes)) from exc
    if complete:
        # "unfinished": no error so far, as an open stream it is fine.
        leftover = parser._buf  # unfinished input held for the next chunk
        root_closed = bool(recorder.events) and parser.depth == 0
        if not root_closed:
            return Outcome(False, recorder.events, "document not finished", {"unfinished"})
        if leftover.strip(WS):
            return Outcome(False, recorder.events, "unfinished input after the root: {!r}".format(leftover),
                           {"unfinished"})
    return Outcome(True, recorder.events)


def run_expat(data, sizes=None, final=True):
    """Feed data to expat without namespace processing; final=False leaves the stream open."""
    recorder = Recorder()
    notes = set()
    parser = pyexpat.ParserCreate()
    parser.buffer_text = False
    parser.StartElementHandler = recorder.start
    parser.EndElementHandler = recorder.end
    parser.CharacterDataHandler = recorder.text
    # What XMPP forbids, noted so that a difference can be classified.
    parser.CommentHandler = lambda data: notes.add("comment")
    parser.ProcessingInstructionHandler = lambda target, data: notes.add("processing instruction")
    parser.StartDoctypeDeclHandler = lambda *args: notes.add("doctype")
    parser.EntityDeclHandler = lambda *args: notes.add("entity declaration")

    def xml_decl(version, encoding, standalone):
        if encoding is not None and encoding.lower() != "utf-8":
            notes.add("encoding " + encoding)
        if not re.fullmatch(r"1\.[0-9]+", version):
            notes.add("version " + version)

    parser.XmlDeclHandler = xml_decl
    try:
        for piece in chunks(data, sizes):
            parser.Parse(piece, False)
        if final:
            parser.Parse(b"", True)
    except pyexpat.ExpatError as exc:
        return Outcome(False, recorder.events, str(exc), notes)
    except (LookupError, ValueError) as exc:
        # A declared encoding that pyexpat cannot load ("unknown encoding",
        # "multi-byte encodings are not supported").
        notes.add("encoding")
        return Outcome(False, recorder.events, str(exc), notes)
    return Outcome(True, recorder.events, None, notes)


def is_prefix(shorter, longer):
    """True if the event list `shorter` is a prefix of `longer`, its last text run possibly cut short."""
    if len(shorter) > len(longer):
        return False
    for i, (mine, theirs) in enumerate(zip(shorter, longer)):
        if mine == theirs:
            continue
        last_text = i == len(shorter) - 1 and mine[0] == "text" == theirs[0]
        if not (last_text and theirs[1].startswith(mine[1])):
            return False
    return True


def describe(data, ours, theirs):
    return "input {!r}\n  ours:  {!r}\n  expat: {!r}".format(data, ours, theirs)


def assert_same_as_expat(doc, rng=None, **caps):
    """Whole, byte by byte and in random chunks: the verdict and events expat gives."""
    rng = rng or random.Random(len(doc))
    theirs = run_expat(doc)
    for sizes in (None, 1, random_sizes(rng)):
        ours = run_ours(doc, sizes, **caps)
        assert (ours.accepted, ours.events) == (theirs.accepted, theirs.events), describe(doc, ours, theirs)


# -- generating XMPP-like streams ---------------------------------------------


def pick_xml_char(rng, utf8_length):
    """A random character XML allows whose UTF-8 form is utf8_length bytes."""
    while True:
        if utf8_length == 1:
            code = rng.randint(0x20, 0x7E)
        elif utf8_length == 2:
            code = rng.randint(0x80, 0x7FF)
        elif utf8_length == 3:
            code = rng.randint(0x800, 0xFFFD)
        else:
            code = rng.randint(0x10000, 0x10FFFF)
        if not 0xD800 <= code <= 0xDFFF:
            return chr(code)


def char_reference(rng, char=None):
    """&#N; or &#xH; with a few leading zeros and hex digits in either case."""
    if char is None:
        char = pick_xml_char(rng, rng.choice((1, 1, 2, 3, 4)))
        if rng.random() < 0.15:
            char = rng.choice("\t\n\r<>&'\"]")
    zeros = "0" * rng.choice((0, 0, 0, 1, 2, 3))
    if rng.random() < 0.5:
        return "&#" + zeros + str(ord(char)) + ";"
    digits = "{:x}".format(ord(char))
    digits = "".join(c.upper() if rng.random() < 0.5 else c for c in digits)
    return "&#x" + zeros + digits + ";"


class Limits:
    """How big generated documents get; the defaults stay within the parser's default caps."""

    def __init__(self, depth=MAX_DEPTH, attrs=MAX_ATTRS, name=MAX_NAME, stanza_bytes=MAX_STANZA_BYTES):
        self.depth = depth  # the root element included
        self.attrs = attrs
        self.name = name  # bytes
        self.stanza_bytes = stanza_bytes


DEFAULT_LIMITS = Limits()


def gen_name(rng, pool=None, limits=DEFAULT_LIMITS):
    """An element or attribute name: a common one, or random with a prefix sometimes."""
    if pool is not None and rng.random() < 0.6:
        return rng.choice(pool)
    roll = rng.random()
    if roll < 0.02:
        # As long as the limit allows.
        return rng.choice(NAME_START_ASCII) + "".join(rng.choices(NAME_MORE_ASCII, k=limits.name - 1))
    if roll < 0.05:
        return rng.choice((":a", "a:", "a::b", "p:q:r", "_", ":", "x-", "a.b", "_1"))
    first = rng.choice(NAME_START_ASCII) if rng.random() < 0.85 else rng.choice(SHARED_NAME_START)
    more = "".join(rng.choice(NAME_MORE_ASCII) if rng.random() < 0.85 else rng.choice(SHARED_NAME_MORE)
                   for _ in range(rng.randint(0, 10)))
    name = first + more
    if rng.random() < 0.2:
        name = rng.choice(("p", "x", "stream", "ns1", "é")) + ":" + name
    return name


def gen_space(rng):
    """White space inside a tag: mostly one space (the parser's fast path), sometimes anything."""
    if rng.random() < 0.8:
        return " "
    return rng.choice(("  ", "\t", "\n", "\r\n", "\r", " \t ", "\n\n"))


def gen_attr_value(rng, quote):
    pieces = []
    for _ in range(rng.choice((0, 1, 2, 4, 8, 16))):
        roll = rng.random()
        if roll < 0.45:
            pieces.append("".join(rng.choices(VALUE_CHARS, k=rng.randint(1, 12))))
        elif roll < 0.55:
            pieces.append(rng.choice(("&lt;", "&gt;", "&amp;", "&apos;", "&quot;")))
        elif roll < 0.62:
            pieces.append(char_reference(rng))
        elif roll < 0.72:
            pieces.append(rng.choice(("\t", "\n", "\r", "\r\n", " ")))
        elif roll < 0.8:
            pieces.append(rng.choice(">]'\"=/?!;#").replace(quote, "&" + ("quot;" if quote == '"' else "apos;")))
        else:
            pieces.append(pick_xml_char(rng, rng.choice((2, 3, 4))))
    return "".join(pieces)


def gen_attrs(rng, limits=DEFAULT_LIMITS, taken=()):
    """Attributes with distinct names, none of them in taken; as many as the limit allows, at most."""
    most = limits.attrs - len(taken)
    count = min(most, rng.choice((0, 0, 1, 1, 2, 3, 4))) if rng.random() < 0.97 else most
    names = []
    while len(names) < count:
        name = gen_name(rng, ATTR_NAMES, limits)
        if name not in names and name not in taken:
            names.append(name)
    out = []
    for name in names:
        quote = '"' if rng.random() < 0.7 else "'"
        eq = "=" if rng.random() < 0.85 else rng.choice((" =", "= ", " = ", "\t=\n", "\r\n=\r\n"))
        out.append(gen_space(rng) + name + eq + quote + gen_attr_value(rng, quote) + quote)
    return "".join(out)


def gen_text(rng):
    pieces = []
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.35:
            pieces.append("".join(rng.choices(TEXT_CHARS, k=rng.randint(1, 20))))
        elif roll < 0.45:
            pieces.append(rng.choice(("&lt;", "&gt;", "&amp;", "&apos;", "&quot;")))
        elif roll < 0.53:
            pieces.append(char_reference(rng))
        elif roll < 0.65:
            pieces.append(rng.choice(("\t", "\n", "\r", "\r\n", "\r\r\n", "\n\r", "  ")))
        elif roll < 0.73:
            pieces.append(rng.choice((">", "'", '"', "]", "]]", "=", "?", "!", "/", ";", "#")))
        else:
            pieces.append(pick_xml_char(rng, rng.choice((2, 2, 3, 3, 4))))
    text = "".join(pieces)
    # "]]>" may not appear in text; pieces can form it.
    return text.replace("]]>", "]]&gt;")


def gen_cdata(rng):
    pieces = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.4:
            pieces.append(rng.choice(("<b>", "&amp;", "&", "<", "]", "]]", "]>", "<![CDATA[", "--", "<?", "x")))
        elif roll < 0.6:
            pieces.append(rng.choice(("\r", "\n", "\r\n", "\t")))
        else:
            pieces.append(pick_xml_char(rng, rng.choice((1, 2, 3, 4))))
    body = "".join(pieces).replace("]]>", "]] >")
    if body.endswith("]"):
        body += " "  # "]" + "]]>" would end the section one byte early
    return "<![CDATA[" + body + "]]>"


def gen_element(rng, depth, budget, limits=DEFAULT_LIMITS, names=CHILD_NAMES, chain=False):
    """One element at depth (root = 1) with random content; budget bounds its size.

    chain: nest one element in each down to the depth limit.
    """
    max_depth = limits.depth
    name = gen_name(rng, names, limits)
    head = "<" + name + gen_attrs(rng, limits)
    if rng.random() < 0.15:
        head += gen_space(rng)
    if not chain and (rng.random() < 0.25 or budget[0] <= 0):
        return head + "/>"
    parts = [head + ">"]
    after_text = False
    chain = depth < max_depth and (chain or rng.random() < 0.03)
    for index in range(rng.randint(1 if chain else 0, 5)):
        budget[0] -= 1
        roll = rng.random()
        if (chain and index == 0) or (roll < 0.4 and depth < max_depth and budget[0] > 0):
            parts.append(gen_element(rng, depth + 1, budget, limits, chain=chain and index == 0))
        elif roll < 0.85:
            text = gen_text(rng)
            if after_text:  # two runs can form "]]>" where they meet
                text = (parts.pop() + text).replace("]]>", "]]&gt;")
            parts.append(text)
            after_text = True
            continue
        else:
            parts.append(gen_cdata(rng))
        after_text = False
    end_space = gen_space(rng) if rng.random() < 0.1 else ""
    parts.append("</" + name + end_space + ">")
    return "".join(parts)


def gen_xml_decl(rng):
    quote = rng.choice("\"'")

    def pseudo_attr(name, value):
        eq = "=" if rng.random() < 0.8 else rng.choice((" = ", "\t=", "=\n"))
        return gen_space(rng) + name + eq + quote + value + quote

    decl = "<?xml" + pseudo_attr("version", "1.0")
    if rng.random() < 0.6:
        decl += pseudo_attr("encoding", rng.choice(("UTF-8", "utf-8", "Utf-8")))
    if rng.random() < 0.3:
        decl += pseudo_attr("standalone", rng.choice(("yes", "no")))
    if rng.random() < 0.3:
        decl += gen_space(rng)
    return decl + "?>"


def keepalive_space(rng):
    """White space between stanzas, as RFC 6120 section 4.6.1 keepalives send it."""
    return rng.choice((" ", "\n", "\r\n", "\t", "  \n", "\r", " " * rng.randint(1, 5)))


def gen_stream(rng, closed=True, limits=DEFAULT_LIMITS):
    """A stream as an XMPP server sends it: header, stanzas, optionally the closing tag."""
    out = []
    if rng.random() < 0.15:
        out.append(BOM)
    if rng.random() < 0.5:
        out.append(gen_xml_decl(rng).encode())
    if rng.random() < 0.3:
        out.append(keepalive_space(rng).encode())
    if rng.random() < 0.9:
        root = "stream:stream"
        header_attrs = [' xmlns="jabber:client"', " xmlns:stream='http://etherx.jabber.org/streams'",
                        ' version="1.0"', ' from="example.net"', ' id="' + str(rng.randrange(10 ** 9)) + '"',
                        " xml:lang='en'"]
        rng.shuffle(header_attrs)
        taken = re.findall(r" ([^=]+)=", "".join(header_attrs))
        head = "<" + root + "".join(header_attrs) + gen_attrs(rng, limits, taken)
    else:
        root = gen_name(rng, None, limits)
        head = "<" + root + gen_attrs(rng, limits)
    if rng.random() < 0.03:
        out.append((head + "/>").encode())  # a stream that closes at once
    else:
        out.append((head + ">").encode())
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.6:
                out.append(keepalive_space(rng).encode())
            stanza = gen_element(rng, 2, [rng.randint(1, 30)], limits, STANZA_NAMES).encode()
            if len(stanza) <= limits.stanza_bytes:
                out.append(stanza)
        if rng.random() < 0.5:
            out.append(keepalive_space(rng).encode())
        if closed:
            out.append(("</" + root + ">").encode())
    if closed and rng.random() < 0.3:
        out.append(keepalive_space(rng).encode())
    return b"".join(out)


def gen_small_doc(rng):
    """A short complete document dense in tricky spots: mutations of it hit markup more often."""
    out = []
    if rng.random() < 0.1:
        out.append(BOM)
    if rng.random() < 0.2:
        out.append(gen_xml_decl(rng).encode())
    root = gen_name(rng, ("s", "stream:stream", "a"))
    limits = Limits(depth=4, attrs=3)
    out.append(("<" + root + gen_attrs(rng, limits) + ">").encode())
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.5:
            out.append(gen_element(rng, 2, [rng.randint(0, 3)], limits).encode())
        elif roll < 0.8:
            out.append(gen_text(rng).encode())
        else:
            out.append(gen_cdata(rng).encode())
    out.append(("</" + root + ">").encode())
    doc = b"".join(out)
    # Runs of text from separate pieces can form "]]>" where they meet.
    return doc if run_expat(doc).accepted else gen_small_doc(rng)


# -- mutating documents -------------------------------------------------------


def mutate(rng, data):
    """Apply one to three random edits; returns the new bytes and what was done."""
    ops = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.choice(("delete", "insert", "insert", "replace", "replace", "duplicate", "truncate",
                         "insert sequence", "replace sequence", "swap"))
        pos = rng.randrange(len(data) + 1)
        byte = rng.choice(INTERESTING_BYTES) if rng.random() < 0.7 else rng.randrange(256)
        sequence = rng.choice(INTERESTING_SEQUENCES)
        if op == "delete" and pos < len(data):
            data = data[:pos] + data[pos + 1:]
        elif op == "insert":
            data = data[:pos] + bytes((byte,)) + data[pos:]
        elif op == "replace" and pos < len(data):
            data = data[:pos] + bytes((byte,)) + data[pos + 1:]
        elif op == "duplicate":
            stop = min(len(data), pos + rng.randint(1, 24))
            at = rng.randrange(len(data) + 1)
            data = data[:at] + data[pos:stop] + data[at:]
        elif op == "truncate" and rng.random() < 0.5:  # rarer: most truncations end the same way
            data = data[:pos]
        elif op == "insert sequence":
            data = data[:pos] + sequence + data[pos:]
        elif op == "replace sequence":
            data = data[:pos] + sequence + data[pos + rng.randint(1, len(sequence)):]
        elif op == "swap" and pos + 1 < len(data):
            data = data[:pos] + data[pos + 1:pos + 2] + data[pos:pos + 1] + data[pos + 2:]
        else:
            continue
        ops.append(op)
    return data, ops


# -- classifying disagreements ------------------------------------------------

_expat_name_cache = {}
_our_name_cache = {}


def _name_verdicts(char):
    """(as name start, inside a name) for expat and for us."""
    if char not in _expat_name_cache:
        probes = (b"<" + char.encode() + b"/>", b"<a" + char.encode() + b"/>")
        _expat_name_cache[char] = tuple(run_expat(probe).accepted for probe in probes)
        _our_name_cache[char] = tuple(run_ours(probe).accepted for probe in probes)
    return _expat_name_cache[char], _our_name_cache[char]


def disputed_name_chars(data):
    """Non-ASCII characters in data that the two parsers' name tables judge differently."""
    text = data.decode("utf-8", "surrogateescape")  # undecodable bytes become lone surrogates
    out = set()
    for char in set(text):
        if ord(char) >= 0x80 and not 0xD800 <= ord(char) <= 0xDFFF:
            theirs, ours = _name_verdicts(char)
            if theirs != ours:
                out.add(char)
    return out


def lags_in_text_only(ours, theirs):
    """Our events of an open stream against expat's: the same, or behind by some text.

    We wait for the end of a CDATA section where expat passes on its start,
    and hold back "\r\r" at the end where expat can already pass on the first.
    """
    return ours == theirs or (is_prefix(ours, theirs) and all(event[0] == "text" for event in theirs[len(ours):]))


def outcomes_agree(ours, theirs):
    if ours.accepted != theirs.accepted:
        return False
    if ours.accepted:
        return ours.events == theirs.events
    # Both rejected: whatever we reported before the error must also be what
    # expat reported, or we passed on events from a document that was not XML.
    return is_prefix(ours.events, theirs.events)


def classify(data, ours, theirs):
    """Name the kind of a disagreement: an intended difference, an expat quirk, or "genuine"."""
    if theirs.accepted and not ours.accepted:
        forbidden = theirs.notes & {"comment", "processing instruction", "doctype", "entity declaration"}
        if forbidden or any(note.startswith("encoding") for note in theirs.notes):
            return "intended: XMPP forbids " + ", ".join(sorted(theirs.notes))
        if any(note.startswith("version") for note in theirs.notes):
            return "expat quirk: XML declaration version not checked"
    disputed = disputed_name_chars(data)
    if disputed:
        # Put a character both accept in their place: if that settles it, the
        # name tables were the whole difference.
        text = data.decode("utf-8", "surrogateescape")
        for char in disputed:
            text = text.replace(char, "é")
        plain = text.encode("utf-8", "surrogateescape")
        if outcomes_agree(run_ours(plain, **LOOSE_CAPS), run_expat(plain)):
            return "intended: name character tables"
    return "genuine"


# -- tests: generated streams -------------------------------------------------


def check_generated(seed, count, byte_by_byte_every, stats):
    rng = random.Random(seed)
    for index in range(count):
        closed = rng.random() < 0.85
        doc = gen_stream(rng, closed=closed)
        stats["generated"] += 1
        stats["bytes"] += len(doc)
        theirs = run_expat(doc, final=closed)
        assert theirs.accepted and not theirs.notes, "generator produced a bad document\n" + describe(
            doc, None, theirs)
        depth = most = 0
        for event in theirs.events:
            depth += {"start": 1, "end": -1}.get(event[0], 0)
            most = max(most, depth)
        stats["at the depth cap"] += most == MAX_DEPTH
        runs = [None, random_sizes(rng), random_sizes(rng)]
        if index % byte_by_byte_every == 0:
            runs.append(1)
            stats["byte by byte"] += 1
        for sizes in runs:
            ours = run_ours(doc, sizes, complete=closed)
            assert ours.accepted and ours.events == theirs.events, "chunking {!r}\n{}".format(
                sizes, describe(doc, ours, theirs))
        stats["accepted"] += 1
        if not closed:
            continue
        # Every prefix of a good stream is a good open stream: nothing rejected,
        # and no event that expat would not also have reported by then.
        for _ in range(3):
            cut = rng.randrange(len(doc) + 1)
            check_open_prefix(doc[:cut], theirs.events, rng)
            stats["open prefixes"] += 1


def check_open_prefix(prefix, full_events, rng):
    theirs = run_expat(prefix, final=False)
    assert theirs.accepted, describe(prefix, None, theirs)
    for sizes in (None, random_sizes(rng)):
        ours = run_ours(prefix, sizes, complete=False)
        assert ours.accepted, describe(prefix, ours, theirs)
        assert is_prefix(ours.events, full_events), describe(prefix, ours, theirs)
        assert lags_in_text_only(ours.events, theirs.events), describe(prefix, ours, theirs)


def test_generated_streams_match_expat():
    stats = Counter()
    for seed in (1, 2, 3):
        check_generated(seed, 100, byte_by_byte_every=6, stats=stats)
    print("\ngenerated streams:", dict(stats))


@pytest.mark.slow
def test_generated_streams_match_expat_long():
    stats = Counter()
    for seed in range(100, 130):
        check_generated(seed, 200, byte_by_byte_every=5, stats=stats)
    print("\ngenerated streams (long):", dict(stats))


def test_reset_parser_gives_the_same_events_as_a_new_one():
    rng = random.Random(7)
    recorder = Recorder()
    reused = Parser(recorder, stream=False)
    for _ in range(40):
        doc = gen_stream(rng)
        fresh = run_ours(doc, random_sizes(rng))
        again = run_ours(doc, random_sizes(rng), parser=reused, recorder=recorder)
        assert (again.accepted, again.events) == (fresh.accepted, fresh.events)
        # A rejected document in between must leave nothing behind.
        run_ours(doc[:len(doc) // 2] + b"<\x01", parser=reused, recorder=recorder)


# -- tests: mutated streams ---------------------------------------------------


def check_mutants(seed, count, byte_by_byte_every, stats, genuine):
    rng = random.Random(seed)
    recorder = Recorder()
    parser = Parser(recorder, stream=False, **LOOSE_CAPS)
    for index in range(count):
        base = gen_stream(rng, closed=rng.random() < 0.8) if rng.random() < 0.5 else gen_small_doc(rng)
        doc, edits = mutate(rng, base)
        stats["mutated"] += 1
        theirs = run_expat(doc)
        ours = run_ours(doc, parser=parser, recorder=recorder)
        # As an open stream: when neither has found an error yet, the events
        # so far agree. (Who finds an error first in an unfinished token
        # differs: expat checks tokens as they come, we once they are complete.)
        theirs_open = run_expat(doc, final=False)
        if theirs_open.accepted and (ours.accepted or "unfinished" in ours.notes):
            stats["open, no error yet"] += 1
            if not lags_in_text_only(ours.events, theirs_open.events) and not disputed_name_chars(doc):
                genuine.append("as an open stream, after {}: {}".format(edits, describe(doc, ours, theirs_open)))
        stats["expat accepted" if theirs.accepted else "expat rejected"] += 1
        runs = [random_sizes(rng)]
        if index % byte_by_byte_every == 0 and len(doc) < 3000:
            runs.append(1)
            stats["byte by byte"] += 1
        for sizes in runs:
            again = run_ours(doc, sizes, parser=parser, recorder=recorder)
            # The same verdict, and an error in one chunking is an error in all.
            assert (again.accepted, again.notes) == (ours.accepted, ours.notes), \
                "chunking {!r} changed the verdict\n{}".format(sizes, describe(doc, again, ours))
            if ours.accepted:
                assert again.events == ours.events, describe(doc, again, ours)
        if outcomes_agree(ours, theirs):
            stats["agreed"] += 1
            continue
        kind = classify(doc, ours, theirs)
        stats[kind] += 1
        if kind == "genuine":
            genuine.append("after {}: {}".format(edits, describe(doc, ours, theirs)))


def report(stats, genuine, label):
    print("\n{}: {}".format(label, dict(stats)))
    assert not genuine, "{} disagreement(s) with expat, first ones:\n{}".format(
        len(genuine), "\n".join(genuine[:5]))


def test_mutated_streams_agree_with_expat():
    stats = Counter()
    genuine = []
    for seed in (11, 12, 13, 14):
        check_mutants(seed, 1000, byte_by_byte_every=25, stats=stats, genuine=genuine)
    report(stats, genuine, "mutated streams")


@pytest.mark.slow
def test_mutated_streams_agree_with_expat_long():
    stats = Counter()
    genuine = []
    for seed in range(200, 240):
        check_mutants(seed, 1500, byte_by_byte_every=20, stats=stats, genuine=genuine)
    report(stats, genuine, "mutated streams (long)")


# -- tests: intended differences ----------------------------------------------


def token_boundaries(doc):
    """Byte offsets where expat saw an element start or end: places where markup may go.

    The first is where the root element starts (still in the prolog); the
    others are inside the root element, between its content's tokens.
    """
    offsets = []
    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = lambda name, attrs: offsets.append(parser.CurrentByteIndex)
    parser.EndElementHandler = lambda name: offsets.append(parser.CurrentByteIndex)
    parser.Parse(doc, True)
    return offsets


FORBIDDEN_IN_CONTENT = (
    b"<!-- a comment -->",
    b"<!---->",
    b"<?pi?>",
    b"<?target some data?>",
    b"<?xml-stylesheet href='s.css'?>",
)
FORBIDDEN_IN_PROLOG = FORBIDDEN_IN_CONTENT + (
    b"<!DOCTYPE stream:stream>",
    b"<!DOCTYPE s SYSTEM 'about:blank'>",
    b'<!DOCTYPE s [<!ENTITY e "entity text">]>',
    b"<!DOCTYPE s [<!ELEMENT s ANY><!ATTLIST s a CDATA 'x'>]>",
)


def check_rejected_where_expat_accepts(doc, rng, expected_notes=None):
    theirs = run_expat(doc)
    assert theirs.accepted, describe(doc, None, theirs)
    if expected_notes is not None:
        assert theirs.notes & expected_notes, describe(doc, None, theirs)
    for sizes in (None, random_sizes(rng), 1):
        ours = run_ours(doc, sizes)
        assert not ours.accepted, describe(doc, ours, theirs)
        # Nothing from after the forbidden construct may have been reported.
        assert is_prefix(ours.events, theirs.events), describe(doc, ours, theirs)


def test_comments_and_processing_instructions_are_rejected_anywhere():
    rng = random.Random(21)
    for _ in range(60):
        doc = gen_stream(rng)
        offsets = token_boundaries(doc)
        at = rng.choice(offsets)
        construct = rng.choice(FORBIDDEN_IN_CONTENT)
        mutant = doc[:at] + construct + doc[at:]
        check_rejected_where_expat_accepts(mutant, rng, {"comment", "processing instruction"})


def test_dtds_are_rejected():
    rng = random.Random(22)
    for _ in range(30):
        doc = gen_stream(rng)
        at = token_boundaries(doc)[0]
        construct = rng.choice(FORBIDDEN_IN_PROLOG)
        check_rejected_where_expat_accepts(doc[:at] + construct + doc[at:], rng)


def test_entities_other_than_the_predefined_are_rejected():
    rng = random.Random(23)
    dtd = b'<!DOCTYPE s [<!ENTITY e "entity text"><!ENTITY amp2 "&#38;#38;">]>'
    for body in (b"&e;", b"x&e;y", b"&amp2;"):
        check_rejected_where_expat_accepts(dtd + b"<s>" + body + b"</s>", rng, {"doctype"})
        check_rejected_where_expat_accepts(dtd + b'<s a="' + body + b'"/>', rng, {"doctype"})
    # Without a DTD an unknown entity is an error for both.
    for doc in (b"<s>&e;</s>", b"<s a='&nbsp;'/>", b"<s>&LT;</s>", b"<s>&lt</s>"):
        assert not run_expat(doc).accepted
        assert not run_ours(doc).accepted


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "US-ASCII", "latin1", "UTF-16", "UTF8", "utf_8", "cp1252"])
def test_encodings_other_than_utf8_are_rejected(encoding):
    rng = random.Random(24)
    doc = b'<?xml version="1.0" encoding="' + encoding.encode() + b'"?><s a="b">text</s>'
    theirs = run_expat(doc)
    for sizes in (None, 1, random_sizes(rng)):
        assert not run_ours(doc, sizes).accepted, describe(doc, None, theirs)
    # expat reads the document in that encoding (or gives up: UTF-16 here is a lie).
    assert theirs.accepted or "encoding" in theirs.error or "encoding" in theirs.notes


@pytest.mark.parametrize("encoding", ["UTF-8", "utf-8", "Utf-8"])
def test_utf8_named_in_any_case_is_accepted(encoding):
    doc = b"<?xml version='1.0' encoding='" + encoding.encode() + b"'?><s>\xc3\xa9</s>"
    assert_same_as_expat(doc)


def test_expat_does_not_check_the_version_number():
    # VersionNum ::= "1." [0-9]+ (XML 1.0 section 2.8); expat takes any VersionNum-like word.
    for version in (b"2.0", b"1.", b"1.x", b"x"):
        doc = b'<?xml version="' + version + b'"?><s/>'
        assert run_expat(doc).accepted
        assert not run_ours(doc).accepted
    for version in (b"1.0", b"1.1", b"1.23"):
        assert_same_as_expat(b"<?xml version='" + version + b"'?><s/>")


# -- tests: names ---------------------------------------------------------------


def test_shared_name_characters_are_names_for_both():
    for char in SHARED_NAME_START:
        for doc in ("<" + char + "/>", "<a" + char + "/>", "<a " + char + "='1'/>", "<p:" + char + "/>"):
            assert_same_as_expat(doc.encode())
            assert run_ours(doc.encode()).accepted
    assert_same_as_expat("<a\u00b7/>".encode())
    assert not run_ours("<\u00b7/>".encode()).accepted


@pytest.mark.parametrize("char", ["\u0132", "\u01c4", "\u2070", "\u2c00", "\ufeff", "\ufffd", "\U00010000",
                                  "\U000effff"])
def test_fifth_edition_name_characters_expat_does_not_know(char):
    for doc in ("<" + char + "/>", "<a" + char + "/>", "<a " + char + "='1'/>"):
        doc = doc.encode()
        assert not run_expat(doc).accepted
        assert run_ours(doc).accepted


@pytest.mark.parametrize("char", ["\u00d7", "\u00f7", "\u037e", "\u2000", "\u3000", "\ue000", "\U000f0000"])
def test_characters_that_are_no_name_characters(char):
    for doc in ("<" + char + "/>", "<a" + char + "/>", "<a " + char + "='1'/>"):
        doc = doc.encode()
        assert not run_expat(doc).accepted
        assert not run_ours(doc).accepted


def check_name_tables(code_points):
    """Every character expat takes in a name we take too (expat's tables are the older, smaller ones)."""
    for code in code_points:
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code).encode()
        for doc in (b"<" + char + b"/>", b"<a" + char + b"/>"):
            if run_expat(doc).accepted:
                ours = run_ours(doc)
                assert ours.accepted, describe(doc, ours, None)


def test_names_expat_accepts_are_names_for_us_too():
    rng = random.Random(25)
    check_name_tables(rng.randrange(0x80, 0x110000 if rng.random() < 0.2 else 0x10000) for _ in range(3000))


@pytest.mark.slow
def test_names_expat_accepts_are_names_for_us_too_whole_bmp():
    check_name_tables(range(0x80, 0x10000))


# -- tests: caps ------------------------------------------------------------------


def check_cap(within, beyond, raised_caps, **caps):
    """within: same as expat under the default caps; beyond: rejected, yet same as expat with raised caps."""
    rng = random.Random(len(beyond))
    assert_same_as_expat(within, rng, **caps)
    assert run_expat(beyond).accepted
    for sizes in (None, 1, random_sizes(rng)):
        assert not run_ours(beyond, sizes, **caps).accepted, "chunking {!r}: {!r}".format(sizes, beyond[:200])
    assert_same_as_expat(beyond, rng, **dict(caps, **raised_caps))


def nested(depth, leaf=b"x"):
    names = [b"stream:stream"] + [b"e" + str(level).encode() for level in range(1, depth)]
    return b"".join(b"<" + name + b">" for name in names) + leaf + b"".join(
        b"</" + name + b">" for name in reversed(names))


def test_depth_cap():
    check_cap(nested(MAX_DEPTH), nested(MAX_DEPTH + 1), {"max_depth": MAX_DEPTH + 1})
    # An empty-element tag counts as one level too.
    check_cap(nested(MAX_DEPTH - 1, b"<leaf/>"), nested(MAX_DEPTH, b"<leaf/>"), {"max_depth": MAX_DEPTH + 1})


def stanza_of(size, shape):
    """A stanza of exactly size bytes inside a stream root, its bulk in text, an attribute or CDATA."""
    head, tail = {
        "text": (b"<message><body>", b"</body></message>"),
        "attribute": (b"<message id='", b"'/>"),
        "cdata": (b"<message><![CDATA[", b"]]></message>"),
        "text of 3-byte characters": (b"<message><body>", b"</body></message>"),
    }[shape]
    fill = size - len(head) - len(tail)
    if shape == "text of 3-byte characters":
        body = "\u4e2d".encode() * (fill // 3) + b"x" * (fill % 3)
    else:
        body = b"y" * fill
    stanza = head + body + tail
    assert len(stanza) == size
    return b"<stream:stream>\n" + stanza + b"\n</stream:stream>"


@pytest.mark.parametrize("quote", [b"'", b'"'])
def test_attribute_value_cap(quote):
    def doc(size):
        value = b"&amp;" + b"v" * (size - 5)  # the cap counts the value as written
        return b"<stream:stream><m a=" + quote + value + quote + b"/></stream:stream>"

    check_cap(doc(MAX_ATTR_VALUE), doc(MAX_ATTR_VALUE + 1), {"max_attr_value": MAX_ATTR_VALUE + 1})


@pytest.mark.parametrize("shape", ["text", "attribute", "cdata", "text of 3-byte characters"])
def test_stanza_bytes_cap(shape):
    # An attribute value that big is past its own cap: raised here, tested on its own below.
    caps = {"max_attr_value": 1 << 30} if shape == "attribute" else {}
    check_cap(stanza_of(MAX_STANZA_BYTES, shape), stanza_of(MAX_STANZA_BYTES + 1, shape),
              {"max_stanza_bytes": MAX_STANZA_BYTES + 1}, **caps)


def test_stanza_bytes_cap_counts_each_stanza_alone():
    half = stanza_of(MAX_STANZA_BYTES // 2, "text")[len(b"<stream:stream>\n"):-len(b"\n</stream:stream>")]
    assert_same_as_expat(b"<stream:stream>" + half * 8 + b"</stream:stream>")


def with_attrs(count, separator=b" "):
    attrs = b"".join(separator + b"a" + str(i).encode() + b"='v'" for i in range(count - 1))
    return b"<s><m xmlns='urn:x'" + attrs + b"/></s>"


@pytest.mark.parametrize("separator", [b" ", b"\n\t"])
def test_attribute_count_cap(separator):
    check_cap(with_attrs(MAX_ATTRS, separator), with_attrs(MAX_ATTRS + 1, separator), {"max_attrs": MAX_ATTRS + 1})


@pytest.mark.parametrize("place", ["element", "attribute", "attribute after a tab", "prefixed element"])
@pytest.mark.parametrize("char", ["a", "\u00e9"])
def test_name_length_cap(place, char):
    def doc(size):
        unit = char.encode()
        prefix = b"p:" if place == "prefixed element" else b""
        fill = size - len(prefix)
        name = prefix + b"n" * (fill % len(unit)) + unit * (fill // len(unit))
        assert len(name) == size
        if place.startswith("attribute"):
            return b"<s" + (b"\t" if place.endswith("tab") else b" ") + name + b"='v'/>"
        return b"<" + name + b">t</" + name + b">"

    check_cap(doc(MAX_NAME), doc(MAX_NAME + 1), {"max_name": MAX_NAME + 1})


@pytest.mark.parametrize("place", ["text", "attribute"])
def test_reference_length_cap(place):
    def doc(size):
        for form in (b"&#", b"&#x"):
            ref = form + b"0" * (size - len(form) - 3) + b"41;"
            assert len(ref) == size
            yield b"<s>" + ref + b"</s>" if place == "text" else b"<s a='" + ref + b"'/>"

    for within, beyond in zip(doc(MAX_REFERENCE), doc(MAX_REFERENCE + 1)):
        # The reference cap is a module constant, not a per-parser option.
        assert_same_as_expat(within)
        assert run_expat(beyond).accepted
        for sizes in (None, 1, [5]):
            assert not run_ours(beyond, sizes).accepted


def test_raised_caps_agree_with_expat_on_big_documents():
    rng = random.Random(26)
    limits = Limits(depth=40, attrs=40, name=200, stanza_bytes=1 << 20)
    caps = {"max_depth": 40, "max_attrs": 40, "max_name": 200, "max_stanza_bytes": 1 << 20}
    for _ in range(40):
        doc = gen_stream(rng, limits=limits)
        theirs = run_expat(doc)
        assert theirs.accepted, describe(doc, None, theirs)
        for sizes in (None, random_sizes(rng)):
            ours = run_ours(doc, sizes, **caps)
            assert ours.accepted and ours.events == theirs.events, describe(doc, ours, theirs)


# A cap is a property of the stream, not of how it was cut into chunks: a token
# larger than max_stanza_bytes must be rejected however it arrives (the parser
# rejects it while holding it back unfinished, so it has to when it arrives whole).
OVERSIZED_TOKENS = {
    "stream header": b"<stream:stream from='" + b"x" * MAX_STANZA_BYTES + b"'><m/></stream:stream>",
    "XML declaration": b"<?xml version='1.0'" + b" " * MAX_STANZA_BYTES + b"?><s/>",
}


@pytest.mark.parametrize("what", sorted(OVERSIZED_TOKENS))
def test_oversized_token_outside_stanzas_rejected_in_any_chunking(what):
    doc = OVERSIZED_TOKENS[what]
    assert run_expat(doc).accepted
    verdicts = {repr(sizes): run_ours(doc, sizes).accepted for sizes in (None, 1, 7, 4096, [MAX_STANZA_BYTES])}
    assert not any(verdicts.values()), "accepted with chunk sizes {}".format(
        [sizes for sizes, accepted in verdicts.items() if accepted])


def test_long_text_in_the_root_is_no_token():
    # Text runs are passed on as they arrive; only what is held back counts.
    for doc in (b"<s>" + b"x" * (3 * MAX_STANZA_BYTES) + b"</s>",
                b"<s><![CDATA[" + b"x" * (3 * MAX_STANZA_BYTES) + b"]]></s>",
                b"<stream:stream>" + b" \n" * MAX_STANZA_BYTES + b"<m/></stream:stream>"):
        assert_same_as_expat(doc)


# -- tests: the same parser on the MicroPython VM ----------------------------------

# Runs on both interpreters: parses each document of a corpus file (4-byte
# little-endian length, then the bytes) whole, in 3-byte chunks and byte by byte,
# and prints the verdict and the events, names and text in hex.
CORPUS_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from binascii import hexlify
from xmpp_lite.parser import Parser, XMLError

def hx(text):
    return str(hexlify(text.encode("utf-8")), "ascii")

class Handler:
    def __init__(self):
        self.events = []
        self.texts = []
    def flush(self):
        if self.texts:
            self.events.append("T" + hx("".join(self.texts)))
            self.texts = []
    def start(self, name, attrs):
        self.flush()
        pairs = sorted(hx(key) + "=" + hx(value) for key, value in attrs.items())
        self.events.append("S" + hx(name) + "(" + ",".join(pairs) + ")")
    def end(self, name):
        self.flush()
        self.events.append("E" + hx(name))
    def text(self, data):
        self.texts.append(data)

def parse(doc, step):
    handler = Handler()
    big = 1 << 20
    parser = Parser(handler, max_depth=big, max_stanza_bytes=big, max_attrs=big, max_name=big,
                    max_attr_value=big, stream=False)
    try:
        pos = 0
        while pos < len(doc):
            parser.feed(doc[pos:pos + step])
            pos += step
        verdict = "open%d" % parser.depth
    except XMLError:
        verdict = "error"
    handler.flush()
    return verdict + " " + " ".join(handler.events)

with open(sys.argv[2], "rb") as corpus:
    index = 0
    while True:
        head = corpus.read(4)
        if not head:
            break
        doc = corpus.read(head[0] | head[1] << 8 | head[2] << 16 | head[3] << 24)
        for step in (len(doc) or 1, 3, 1):
            print(index, step, parse(doc, step))
        index += 1
"""


@pytest.mark.timeout(VM_TIMEOUT_S + 60)  # the VM's own time limit fires first, with its output
def test_parser_on_micropython_gives_the_same_results(tmp_path):
    """The parser has MicroPython-only paths (UTF-8 checks the VM's decoder skips, a smaller regex engine)."""
    micropython = find_tool("micropython")
    if micropython is None:
        pytest.fail("no micropython binary beside %s or on PATH; run `make bootstrap`" % sys.executable,
                    pytrace=False)
    rng = random.Random(31)
    corpus = tmp_path / "corpus.bin"
    with open(corpus, "wb") as out:
        for index in range(240):
            doc = gen_stream(rng) if index % 2 else gen_small_doc(rng)
            if index % 8:
                doc, _ = mutate(rng, doc)
            out.write(len(doc).to_bytes(4, "little") + doc)
    lib = str(Path(__file__).resolve().parents[2] / "lib")
    results = {}
    # The heap only has to hold the corpus runner; memory use is not what this measures.
    for runtime, command in (("cpython", [sys.executable]), ("micropython", [micropython, "-X", "heapsize=4m"])):
        done = subprocess.run(command + ["-c", CORPUS_RUNNER, lib, str(corpus)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=VM_TIMEOUT_S)
        output = done.stdout.decode("utf-8", "replace")
        assert done.returncode == 0, "{} failed:\n{}".format(runtime, output[-3000:])
        results[runtime] = output.splitlines()
    assert len(results["cpython"]) == len(results["micropython"]) == 3 * 240
    differ = [(ours, theirs) for ours, theirs in zip(results["cpython"], results["micropython"]) if ours != theirs]
    assert not differ, "{} result(s) differ, first: CPython {} / MicroPython {}".format(len(differ), *differ[0])


# -- regressions ------------------------------------------------------------------


@pytest.mark.parametrize("doc", [b"</<>", b"<a/></<>", b"<s/>\n</<>", b"<?xml version='1.0'?></<>"])
def test_end_tag_named_lt_with_no_open_element_is_an_xml_error(doc):
    # The fast path for "</name>" matched "<" as the name when no element
    # was open, and closing popped an empty stack (IndexError).
    assert not run_expat(doc).accepted
    for sizes in (None, 1, 2):
        assert not run_ours(doc, sizes).accepted


# -- errors raised with the byte that makes them, as expat does --------------------

# Documents that go wrong inside a tag before its ">" (or without one); the
# byte where each parser fails, fed byte by byte, must be the same.
ERRORS_INSIDE_TAGS = (
    b"<doc a1=\"v1'></doc>",  # "<" in a value that never closes
    b"<doc></'x>",  # an end tag's name starts with a character no name starts with
    b"<doc></1>",
    b"<d'oc/>",  # a bad character in a name
    b"<doc a'b='1'/>",
    b"<doc><\xff/></doc>",  # a byte that is no UTF-8
    b"<doc a='\xff'/>",
    b"<doc a='\x01'/>",
    b"<doc></do\xc3\xa9>",  # a mismatched end tag, cut inside a character
    b"<doc a='1'b='2'/>",  # no white space between attributes
    b"<doc a b='1'/>",  # an attribute without "="
    b"<doc a=1/>",  # an unquoted value
    b"<doc ='1'/>",
    b"<doc a=='1'/>",
    b"<doc a='1'\"/>",
    b"<doc></doc x>",  # junk in an end tag
    b"<doc><a></a b></doc>",
    b"<doc a='1'/x>",  # "/" not followed by ">"
    b"<doc/ >",
    b"<doc a='x<y'/>",
    b"<doc a='&#xZ;'/>",  # a character reference that cannot go on
    b"<doc a='& '/>",
    b"<doc>&#1x;</doc>",
    b"<doc><a b='1' 2='3'/></doc>",
)


def first_error_at(feed, doc, errors):
    for i in range(len(doc)):
        try:
            feed(doc[i:i + 1])
        except errors:
            return i
    return None


@pytest.mark.parametrize("doc", ERRORS_INSIDE_TAGS)
def test_errors_inside_tags_at_the_same_byte_as_expat(doc):
    expat = pyexpat.ParserCreate()
    theirs = first_error_at(lambda piece: expat.Parse(piece, False), doc, pyexpat.ExpatError)
    ours = first_error_at(Parser(Recorder(), stream=False).feed, doc, XMLError)
    assert theirs is not None
    assert ours == theirs, "{!r}: expat fails at byte {}, we at {}".format(doc, theirs, ours)


def test_stream_rules_on_generated_streams():
    # Generated streams hold only whitespace between stanzas: as an XMPP
    # stream (the default) they give the same events as a plain document.
    rng = random.Random(13)
    for _ in range(150):
        doc = gen_stream(rng)
        plain = run_ours(doc, complete=False)
        assert plain.accepted
        for sizes in (None, 1, random_sizes(rng)):
            recorder = Recorder()
            parser = Parser(recorder)
            for piece in chunks(doc, sizes):
                parser.feed(piece)
            assert recorder.events == plain.events


def test_text_between_stanzas_expat_accepts_is_refused_in_a_stream():
    for junk in (b"x", b"&amp;", b"<![CDATA[ ]]>", b"\xc3\xa9"):
        doc = b"<stream:stream><m/>" + junk + b"<m/>"
        assert run_expat(doc, final=False).accepted
        assert run_ours(doc, complete=False).accepted
        for sizes in (None, 1):
            parser = Parser(Recorder())
            with pytest.raises(XMLError) as caught:
                for piece in chunks(doc, sizes):
                    parser.feed(piece)
            assert caught.value.condition == "bad-format"


def test_the_xml_limits_page_examples_run():
    page = Path(__file__).resolve().parents[2] / "docs" / "xml-limits.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})
