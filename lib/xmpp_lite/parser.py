"""Incremental XML parser for XMPP streams (SAX-lite).

Feed it bytes in any chunking; it calls ``handler.start(name, attrs)``,
``handler.end(name)`` and ``handler.text(data)`` as soon as each event's bytes
have arrived. It checks XML 1.0 well-formedness and rejects what XMPP forbids
(RFC 6120 section 11.1): comments, processing instructions, DTDs and entity
references other than the five predefined ones and character references.

An XMPP stream (the default, stream=True) holds stanzas with only whitespace
between them: other character data at depth 1 raises XMLError whose
``condition`` is "bad-format". stream=False parses a plain document (one
element alone), which may hold text right inside its root. An error inside a
tag is raised with the feed that brings its offending byte, as in expat, not
when the tag's ">" arrives. ``stanzas`` and ``whitespace`` count complete
depth-1 elements and whitespace bytes between them: proof that the link is
alive, which nothing else is.

Memory stays bounded however long the stream runs. Every bound is a named
constant below; all but MAX_REFERENCE can be overridden per parser by keyword.
Text and CDATA sections are passed on as they arrive, never held (but for a
reference, CRLF, "]]>" or a UTF-8 character cut in two: at most MAX_REFERENCE
bytes). Each token is checked against its cap as its bytes arrive. What the
parser holds at most, in bytes, with S = max_stanza_bytes, N = max_name,
A = max_attrs, D = max_depth and C the size of the chunk being fed:

- one unfinished token (a tag, the stream header, the XML declaration):
  at most S, kept in the pieces it came in and joined once, when its ">"
  can have come: 2 S + C at that moment; then the joined copy and the
  names and values decoded from it, again at most 2 S + C (a value alone
  is at most max_attr_value, MAX_ATTR_VALUE by default);
- the stack of open elements: D names as str and bytes, 2 D N;
- the caches: 64 names of at most N bytes and 16 tag shapes of at most
  N + A (N + 3) bytes each: 64 N + 16 (N + A (N + 3)).

With the defaults (S 16384, N 64, A 16, D 16) that is 32 KB + C for the
input, 2 KB for the stack and 4 KB + 17 KB for full caches: about 55 KB + C
at the very worst (a hostile peer filling every cap at once), besides the
code and the objects' own overhead. A typical stream keeps a few hundred
bytes besides the caches.

The buffer is scanned with ``find`` and small regular expressions; Python code
runs per token (tag, text run), not per byte.
"""

import re

try:
    # The decorator @micropython.native below and const: only from the VM, so
    # that the parser alone does not load _compat's code onto a small heap.
    import micropython
    from micropython import const
except ImportError:  # CPython
    from xmpp_lite._compat import const, micropython

# Default caps. A stream that exceeds one raises XMLError.
MAX_DEPTH = 16  # open elements at once, the stream root included
MAX_STANZA_BYTES = 16384  # bytes of one depth-1 element with its subtree (RFC 6120 13.12: >= 10000)
MAX_ATTRS = 16  # attributes (xmlns declarations included) on one element
MAX_NAME = 64  # bytes of one element or attribute name, prefix included
MAX_ATTR_VALUE = 3072  # bytes of one attribute value as written (a JID of RFC 7622 is at most 3071)
MAX_REFERENCE = 32  # bytes of one entity or character reference, "&" to ";"

_LT = const(0x3C)  # <
_GT = const(0x3E)  # >
_SLASH = const(0x2F)  # /
_BANG = const(0x21)  # !
_QUEST = const(0x3F)  # ?
_EQ = const(0x3D)  # =
_QUOT = const(0x22)  # "
_APOS = const(0x27)  # '
_CR = const(0x0D)
_RBRACKET = const(0x5D)  # ]
_NAME_CACHE_SIZE = const(64)  # valid names each parser remembers, see Parser._known
_SHAPE_CACHE_SIZE = const(16)  # start-tag shapes each parser remembers, see Parser._learn_shape
_PIECE = const(512)  # pieces of an unfinished tag are put together up to this size, see _keep_piece
_WS = b" \t\r\n"  # the S production
# Where _check_open_tag stopped in an unfinished start tag: after the element
# name or a value (a gap), after an attribute name, after its "=", inside its
# value. _end_tag keeps its own place in an unfinished end tag as _TAG_END.
_TAG_GAP = const(0)
_TAG_ATTR = const(1)
_TAG_EQ = const(2)
_TAG_VALUE = const(3)
_TAG_END = const(4)

_BOM = b"\xef\xbb\xbf"
_CDATA_OPEN = b"<![CDATA["

# A name's bytes: the ASCII part of the Name production exactly; bytes >= 0x80
# are let through here and the decoded characters checked by _check_name.
_NAME_RE = re.compile(b"[A-Za-z_:\x80-\xff][-A-Za-z0-9._:\x80-\xff]*")
# Control characters XML 1.0 does not allow (NUL is looked for with find:
# the MicroPython regex engine cannot hold a NUL byte in a pattern).
_CONTROL_RE = re.compile(b"[\x01-\x08\x0b\x0c\x0e-\x1f]")
_SCREEN = const(256)  # bytes screened at once, see _check_controls
_SHORT_CHUNK = const(64)  # up to this many bytes min() screens faster
_ONES = const(((1 << (8 * _SCREEN)) - 1) // 0xFF)  # 0x0101...01, _SCREEN bytes
# Byte sequences that are not UTF-8 for an XML character although
# MicroPython's decoder lets them through: overlong forms, surrogates, code
# points above U+10FFFF, and U+FFFE/U+FFFF (valid UTF-8, not XML characters).
_BAD_UTF8_RE = re.compile(
    b"[\xc0\xc1\xf5-\xff]|\xe0[\x80-\x9f]|\xed[\xa0-\xbf]|\xf0[\x80-\x8f]|\xf4[\x90-\xbf]|\xef\xbf[\xbe\xbf]"
)
_XML_DECL_RE = re.compile(
    b"<\\?xml\\s+version\\s*=\\s*(\"1\\.[0-9]+\"|'1\\.[0-9]+')"
    b"(\\s+encoding\\s*=\\s*(\"[A-Za-z][-A-Za-z0-9._]*\"|'[A-Za-z][-A-Za-z0-9._]*'))?"
    b"(\\s+standalone\\s*=\\s*(\"yes\"|\"no\"|'yes'|'no'))?\\s*\\?>"
)

_PREDEFINED = {b"lt": b"<", b"gt": b">", b"amp": b"&", b"apos": b"'", b"quot": b'"'}

# Non-ASCII ranges of the Name production (XML 1.0 fifth edition, section 2.3).
_NAME_START_RANGES = (
    (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x2FF), (0x370, 0x37D), (0x37F, 0x1FFF),
    (0x200C, 0x200D), (0x2070, 0x218F), (0x2C00, 0x2FEF), (0x3001, 0xD7FF),
    (0xF900, 0xFDCF), (0xFDF0, 0xFFFD), (0x10000, 0xEFFFF),
)
_NAME_MORE_RANGES = ((0xB7, 0xB7), (0x300, 0x36F), (0x203F, 0x2040))


class XMLError(ValueError):
    """The stream is not well-formed XML, uses what XMPP forbids, or exceeds a cap.

    ``condition`` names the stream error (RFC 6120 section 4.9.3) to send
    when the message alone does not say it; None leaves the choice to the
    caller (see stream.xml_error_condition).
    """

    condition = None


# RFC 6120 section 4.9.3.1: bad-format is "XML that cannot be processed".
# Character data directly inside <stream:stream> is well-formed XML, so
# not-well-formed (section 4.9.3.13: a violation of XML's well-formedness
# rules) would be wrong; it breaks only XMPP's rule that the stream's
# children are stanzas, with whitespace between them as keepalives.
CONDITION_TEXT_BETWEEN_STANZAS = "bad-format"


def _between_stanzas(message):
    error = XMLError(message)
    error.condition = CONDITION_TEXT_BETWEEN_STANZAS
    return error


def _in_ranges(code, ranges):
    for low, high in ranges:
        if low <= code <= high:
            return True
    return False


def _check_name(name):
    """Check the non-ASCII characters of a decoded name (the regex did the ASCII ones)."""
    first = True
    for ch in name:
        code = ord(ch)
        if code >= 0x80:
            if not _in_ranges(code, _NAME_START_RANGES):
                if first or not _in_ranges(code, _NAME_MORE_RANGES):
                    raise XMLError("invalid character in name " + repr(name))
        first = False


def _is_xml_char(code):
    return (
        code == 0x9 or code == 0xA or code == 0xD
        or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    )


# On MicroPython a viper function screens a chunk for control characters in
# machine code: about 10 times faster than _check_controls_portable, which is
# what runs on CPython. Its source is compiled at import by the device's own
# compiler: written as a decorated function, it would not import on CPython
# (where adafruit-blinka's stand-in for @micropython.viper raises).
# screen(data, size) -> 0: no byte below 0x20; 1: only TAB, LF and CR; 2: another one.
_SCREEN_SOURCE = """
@micropython.viper
def screen(data, size: int) -> int:
    p = ptr8(data)
    found = 0
    i = 0
    while i < size:
        b = p[i]
        if b < 0x20:
            if b != 0x09 and b != 0x0A and b != 0x0D:
                return 2
            found = 1
        i += 1
    return found
"""


def _native_screen():
    try:
        import micropython
    except ImportError:
        return None  # CPython
    scope = {"micropython": micropython}
    try:
        exec(_SCREEN_SOURCE, scope)
    except Exception:  # noqa: BLE001 - no native emitter on this port: the portable screen does it
        return None
    return scope["screen"]


_screen = _native_screen()


def _check_controls(data):
    """Reject control characters; return True if data has no byte below 0x20
    at all, so that its tokens need no search for TAB, LF and CR."""
    if _screen is None:
        return _check_controls_portable(data)
    found = _screen(data, len(data))
    if found == 2:
        raise XMLError("character not allowed in XML")
    return found == 0


def _check_controls_portable(data):
    """_check_controls without native code.

    min() compares byte by byte, as Python objects, on MicroPython: fine for
    a short chunk only. A longer one is screened as big integers of up to
    _SCREEN bytes: bit 7 of ((b & 0x60) + 0x60) | b is set exactly when
    b >= 0x20, and no carry crosses into the next byte, so one mask test
    covers every byte at once. Only a chunk with a byte below 0x20 (TAB, LF
    and CR among them, which are allowed) is searched precisely. The masks
    are made from _ONES per call: kept as constants too they would hold
    another 1.5 KB of a small heap.
    """
    size = len(data)
    if size <= _SHORT_CHUNK:
        if min(data) >= 0x20:
            return True
    else:
        width = size if size < _SCREEN else _SCREEN
        ones = _ONES if width == _SCREEN else _ONES >> ((_SCREEN - width) << 3)
        low = ones * 0x60
        high = ones << 7  # 0x8080...80
        view = memoryview(data) if size > _SCREEN else data
        pos = 0
        while pos < size:
            piece = view[pos:pos + _SCREEN] if size > _SCREEN else data
            got = int.from_bytes(piece, "big")
            if len(piece) < width:  # the last piece of a long chunk
                high >>= (width - len(piece)) << 3
            if (((got & low) + low) | got) & high != high:
                break
            pos += _SCREEN
        else:
            return True
    if data.find(b"\x00") >= 0 or _CONTROL_RE.search(data) is not None:
        raise XMLError("character not allowed in XML")
    return False


def _utf8(raw):
    """Decode a complete token. Pure ASCII (the common case) needs no more checks."""
    text = str(raw, "utf-8")
    if len(text) != len(raw):
        # Without a byte from 0xE0 up there are only two-byte sequences, and
        # of those only the overlong C0 and C1 forms are bad: much cheaper to
        # rule out than the whole pattern (Latin and Cyrillic text, say).
        if max(raw) < 0xE0:
            bad = b"\xc0" in raw or b"\xc1" in raw
        else:
            bad = _BAD_UTF8_RE.search(raw) is not None
        if bad:
            raise XMLError("invalid UTF-8 or a character XML does not allow")
    return text


def _reference(ref):
    """Expand the body of one reference (between "&" and ";") to UTF-8 bytes."""
    value = _PREDEFINED.get(ref)
    if value is not None:
        return value
    if ref[:2] == b"#x":
        digits, base = ref[2:], 16
    elif ref[:1] == b"#":
        digits, base = ref[1:], 10
    else:
        # Any other entity would need a DTD, which XMPP forbids.
        raise XMLError("undefined entity &" + str(ref, "utf-8") + ";")
    if not digits:
        raise XMLError("empty character reference")
    for digit in digits:  # int() alone would accept "_", "+" and spaces
        if not (0x30 <= digit <= 0x39 or (base == 16 and 0x61 <= (digit | 0x20) <= 0x66)):
            raise XMLError("bad character reference")
    code = int(digits, base)
    if not _is_xml_char(code):
        raise XMLError("character reference to a character XML does not allow")
    return chr(code).encode("utf-8")


def _reference_start(part):
    """Raise if part, a reference after its "&" cut short before the ";",
    cannot become a reference XMPP allows."""
    if part[:1] == b"#":
        base = 16 if part[1:2] == b"x" else 10
        for digit in part[2:] if base == 16 else part[1:]:
            if not (0x30 <= digit <= 0x39 or (base == 16 and 0x61 <= (digit | 0x20) <= 0x66)):
                raise XMLError("bad character reference")
    elif part:
        match = _NAME_RE.match(part)
        if match is None or len(match.group(0)) != len(part):
            raise XMLError("bad entity reference")


def _expand(data):
    """Expand every reference in a complete run of bytes (text or attribute value)."""
    amp = data.find(b"&")
    if amp < 0:
        return data
    parts = []
    start = 0
    while amp >= 0:
        semi = data.find(b";", amp)
        if semi < 0 or semi - amp + 1 > MAX_REFERENCE:
            raise XMLError("unterminated or overlong reference")
        parts.append(data[start:amp])
        parts.append(_reference(data[amp + 1:semi]))
        start = semi + 1
        amp = data.find(b"&", start)
    parts.append(data[start:])
    return b"".join(parts)


def _normalise_newlines(data):
    # XML 1.0 section 2.11: CRLF and lone CR become LF before anything else.
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _is_ws(byte):
    return byte == 0x20 or byte == 0x0A or byte == 0x09 or byte == 0x0D


def _utf8_tail(buf, start, end):
    """How many bytes at the end of buf[start:end] are an incomplete UTF-8 sequence."""
    k = 1
    while k <= 3 and end - k >= start:
        byte = buf[end - k]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:
            if byte < 0xC2 or byte > 0xF4:
                return 0  # never starts a character: let the decoder reject it now
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return k if need > k else 0
        k += 1
    return 0


class Parser:
    """Streaming XML parser; see the module docstring for the contract."""

    def __init__(self, handler, max_depth=MAX_DEPTH, max_stanza_bytes=MAX_STANZA_BYTES,
                 max_attrs=MAX_ATTRS, max_name=MAX_NAME, max_attr_value=MAX_ATTR_VALUE, stream=True):
        self._start = handler.start
        self._end = handler.end
        self._text = handler.text
        self.max_depth = max_depth
        self.max_stanza_bytes = max_stanza_bytes
        self.max_attrs = max_attrs
        self.max_name = max_name
        self.max_attr_value = max_attr_value
        # An XMPP stream (stream=True) holds stanzas and whitespace between
        # them: character data starts at depth 2. A plain document (one
        # element parsed alone) may hold text right inside its root.
        self._text_depth = 2 if stream else 1
        # Proof of life for a keepalive policy, counted over the parser's
        # life (reset() keeps them): complete stanzas (depth-1 elements),
        # and whitespace bytes between stanzas. Nothing else counts.
        self.stanzas = 0
        self.whitespace = 0
        self._names = {}  # names known to be valid (kept across reset()), see _known
        self._shapes = {}  # start-tag shapes known to be valid, see _learn_shape
        self._prefix_shape = b"\x00"  # the shape _known_prefix matched last (none yet: no key starts so)
        self._streams = 0  # counts reset() calls, so _feed notices one made by a handler
        self.reset()

    def reset(self):
        """Forget everything: the next byte is the first of a new stream."""
        self._buf = b""
        self._plain = True  # self._buf has no byte below 0x20, see _check_controls
        self._offset = 0  # stream offset of self._buf[0]
        self._stack = []  # names (str) of the open elements
        self._raw_stack = []  # the same names as bytes, to match end tags without decoding
        self._stanza_at = -1  # stream offset where the open depth-1 element began
        self._root_done = False
        self._bom = False  # the stream began with a byte order mark
        self._error = None
        self._error_condition = None
        self._in_cdata = False  # the buffer starts inside a CDATA section
        self._open_tag = None  # how far _check_open_tag got in the unfinished tag
        self._parts = None  # pieces of an unfinished tag after self._buf, see _keep_piece
        self._held = 0  # bytes held: self._buf and self._parts
        self._streams += 1

    @property
    def depth(self):
        """How many elements are open (1 while inside the stream root only)."""
        return len(self._stack)

    def feed(self, data):
        """Parse the next bytes of the stream; raises XMLError on bad input.

        data is bytes, bytearray or memoryview. The parser keeps no
        reference to it after returning: the caller may reuse its buffer.
        A bytearray or memoryview is copied once (joined to the held bytes
        of an unfinished token if there are any, else as it is).
        """
        if self._error is not None:
            self._raise()  # an error is final until reset()
        if not data:
            return
        try:
            parts = self._parts
            if parts is not None:
                # An unfinished tag, already checked up to its last bytes:
                # a piece without ">" cannot end it, so it is checked alone
                # and kept as it is; the tag is joined once, when it can end.
                if not isinstance(data, bytes):
                    data = bytes(data)
                if data.find(b">") < 0:
                    self._keep_piece(data)
                    return
                parts.append(data)
                parts.insert(0, self._buf)
                data = b"".join(parts)  # the one copy of the whole tag
                parts = self._parts = None  # the pieces may go while it is parsed
                self._buf = b""
            elif not isinstance(data, bytes):
                pending = self._buf
                if pending:
                    self._buf = b""
                    data = pending + data  # one copy, which _feed then takes as its buffer
                else:
                    data = bytes(data)
            self._feed(data)
        except XMLError as exc:
            self._error_condition = exc.condition
            self._fail(exc.args[0] if exc.args else "error")
        except UnicodeError:
            # Tokens are decoded with str(raw, "utf-8") right where they are
            # cut out; a decoding failure anywhere means the same thing.
            self._fail("invalid UTF-8")

    def _fail(self, reason):
        self._error = "{} (near byte {})".format(reason, self._offset)
        self._raise()

    def _raise(self):
        error = XMLError(self._error)
        error.condition = self._error_condition
        raise error

    # Machine code from MicroPython's native emitter: the same semantics as
    # bytecode, with no bytecode to dispatch. This loop runs per token, and
    # the rest of the parser is rarely on the path, so it alone is native:
    # 16 % fewer instructions per byte for some 4 KB of code on an ESP32.
    @micropython.native
    def _feed(self, data):
        pending = self._buf
        # Control characters are single bytes: each chunk is checked once as
        # it arrives. The rest of the character rules are checked on each
        # token as it is decoded (_utf8), when its sequences are complete.
        plain = _check_controls(data)
        if pending:
            buf = pending + data
            plain = plain and self._plain
        else:
            buf = data
        if self._offset == 0 and buf[:3] == _BOM[:len(buf)]:
            if len(buf) < 3:
                self._buf = buf
                return
            buf = buf[3:]  # a UTF-8 byte order mark is allowed and skipped
            self._offset = 3
            self._bom = True
        pos = 0
        end = len(buf)
        if self._in_cdata:
            pos = self._cdata_resume(buf, end, plain)
            if pos < 0:
                return
        # Locals: on MicroPython an attribute or global lookup per token costs
        # more than the rest of a short token's handling.
        stack = self._stack
        raw_stack = self._raw_stack
        shapes = self._shapes
        on_start = self._start
        on_end = self._end
        on_text = self._text
        stream = self._streams
        max_depth = self.max_depth
        cap = self.max_stanza_bytes
        max_value = self.max_attr_value
        text_depth = self._text_depth
        decode = str  # builtins too: a global lookup misses the module first
        length = len
        # A token that ends past this index of buf needs _stanza_limit: in a
        # stanza, where it exceeds the cap; outside, no nearer than the cap
        # from where the token starts. -1 after a call that may have opened
        # or closed a stanza; the check after the token puts it right.
        limit = self._stanza_at - self._offset + cap if self._stanza_at >= 0 else cap
        # The loop handles the most common tokens inline (a text run inside
        # the root, "</name>", a start tag of a known shape, stanzas opened
        # and closed): on MicroPython each call saved is measurable.
        # Not `while pos < end`: that jumps back to the top on a condition,
        # over the whole loop, and a conditional branch of Xtensa's native
        # emitter before MicroPython 1.26 reaches only 2 KB: those emitters
        # print an error and still write the code, with the branch cut short.
        # A plain jump reaches further.
        while True:
            if pos >= end:
                break
            if buf[pos] != _LT:
                stop = buf.find(b"<", pos)
                if stop < 0 or length(stack) < text_depth:
                    nxt = self._text_run(buf, pos, end)
                else:
                    raw = buf[pos:stop]
                    if b"]]>" in raw:
                        raise XMLError("']]>' in text")
                    if not plain and b"\r" in raw:
                        raw = _normalise_newlines(raw)
                    if b"&" in raw:
                        raw = _expand(raw)
                    text = decode(raw, "utf-8")
                    if length(text) != length(raw):
                        text = _utf8(raw)
                    on_text(text)
                    nxt = stop
            elif pos + 1 >= end:
                break
            elif buf[pos + 1] == _SLASH:
                nxt = -1
                if stack:
                    top = raw_stack[-1]
                    after = pos + 2 + length(top)
                    if after < end and buf[after] == _GT and buf.startswith(top, pos + 2):
                        nxt = after + 1
                        # "</name>" exactly, the common case; _close does
                        # the same with the stanza and root bookkeeping.
                        depth = length(stack)
                        if depth > 2:
                            raw_stack.pop()
                            on_end(stack.pop())
                        elif depth == 2:
                            # The end of a stanza.
                            if nxt > limit:
                                raise XMLError("stanza larger than {} bytes".format(cap))
                            self._stanza_at = -1
                            self.stanzas += 1
                            limit = nxt + cap
                            raw_stack.pop()
                            on_end(stack.pop())
                        else:
                            self._close(nxt)
                            limit = -1
                if nxt < 0:
                    nxt = self._end_tag(buf, pos, end)
                    limit = -1
            elif buf[pos + 1] == _BANG:
                nxt = self._cdata(buf, pos, end)
                if self._in_cdata:  # it goes on in the next chunk
                    pos = nxt
                    break
            elif buf[pos + 1] == _QUEST:
                nxt = self._xml_decl(buf, pos, end)
            else:
                gt = buf.find(b">", pos)
                if gt < 0:
                    break  # the tag cannot be complete yet: checked so far after the loop
                empty = buf[gt - 1] == _SLASH
                raw = buf[pos + 1:gt - 1] if empty else buf[pos + 1:gt]
                # Fast path for the common tag: one quote style, no
                # references, no white space other than spaces, no "<".
                # Splitting it at its quotes leaves the values at odd indexes
                # and the "shape" at even ones: `message to=`, ` type=`, ...
                # A stream uses few shapes; _learn_shape checks each once.
                # Anything else, including a ">" inside a value, and every
                # error, takes the careful path. Work stays on bytes: on
                # MicroPython, splitting a str costs several times more.
                shape = None
                if not (b"&" in raw or b"<" in raw or not plain and (b"\n" in raw or b"\t" in raw or b"\r" in raw)):
                    # A '"' may stand in a value quoted with "'"; anywhere
                    # else it makes the shape unknown to _learn_shape.
                    quote = b"'" if b"'" in raw else b'"' if b'"' in raw else None
                    if quote is None:  # no attributes: nothing to split
                        key = raw
                        parts = None
                    else:
                        parts = raw.split(quote)
                        # An even count: the ">" was inside a value.
                        key = quote.join(parts[0::2]) if length(parts) & 1 else None
                    if key is not None:
                        shape = shapes.get(key)
                        if shape is None:
                            shape = self._learn_shape(key, parts)
                if shape is None:
                    nxt = self._careful_start_tag(buf, pos, end)
                    limit = -1
                else:
                    name, raw_name, names = shape
                    attrs = {}
                    i = 1
                    for attr in names:
                        value = parts[i]
                        if length(value) > max_value:
                            raise XMLError("attribute value longer than {} bytes".format(max_value))
                        text = decode(value, "utf-8")
                        if length(text) != length(value):
                            text = _utf8(value)
                        attrs[attr] = text
                        i += 2
                    nxt = gt + 1
                    depth = length(stack)
                    if not depth:
                        # The root: _open keeps its bookkeeping.
                        self._open(name, raw_name, attrs, pos)
                        limit = -1
                    else:
                        if depth >= max_depth:
                            raise XMLError("elements nested deeper than {}".format(max_depth))
                        if depth == 1:
                            # The start of a stanza.
                            self._stanza_at = self._offset + pos
                            limit = pos + cap
                        stack.append(name)
                        raw_stack.append(raw_name)
                        on_start(name, attrs)
                    if empty and self._streams == stream:
                        depth = length(stack)
                        if depth > 2:
                            raw_stack.pop()
                            on_end(stack.pop())
                        elif depth == 2:
                            # An empty stanza: as in the end-tag branch.
                            if nxt > limit:
                                raise XMLError("stanza larger than {} bytes".format(cap))
                            self._stanza_at = -1
                            self.stanzas += 1
                            limit = nxt + cap
                            raw_stack.pop()
                            on_end(stack.pop())
                        else:
                            self._close(nxt)
                            limit = -1
            if nxt < 0 or nxt == pos:
                break
            token_at = pos
            pos = nxt
            if self._streams != stream:
                # A handler restarted the stream (after SASL success or
                # STARTTLS): what follows belongs to the new stream.
                if pos < end:
                    self._feed(buf[pos:])
                return
            if pos > limit:
                limit = self._stanza_limit(buf, token_at, pos)
        self._hold(buf, pos, end, plain)

    def _hold(self, buf, pos, end, plain):
        """Keep buf[pos:] (an unfinished token) for the next feed, within the cap."""
        if pos + 1 < end and buf[pos] == _LT and not self._in_cdata and not self._known_prefix(buf, pos, end, plain):
            # An unfinished tag: what has come of it is checked now, as
            # expat does, not when (and if) its ">" arrives.
            self._check_open_tag(buf, pos, end)
        self._buf = buf if pos == 0 else buf[pos:] if pos < end else b""
        self._plain = plain
        self._offset += pos
        held = end - pos
        self._held = held
        self._parts = None
        if held:
            start = self._stanza_at if self._stanza_at >= 0 else self._offset
            if self._offset + held - start > self.max_stanza_bytes:
                raise XMLError("token or stanza larger than {} bytes".format(self.max_stanza_bytes))
            state = self._open_tag
            if held > 1 and buf[pos] == _LT and (
                    buf[pos + 1] == _QUEST or state is not None and state[0] == self._offset):
                self._parts = []  # see feed and _keep_piece

    def _keep_piece(self, data):
        """Check and keep a piece of the unfinished tag held, which it cannot end."""
        plain = _check_controls(data)
        held = self._held + len(data)
        start = self._stanza_at if self._stanza_at >= 0 else self._offset
        if self._offset + held - start > self.max_stanza_bytes:
            raise XMLError("token or stanza larger than {} bytes".format(self.max_stanza_bytes))
        state = self._open_tag
        if state is not None and state[0] == self._offset:
            # Only the bytes the last check did not pass (a name or a
            # reference cut short) are looked at again, with the new ones.
            resume = state[1]
            tail = self._held_tail(self._offset + self._held - resume) + data
            if state[2] == _TAG_END:
                if tail.strip(_WS):
                    raise XMLError("junk in an end tag")
                self._open_tag = state[:1] + (resume + len(tail),) + state[2:]
            else:
                self._check_open_tag(tail, 0, len(tail), resume, state[0])
        # Small pieces are put together: a tag that comes a byte at a time
        # must not cost an object per byte.
        parts = self._parts
        if parts and len(parts[-1]) + len(data) <= _PIECE:
            parts[-1] += data
        elif not parts and len(self._buf) + len(data) <= _PIECE:
            self._buf += data
        else:
            parts.append(data)
        self._held = held
        self._plain = self._plain and plain

    def _held_tail(self, count):
        """The last count bytes held."""
        pieces = []
        parts = self._parts
        i = len(parts)
        while count > 0:
            i -= 1
            piece = parts[i] if i >= 0 else self._buf
            take = piece if len(piece) <= count else piece[len(piece) - count:]
            pieces.append(take)
            count -= len(take)
        pieces.reverse()
        return b"".join(pieces)

    # -- character data ---------------------------------------------------

    def _text_run(self, buf, pos, end):
        """Handle text from pos up to the next "<"; return where it stopped."""
        stop = buf.find(b"<", pos)
        depth = len(self._stack)
        if depth < self._text_depth:
            return self._text_outside_stanzas(buf, pos, end if stop < 0 else stop, depth)
        if stop < 0:
            # The run goes on in a later chunk: keep back what may be cut in
            # two (a reference, CRLF, "]]>", a UTF-8 sequence).
            stop = end
            amp = buf.rfind(b"&", pos)
            if amp >= 0 and buf.find(b";", amp) < 0:
                if end - amp > MAX_REFERENCE:
                    raise XMLError("unterminated or overlong reference")
                _reference_start(buf[amp + 1:end])
                stop = amp
            else:
                for _ in range(2):
                    if stop > pos and (buf[stop - 1] == _RBRACKET or buf[stop - 1] == _CR):
                        stop -= 1
                stop -= _utf8_tail(buf, pos, stop)
            if stop == pos:
                return pos
        raw = buf[pos:stop]
        if raw.find(b"]]>") >= 0:
            raise XMLError("']]>' in text")
        self._text(_utf8(_expand(_normalise_newlines(raw))))
        return stop

    def _text_outside_stanzas(self, buf, pos, stop, depth):
        """Whitespace only, checked as it arrives: around the root (depth 0)
        or between stanzas (depth 1), where it is passed on and counted."""
        raw = buf[pos:stop]
        if raw.strip(_WS):
            if depth:
                raise _between_stanzas("text between stanzas")
            raise XMLError("text outside the root element")
        if depth:
            if buf[stop - 1] == _CR and stop == len(buf):
                stop -= 1  # a CRLF may be cut in two: one line end either way
                raw = raw[:-1]
            if raw:
                self.whitespace += len(raw)
                self._text(str(_normalise_newlines(raw), "utf-8"))
        return stop

    # -- markup -------------------------------------------------------------

    def _name(self, buf, pos, end):
        """Match a name at pos; return (name_bytes, end_pos), or None if cut off."""
        window = buf[pos:pos + self.max_name + 1]
        match = _NAME_RE.match(window)
        if match is None:
            if pos >= end:
                return None
            raise XMLError("invalid name")
        name = match.group(0)
        if len(name) > self.max_name:
            raise XMLError("name longer than {} bytes".format(self.max_name))
        after = pos + len(name)
        if after >= end:
            return None  # the name may go on in the next chunk
        return name, after

    def _skip_ws(self, buf, pos, end):
        while pos < end and _is_ws(buf[pos]):
            pos += 1
        return pos

    def _stanza_limit(self, buf, token_at, pos):
        """Check the caps after the token buf[token_at:pos].

        Returns the next limit for _feed: the index of buf past which the
        open stanza exceeds its cap, or outside stanzas the cap from pos.
        """
        cap = self.max_stanza_bytes
        if self._stanza_at >= 0:
            limit = self._stanza_at - self._offset + cap
            if pos > limit:
                raise XMLError("stanza larger than {} bytes".format(cap))
            return limit
        if pos - token_at > cap and buf[token_at] == _LT and buf[token_at + 1] != _BANG:
            # Markup outside stanzas (the stream header, a declaration)
            # obeys the same cap whether it came whole or in pieces; text
            # there (CDATA sections too) is passed on as it comes and is
            # not a token.
            raise XMLError("token larger than {} bytes".format(cap))
        return pos + cap

    def _learn_shape(self, key, parts):
        """The shape of a start tag split at its quotes (see _feed; None when
        it has none), or None.

        Valid shapes are remembered under `key`, up to _SHAPE_CACHE_SIZE.
        """
        got = self._shape_of([_utf8(piece) for piece in (parts[0::2] if parts else [key])])
        if got is None:
            return None
        name, names = got
        # A tag without attributes is its name (and a space perhaps): the
        # key serves as the name's bytes, one object less kept per shape.
        raw_name = key if not names and not key.endswith(b" ") else name.encode("utf-8")
        shape = name, raw_name, names
        # The stream root comes once a stream: not worth its memory.
        if self._stack and len(self._shapes) < _SHAPE_CACHE_SIZE:
            self._shapes[key] = shape
        return shape

    def _shape_of(self, pieces):
        """(element name, attribute names) for the text around a tag's values, or None.

        Accepted: `name`, `name ` or `name attr=` first; ` attr=` between
        values; "" or " " last. Anything else goes the careful way.
        """
        head = pieces[0]
        if len(pieces) == 1:
            name = head[:-1] if head.endswith(" ") else head
            name = self._known(name)
            return None if name is None else (name, ())
        if len(pieces) - 1 > self.max_attrs or pieces[-1] not in ("", " "):
            return None
        space = head.find(" ")
        if space < 0 or not head.endswith("="):
            return None
        name = head[:space]
        names = [head[space + 1:-1]]
        for piece in pieces[1:-1]:
            if not (piece.startswith(" ") and piece.endswith("=")):
                return None
            names.append(piece[1:-1])
        for i in range(len(names)):
            attr = self._known(names[i])
            if attr is None or names.count(attr) > 1:
                return None  # a bad name or a duplicate: the careful path says which
            names[i] = attr
        name = self._known(name)
        if name is None:
            return None
        return name, tuple(names)

    def _known(self, name):
        """`name`, or an equal str remembered before, if it is a valid name
        within the cap; None if not.

        Streams use few distinct names, so valid ones are remembered (up to
        _NAME_CACHE_SIZE of them): most checks are one dict lookup, and the
        shapes of a stream share one str per name.
        """
        names = self._names
        known = names.get(name)
        if known is not None:
            return known
        raw = name.encode("utf-8")
        if len(raw) > self.max_name:
            return None
        match = _NAME_RE.match(raw)
        if match is None or len(match.group(0)) != len(raw):
            return None
        if len(raw) != len(name):
            _check_name(name)
        if len(names) < _NAME_CACHE_SIZE:
            names[name] = name
        return name

    def _careful_start_tag(self, buf, pos, end):
        got = self._name(buf, pos + 1, end)
        if got is None:
            return -1
        raw_name, i = got
        attrs = {}
        seen = []  # raw attribute names, to reject duplicates
        while True:
            j = self._skip_ws(buf, i, end)
            if j >= end:
                return -1
            c = buf[j]
            if c == _GT:
                empty = False
                i = j + 1
                break
            if c == _SLASH:
                if j + 1 >= end:
                    return -1
                if buf[j + 1] != _GT:
                    raise XMLError("'/' in a tag not followed by '>'")
                empty = True
                i = j + 2
                break
            if j == i:
                raise XMLError("attributes must be separated by white space")
            got = self._name(buf, j, end)
            if got is None:
                return -1
            raw_attr, k = got
            k = self._skip_ws(buf, k, end)
            if k >= end:
                return -1
            if buf[k] != _EQ:
                raise XMLError("attribute without '='")
            k = self._skip_ws(buf, k + 1, end)
            if k >= end:
                return -1
            quote = buf[k]
            if quote != _QUOT and quote != _APOS:
                raise XMLError("attribute value not quoted")
            close = buf.find(b'"' if quote == _QUOT else b"'", k + 1)
            if close < 0:
                return -1
            if close - k - 1 > self.max_attr_value:
                raise XMLError("attribute value longer than {} bytes".format(self.max_attr_value))
            if raw_attr in seen:
                raise XMLError("duplicate attribute")
            if len(seen) >= self.max_attrs:
                raise XMLError("more than {} attributes".format(self.max_attrs))
            seen.append(raw_attr)
            attrs[self._decode_name(raw_attr)] = self._attr_value(buf[k + 1:close])
            i = close + 1
        name = self._decode_name(raw_name)
        self._open(name, raw_name, attrs, pos)
        if empty and self._stack and self._stack[-1] is name:
            self._close(i)
        return i

    def _known_prefix(self, buf, pos, end, plain):
        """True if the unfinished start tag buf[pos:end] is, but for its
        values, the start of a tag shape seen before (see _feed), with
        plain values within their cap: then nothing in it is wrong so far.

        Much cheaper than _check_open_tag, which a cut tag in most chunks
        would otherwise cost. The pieces around the values are those of a
        valid shape, quote-free, so the split at the quotes is the tag's.
        """
        if end - pos > self.max_attr_value:
            return False  # a value may be past its cap
        raw = buf[pos + 1:end]
        if b"&" in raw or b"<" in raw or not plain and (b"\n" in raw or b"\t" in raw or b"\r" in raw):
            return False
        quote = b"'" if b"'" in raw else b'"' if b'"' in raw else None
        key = quote.join(raw.split(quote)[0::2]) if quote is not None else raw
        if not key:
            return False  # a quote first: no name, and every shape "starts" with b""
        # Shapes come in runs (a burst of presences, of messages): the one
        # that matched last time first.
        known = self._prefix_shape
        if not known.startswith(key):
            for known in self._shapes:
                if known.startswith(key):
                    self._prefix_shape = known
                    break
            else:
                return False
        # The values' UTF-8 is checked when the tag is complete.
        return True

    def _check_open_tag(self, buf, pos, end, base=-1, at=-1):
        """Raise now what is already wrong with the unfinished tag buf[pos:end].

        A bad name, junk, a "<" in a value, and the caps on names, values
        and attributes show before the tag's ">" arrives, as in expat. How
        far the check got is kept in self._open_tag, so that a tag coming in
        many pieces is checked once, not again with every piece: only an
        unfinished name (within the name cap) is looked at twice. base and
        at, when given, are the stream offsets of buf[0] and of the tag, for
        a check that goes on in a piece of the tag (see _keep_piece).
        """
        if base < 0:
            base = self._offset  # the stream offset of buf[0]
            at = base + pos  # the tag's place in the stream
            kind = buf[pos + 1]
            if kind == _BANG or kind == _QUEST or kind == _SLASH:
                return  # _cdata, _xml_decl and _end_tag check as they go
        state = self._open_tag
        if state is not None and state[0] == at:
            _, i, phase, spaced, count, quote, value_at = state
            i -= base
            value_at -= base
        else:
            got = self._name(buf, pos + 1, end)
            if got is None:
                self._name_part(buf, pos + 1, end)
                return
            self._decode_name(got[0])
            i = got[1]
            phase = _TAG_GAP
            spaced = False
            count = quote = value_at = 0
        while i < end:
            if phase == _TAG_VALUE:
                close = buf.find(b'"' if quote == _QUOT else b"'", i)
                stop = end if close < 0 else close
                if buf.find(b"<", i, stop) >= 0:
                    raise XMLError("'<' in an attribute value")
                if stop - value_at > self.max_attr_value:
                    raise XMLError("attribute value longer than {} bytes".format(self.max_attr_value))
                if close < 0:
                    i = self._check_value_part(buf, i, end)
                    break
                self._check_value_part(buf, i, close + 1)
                i = close + 1
                phase = _TAG_GAP
                spaced = False
                continue
            j = self._skip_ws(buf, i, end)
            if j > i:
                spaced = True
                i = j
                continue
            c = buf[i]
            if phase == _TAG_GAP:
                if c == _GT:
                    break  # cannot be: the tag would have ended
                if c == _SLASH:
                    if i + 1 < end and buf[i + 1] != _GT:
                        raise XMLError("'/' in a tag not followed by '>'")
                    break
                if not spaced:
                    raise XMLError("attributes must be separated by white space")
                if count >= self.max_attrs:  # one more is starting
                    raise XMLError("more than {} attributes".format(self.max_attrs))
                got = self._name(buf, i, end)
                if got is None:
                    self._name_part(buf, i, end)
                    break  # an attribute name cut short: looked at again next time
                self._decode_name(got[0])
                count += 1
                i = got[1]
                phase = _TAG_ATTR
            elif phase == _TAG_ATTR:
                if c != _EQ:
                    raise XMLError("attribute without '='")
                i += 1
                phase = _TAG_EQ
            else:  # _TAG_EQ
                if c != _QUOT and c != _APOS:
                    raise XMLError("attribute value not quoted")
                quote = c
                i += 1
                value_at = i
                phase = _TAG_VALUE
        self._open_tag = (at, base + i, phase, spaced, count, quote, base + value_at)

    def _check_value_part(self, buf, pos, stop):
        """Check the references and UTF-8 of buf[pos:stop], part of an
        attribute value (its closing quote included when it has come);
        return where the check stopped: before a reference or a character
        cut short, which the next check looks at again."""
        amp = buf.find(b"&", pos, stop)
        while amp >= 0:
            semi = buf.find(b";", amp, stop)
            if semi < 0 or semi - amp + 1 > MAX_REFERENCE:
                if semi >= 0 or stop - amp >= MAX_REFERENCE:
                    raise XMLError("unterminated or overlong reference")
                _reference_start(buf[amp + 1:stop])
                stop = amp
                break
            _reference(buf[amp + 1:semi])
            amp = buf.find(b"&", semi, stop)
        stop -= _utf8_tail(buf, pos, stop)
        if stop > pos:
            _utf8(buf[pos:stop])
        return stop

    def _name_part(self, buf, pos, end):
        """Check the start of a name cut short at end (its complete characters)."""
        stop = end - _utf8_tail(buf, pos, end)
        if stop > pos:
            self._decode_name(buf[pos:stop])

    def _decode_name(self, raw):
        name = _utf8(raw)
        if len(name) != len(raw):
            _check_name(name)
        return name

    def _attr_value(self, raw):
        if raw.find(b"<") >= 0:
            raise XMLError("'<' in an attribute value")
        # Attribute-value normalisation (XML 1.0 section 3.3.3): after line
        # ends are normalised, each literal TAB, LF and CR becomes a space;
        # characters written as references are kept.
        raw = _normalise_newlines(raw)
        if raw.find(b"\n") >= 0 or raw.find(b"\t") >= 0:
            raw = raw.replace(b"\n", b" ").replace(b"\t", b" ")
        return _utf8(_expand(raw))

    def _open(self, name, raw_name, attrs, pos):
        stack = self._stack
        if not stack and self._root_done:
            raise XMLError("content after the root element")
        if len(stack) >= self.max_depth:
            raise XMLError("elements nested deeper than {}".format(self.max_depth))
        if len(stack) == 1:
            self._stanza_at = self._offset + pos
        stack.append(name)
        self._raw_stack.append(raw_name)
        self._start(name, attrs)

    def _close(self, after):
        """Close the innermost element; its end tag ends at buf[after - 1]."""
        stack = self._stack
        name = stack.pop()
        self._raw_stack.pop()
        if len(stack) == 1:
            if self._offset + after - self._stanza_at > self.max_stanza_bytes:
                raise XMLError("stanza larger than {} bytes".format(self.max_stanza_bytes))
            self._stanza_at = -1
            self.stanzas += 1
        elif not stack:
            self._root_done = True
        self._end(name)

    def _end_tag(self, buf, pos, end):
        # The name and what follows it are checked as they arrive; white
        # space after the name is looked at once, however it is cut.
        at = self._offset + pos
        state = self._open_tag
        if state is not None and state[0] == at:
            i = state[1] - self._offset
            raw_name = buf[pos + 2:state[6] - self._offset]
        else:
            got = self._name(buf, pos + 2, end)
            if got is None:
                self._name_part(buf, pos + 2, end)
                return -1
            raw_name, i = got
        gt = self._skip_ws(buf, i, end)
        if gt >= end:
            self._open_tag = (at, self._offset + gt, _TAG_END, False, 0, 0, at + 2 + len(raw_name))
            return -1
        if buf[gt] != _GT:
            raise XMLError("junk in an end tag")
        if not self._stack:
            raise XMLError("end tag outside the root element")
        if self._stack[-1] != str(raw_name, "utf-8"):
            raise XMLError("end tag does not match the open element " + self._stack[-1])
        self._close(gt + 1)
        return gt + 1

    def _cdata(self, buf, pos, end):
        have = buf[pos:pos + len(_CDATA_OPEN)]
        if have != _CDATA_OPEN[:len(have)]:
            if have[:4] == b"<!--":
                raise XMLError("comments are not allowed in XMPP")
            raise XMLError("DTDs and declarations are not allowed in XMPP")
        if not self._stack:
            raise XMLError("CDATA section outside the root element")
        if len(self._stack) < self._text_depth:
            raise _between_stanzas("CDATA section between stanzas")
        if len(have) < len(_CDATA_OPEN):
            return -1
        return self._cdata_body(buf, pos + len(_CDATA_OPEN), end)

    def _cdata_resume(self, buf, end, plain):
        """Go on with the CDATA section the last chunk ended in; return
        where the rest of buf starts, or -1 if the section goes on still."""
        pos = self._cdata_body(buf, 0, end)
        if self._stanza_at >= 0 and self._offset + pos - self._stanza_at > self.max_stanza_bytes:
            raise XMLError("stanza larger than {} bytes".format(self.max_stanza_bytes))
        if self._in_cdata:
            self._hold(buf, pos, end, plain)
            return -1
        return pos

    def _cdata_body(self, buf, pos, end):
        """Pass on a CDATA section's text from pos; return where it stopped.

        Its text is passed on as it arrives, as a text run's is, so that a
        long section is never held: self._in_cdata says it goes on.
        """
        close = buf.find(b"]]>", pos)
        stop = end if close < 0 else close
        if close < 0:
            # Keep back what may be cut in two: "]]>", CRLF, a UTF-8 sequence.
            for _ in range(2):
                if stop > pos and (buf[stop - 1] == _RBRACKET or buf[stop - 1] == _CR):
                    stop -= 1
            stop -= _utf8_tail(buf, pos, stop)
        if stop > pos:
            self._text(_utf8(_normalise_newlines(buf[pos:stop])))
        if close < 0:
            self._in_cdata = True
            # What was passed on counts towards the stanza (the rest is
            # held, which _hold counts).
            if self._stanza_at >= 0 and self._offset + stop - self._stanza_at > self.max_stanza_bytes:
                raise XMLError("stanza larger than {} bytes".format(self.max_stanza_bytes))
            return stop
        self._in_cdata = False
        return close + 3

    def _xml_decl(self, buf, pos, end):
        # Processing instructions are forbidden; the one allowed form is the
        # XML declaration, as the very first bytes of the stream.
        at_start = self._offset + pos == (3 if self._bom else 0)
        head = buf[pos:pos + 6]
        if not at_start or head[:5] != b"<?xml"[:len(head)] or (len(head) == 6 and not _is_ws(head[5])):
            raise XMLError("processing instructions are not allowed in XMPP")
        # No ">" can stand inside a valid declaration: the first one ends it.
        close = buf.find(b">", pos + 2) - 1
        if close < 0:
            return -1
        if buf[close] != _QUEST:
            raise XMLError("malformed XML declaration")
        decl = buf[pos:close + 2]
        match = _XML_DECL_RE.match(decl)
        if match is None or match.group(0) != decl:
            raise XMLError("malformed XML declaration")
        encoding = match.group(3)
        if encoding is not None and encoding[1:-1].lower() != b"utf-8":
            raise XMLError("XMPP streams are UTF-8 only")
        return close + 2
