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
parser holds at most (an unfinished token: 2 S + C with S the stanza cap and
C the chunk fed; the stack; the caches of names and tag shapes) is worked out
in docs/xml-limits.md: about 55 KB + C with the defaults, at the very worst.

The buffer is scanned with ``find`` and small regular expressions; Python code
runs per token (tag, text run), not per byte. What a session sees all the
time is handled here; everything else (every error's message, tags the fast
path does not take, CDATA sections, character references, unusual
declarations, non-ASCII names) is in xmpp_lite.parser_rare, imported the
first time it is needed. This module is longer than most (under 700 lines):
the token loop is one function on purpose (native code, no call per common
token), and what it needs on every stream stays beside it.
"""


import re
import sys

try:
    # The decorator @micropython.native below and const: only from the VM, so
    # that the parser alone does not load _compat's code onto a small heap.
    import micropython
    from micropython import const
except ImportError:  # CPython
    from xmpp_lite._compat import const, micropython

# Default caps. A stream that exceeds one raises XMLError.
MAX_DEPTH = const(16)  # open elements at once, the stream root included
MAX_STANZA_BYTES = const(16384)  # bytes of one depth-1 element with its subtree (RFC 6120 13.12: >= 10000)
MAX_ATTRS = const(16)  # attributes (xmlns declarations included) on one element
MAX_NAME = const(64)  # bytes of one element or attribute name, prefix included
MAX_ATTR_VALUE = const(3072)  # bytes of one attribute value as written (a JID of RFC 7622 is at most 3071)
MAX_REFERENCE = const(32)  # bytes of one entity or character reference, "&" to ";"

_LT = const(0x3C)  # <
_GT = const(0x3E)  # >
_SLASH = const(0x2F)  # /
_BANG = const(0x21)  # !
_QUEST = const(0x3F)  # ?
_CR = const(0x0D)
_RBRACKET = const(0x5D)  # ]
_NAME_CACHE_SIZE = const(64)  # valid names each parser remembers, see Parser._learn
_SHAPE_CACHE_SIZE = const(16)  # start-tag shapes each parser remembers, see Parser._learn
# A cut start tag of a new shape up to this many bytes is checked in _hold; a
# longer one by parser_rare.check_open_tag, which then keeps it in pieces
# instead of joining it again with each chunk.
_SHORT_TAG = const(512)
# Errors by number: parser_rare.MESSAGES holds their messages, in this order.
_E_STANZA = const(0)
_E_HELD = const(1)
_E_TOKEN = const(2)
_E_VALUE = const(3)
_E_DEPTH = const(4)
_E_CDATA_END = const(6)
_E_REFERENCE = const(7)
_E_BETWEEN = const(8)
_E_OUTSIDE = const(9)
_E_UTF8 = const(10)
_E_AFTER_ROOT = const(11)
_E_CONTROL = const(12)

# A name's bytes: the ASCII part of the Name production exactly; bytes >= 0x80
# are let through here and the decoded characters checked by _check_name.
_NAME_RE = re.compile(b"[A-Za-z_:\x80-\xff][-A-Za-z0-9._:\x80-\xff]*")
# Byte sequences that are not UTF-8 for an XML character although
# MicroPython's decoder lets them through: overlong forms, surrogates, code
# points above U+10FFFF, and U+FFFE/U+FFFF (valid UTF-8, not XML characters).
_BAD_UTF8_RE = re.compile(
    b"[\xc0\xc1\xf5-\xff]|\xe0[\x80-\x9f]|\xed[\xa0-\xbf]|\xf0[\x80-\x8f]|\xf4[\x90-\xbf]|\xef\xbf[\xbe\xbf]"
)


class XMLError(ValueError):
    """The stream is not well-formed XML, uses what XMPP forbids, or exceeds a cap.

    ``condition`` names the stream error (RFC 6120 section 4.9.3) to send
    when the message alone does not say it; None leaves the choice to the
    caller (see streamerror.xml_error_condition).
    """

    condition = None


def _rare():
    # Not "from xmpp_lite import parser_rare": on MicroPython that builds a
    # tuple per call.
    import xmpp_lite.parser_rare

    return xmpp_lite.parser_rare


def _check_name(name):
    """Check the non-ASCII characters of a decoded name (the regex did the ASCII ones)."""
    _rare().check_name(name)


# On MicroPython a viper function screens a chunk for control characters in
# machine code: about 10 times faster than the portable screen
# (parser_rare.check_controls_portable), which is what runs on CPython, where
# it is not defined (adafruit-blinka's stand-in for @micropython.viper
# raises, and _compat's has none). _screen(data, size) -> 0: no byte below
# 0x20; 1: only TAB, LF and CR; 2: another one.
if sys.implementation.name == "micropython":

    @micropython.viper
    def _screen(data, size: int) -> int:
        p = ptr8(data)  # noqa: F821 - a viper built-in
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

else:
    _screen = None


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
            raise _rare().error(_E_UTF8)
    return text


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
            raise _rare().error(_E_REFERENCE)
        parts.append(data[start:amp])
        ref = data[amp + 1:semi]
        # The five predefined entities here, each found by its place in one
        # string (a reference holds no ";"); character references (and
        # errors) in parser_rare.
        at = b";lt;gt;amp;apos;quot;".find(b";" + ref + b";")
        parts.append(b"<  >  &   '    \""[at:at + 1] if at >= 0 else _rare().reference(ref))
        start = semi + 1
        amp = data.find(b"&", start)
    parts.append(data[start:])
    return b"".join(parts)


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
        # Names known to be valid and start-tag shapes (kept across reset()), see _learn. Each table
        # is made at its full size now, while the heap is in few pieces: grown while logging in, the
        # larger tables (up to 1 KB in one piece) may find none. MicroPython fills a table before it
        # grows it, and reuses the slots of deleted keys.
        names = dict.fromkeys(range(_NAME_CACHE_SIZE))  # type: dict  # str keys, once these go
        shapes = dict.fromkeys(range(_SHAPE_CACHE_SIZE))  # type: dict  # bytes keys, once these go
        for key in range(_NAME_CACHE_SIZE):
            del names[key]
            if key < _SHAPE_CACHE_SIZE:
                del shapes[key]
        self._names = names
        self._shapes = shapes
        self._prefix_shape = b"\x00"  # the shape _hold matched last (none yet: no key starts so)
        self._streams = 0  # counts reset() calls, so _feed notices one made by a handler
        self.reset()

    def reset(self):
        """Forget everything: the next byte is the first of a new stream."""
        self._buf = b""
        self._plain = True  # self._buf has no byte below 0x20, see _feed
        self._offset = 0  # stream offset of self._buf[0]
        self._stack = []  # names (str) of the open elements
        self._raw_stack = []  # the same names as bytes, to match end tags without decoding
        self._stanza_at = -1  # stream offset where the open depth-1 element began
        self._root_done = False
        self._bom = False  # the stream began with a byte order mark
        self._error = None  # (message, condition) of the error that ended the stream
        self._in_cdata = False  # the buffer starts inside a CDATA section
        self._open_tag = None  # how far parser_rare.check_open_tag got in the unfinished tag
        self._parts = None  # pieces of an unfinished tag after self._buf, see parser_rare.keep_piece
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
            _rare().fail(self, None)  # an error is final until reset()
        if not data:
            return
        try:
            if self._parts is not None:
                # An unfinished tag held in pieces (see parser_rare.piece).
                data = _rare().piece(self, data)
                if data is None:
                    return
            elif not isinstance(data, bytes):
                pending = self._buf
                if pending:
                    self._buf = b""
                    data = pending + data  # one copy, which _feed then takes as its buffer
                else:
                    data = bytes(data)
            self._feed(data)
        except (XMLError, UnicodeError) as exc:
            _rare().fail(self, exc)

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
        if _screen is None:
            plain = _rare().check_controls(data)
        else:
            plain = _screen(data, len(data))
            if plain == 2:
                raise _rare().error(_E_CONTROL)
            plain = plain == 0  # True: no TAB, LF or CR to look for in its tokens
        if pending:
            buf = pending + data
            plain = plain and self._plain
        else:
            buf = data
        if self._offset == 0 and buf[:3] == b"\xef\xbb\xbf"[:len(buf)]:
            if len(buf) < 3:
                self._buf = buf
                return
            buf = buf[3:]  # a UTF-8 byte order mark is allowed and skipped
            self._offset = 3
            self._bom = True
        pos = 0
        end = len(buf)
        if self._in_cdata:
            pos = _rare().cdata_resume(self, buf, end, plain)
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
        # A token that ends past this index of buf needs a check of the caps: in a
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
                        raise _rare().error(_E_CDATA_END)
                    if not plain and b"\r" in raw:
                        # XML 1.0 section 2.11: CRLF and lone CR become LF.
                        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
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
                    if after >= end:
                        if top.startswith(buf[pos + 2:end]):
                            break  # "</na" cut short: nothing wrong yet, and parsed whole next time
                    elif buf[after] == _GT and buf.startswith(top, pos + 2):
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
                                raise _rare().error(_E_STANZA, cap)
                            self._stanza_at = -1
                            self.stanzas += 1
                            limit = nxt + cap
                            raw_stack.pop()
                            on_end(stack.pop())
                        else:
                            self._close(nxt)
                            limit = -1
                if nxt < 0:
                    nxt = _rare().end_tag(self, buf, pos, end)
                    limit = -1
            elif buf[pos + 1] == _BANG:
                nxt = _rare().cdata(self, buf, pos, end)
                if self._in_cdata:  # it goes on in the next chunk
                    pos = nxt
                    break
            elif buf[pos + 1] == _QUEST:
                # The usual XML declaration here, any other in parser_rare.
                nxt = pos + 21
                if self._offset + pos != (3 if self._bom else 0) or buf[pos:nxt] != b"<?xml version='1.0'?>":
                    nxt = _rare().xml_decl(self, buf, pos, end)
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
                # A stream uses few shapes; _learn checks each once.
                # Anything else, including a ">" inside a value, and every
                # error, takes the careful path. Work stays on bytes: on
                # MicroPython, splitting a str costs several times more.
                shape = None
                if not (b"&" in raw or b"<" in raw or not plain and (b"\n" in raw or b"\t" in raw or b"\r" in raw)):
                    # A '"' may stand in a value quoted with "'"; anywhere
                    # else it makes the shape unknown to _learn.
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
                            shape = self._learn(key, parts[0::2] if parts else (key,), True)
                if shape is None:
                    nxt = _rare().start_tag(self, buf, pos, end)
                    limit = -1
                else:
                    name, raw_name, names = shape
                    attrs = {}
                    i = 1
                    for attr in names:
                        value = parts[i]
                        if length(value) > max_value:
                            raise _rare().error(_E_VALUE, max_value)
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
                            raise _rare().error(_E_DEPTH, max_depth)
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
                                raise _rare().error(_E_STANZA, cap)
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
                # Check the caps after the token buf[token_at:pos], and find
                # the next limit: the index of buf past which the open
                # stanza exceeds its cap, or outside stanzas the cap from pos.
                if self._stanza_at >= 0:
                    limit = self._stanza_at - self._offset + cap
                    if pos > limit:
                        raise _rare().error(_E_STANZA, cap)
                else:
                    if pos - token_at > cap and buf[token_at] == _LT and buf[token_at + 1] != _BANG:
                        # Markup outside stanzas (the stream header, a
                        # declaration) obeys the same cap whether it came
                        # whole or in pieces; text there (CDATA sections
                        # too) is passed on as it comes and is not a token.
                        raise _rare().error(_E_TOKEN, cap)
                    limit = pos + cap
        self._hold(buf, pos, end, plain)

    def _hold(self, buf, pos, end, plain):
        """Keep buf[pos:] (an unfinished token) for the next feed, within the cap."""
        if pos + 1 < end and buf[pos] == _LT and not self._in_cdata:
            # An unfinished start tag: what has come of it is checked now,
            # as expat does, not when (and if) its ">" arrives (end tags,
            # CDATA sections and declarations are checked as they come).
            # Much cheaper than parser_rare.check_open_tag, which a cut tag
            # in most chunks would otherwise cost: the tag is, but for its
            # values, the start of a tag shape seen before (see _feed),
            # with plain values within their cap, so nothing in it is wrong
            # so far. The pieces around the values are those of a valid
            # shape, quote-free, so the split at the quotes is the tag's.
            kind = buf[pos + 1]
            known = kind == _SLASH or kind == _BANG or kind == _QUEST
            # (b"<" stands for a tag so long that a value may be past its cap.)
            raw = buf[pos + 1:end] if end - pos <= self.max_attr_value else b"<"
            if not (known or b"&" in raw or b"<" in raw
                    or not plain and (b"\n" in raw or b"\t" in raw or b"\r" in raw)):
                quote = b"'" if b"'" in raw else b'"' if b'"' in raw else None
                parts = raw.split(quote) if quote is not None else [raw]
                pieces = parts[0::2]
                key = quote.join(pieces) if quote is not None else raw
                # Not known without a name: a quote first, and every shape
                # "starts" with b"". Shapes come in runs (a burst of
                # presences, of messages): the one that matched last time
                # first. The values' UTF-8 is checked when the tag is complete.
                known = bool(key) and self._prefix_shape.startswith(key)
                if key and not known:
                    for shape in self._shapes:
                        if shape.startswith(key):
                            self._prefix_shape = shape
                            known = True
                            break
                if key and not known and end - pos <= _SHORT_TAG and max(raw) < 0x80:
                    # A new shape (at login, most tags): nothing in it is
                    # wrong so far if the shortest tag it can become has a
                    # valid shape (see _learn; a duplicate attribute is
                    # found when the tag is complete, as by the careful
                    # path): an open value closed there, a name cut short
                    # given its "=", a "/" its ">". ASCII only: a character
                    # cut in two would not decode.
                    tail = pieces[-1]
                    if len(parts) & 1 and tail.endswith(b"/"):
                        tail = pieces[-1] = tail[:-1]
                    if not len(parts) & 1 or tail.endswith(b"="):
                        pieces.append(b"")
                    elif tail and not tail.endswith(b" ") and (len(pieces) > 1 or b" " in tail):
                        pieces[-1] = tail + b"="
                        pieces.append(b"")
                    known = self._learn(key, pieces, False) is not None
            if not known:
                _rare().check_open_tag(self, buf, pos, end)
        self._buf = buf if pos == 0 else buf[pos:] if pos < end else b""
        self._plain = plain
        self._offset += pos
        held = end - pos
        self._held = held
        self._parts = None
        if held:
            start = self._stanza_at if self._stanza_at >= 0 else self._offset
            if self._offset + held - start > self.max_stanza_bytes:
                raise _rare().error(_E_HELD, self.max_stanza_bytes)
            state = self._open_tag
            if held > 1 and buf[pos] == _LT and (
                    buf[pos + 1] == _QUEST or state is not None and state[0] == self._offset):
                self._parts = []  # see feed and parser_rare.keep_piece

    def _text_run(self, buf, pos, end):
        """Handle text from pos up to the next "<"; return where it stopped."""
        stop = buf.find(b"<", pos)
        depth = len(self._stack)
        if depth < self._text_depth:
            # Whitespace only, checked as it arrives: around the root (depth
            # 0) or between stanzas (depth 1), where it is passed on and counted.
            if stop < 0:
                stop = end
            raw = buf[pos:stop]
            if raw.strip(b" \t\r\n"):
                raise _rare().error(_E_BETWEEN if depth else _E_OUTSIDE)
            if depth:
                if buf[stop - 1] == _CR and stop == end:
                    stop -= 1  # a CRLF may be cut in two: one line end either way
                    raw = raw[:-1]
                if raw:
                    self.whitespace += len(raw)
                    self._text(str(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), "utf-8"))
            return stop
        if stop < 0:
            # The run goes on in a later chunk: keep back what may be cut in
            # two (a reference, CRLF, "]]>", a UTF-8 sequence).
            stop = end
            amp = buf.rfind(b"&", pos)
            if amp >= 0 and buf.find(b";", amp) < 0:
                if end - amp > MAX_REFERENCE:
                    raise _rare().error(_E_REFERENCE)
                if b";" + buf[amp + 1:end] not in b";lt;gt;amp;apos;quot":
                    _rare().reference_start(buf[amp + 1:end])  # not a predefined entity's start
                stop = amp
            else:
                for _ in range(2):
                    if stop > pos and (buf[stop - 1] == _RBRACKET or buf[stop - 1] == _CR):
                        stop -= 1
                # A UTF-8 sequence cut short: held back whole.
                k = 1
                while k <= 3 and stop - k >= pos and 0x80 <= buf[stop - k] < 0xC0:
                    k += 1  # continuation bytes
                lead = buf[stop - k] if stop - k >= pos else 0
                if 0xC2 <= lead <= 0xF4 and (2 if lead < 0xE0 else 3 if lead < 0xF0 else 4) > k:
                    stop -= k
            if stop == pos:
                return pos
        raw = buf[pos:stop]
        if raw.find(b"]]>") >= 0:
            raise _rare().error(_E_CDATA_END)
        if b"\r" in raw:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._text(_utf8(_expand(raw)))
        return stop

    def _learn(self, key, shape, remember):
        """The shape of a start tag from the pieces around its values (see
        _feed): (element name, its bytes, attribute names), or None for the
        careful path.

        Accepted: `name`, `name ` or `name attr=` first; ` attr=` between
        values; "" or " " last. If remember, its names and the shape are
        remembered, the shape under `key`, up to _SHAPE_CACHE_SIZE.
        """
        pieces = []
        for piece in shape:
            pieces.append(_utf8(piece))
        head = pieces[0]
        count = len(pieces) - 1  # attributes
        if not count:
            names = [head[:-1] if head.endswith(" ") else head]
        else:
            space = head.find(" ")
            if count > self.max_attrs or pieces[-1] not in ("", " ") or space < 0 or not head.endswith("="):
                return None
            names = [head[:space], head[space + 1:-1]]
            for piece in pieces[1:-1]:
                if not (piece.startswith(" ") and piece.endswith("=")):
                    return None
                names.append(piece[1:-1])
        # Streams use few distinct names, so valid ones are remembered (up
        # to _NAME_CACHE_SIZE of them): most checks are one dict lookup, and
        # the shapes of a stream share one str per name.
        known = self._names
        for i in range(len(names)):
            name = names[i]
            if remember and i and name in names[i + 1:]:
                return None  # a duplicate attribute: the careful path says so
            got = known.get(name)
            if got is None:
                raw = name.encode("utf-8")
                match = _NAME_RE.match(raw)
                if len(raw) > self.max_name or match is None or len(match.group(0)) != len(raw):
                    return None  # a bad name: the careful path says which
                if len(raw) != len(name):
                    _check_name(name)
                if remember and len(known) < _NAME_CACHE_SIZE:
                    known[name] = name
                got = name
            names[i] = got
        name = names[0]
        # A tag without attributes is its name (and a space perhaps): the
        # key serves as the name's bytes, one object less kept per shape.
        shape = name, key if not count and not key.endswith(b" ") else name.encode("utf-8"), tuple(names[1:])
        # The stream root comes once a stream: not worth its memory.
        if remember and self._stack and len(self._shapes) < _SHAPE_CACHE_SIZE:
            self._shapes[key] = shape
        return shape

    def _open(self, name, raw_name, attrs, pos):
        stack = self._stack
        if not stack and self._root_done:
            raise _rare().error(_E_AFTER_ROOT)
        if len(stack) >= self.max_depth:
            raise _rare().error(_E_DEPTH, self.max_depth)
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
                raise _rare().error(_E_STANZA, self.max_stanza_bytes)
            self._stanza_at = -1
            self.stanzas += 1
        elif not stack:
            self._root_done = True
        self._end(name)
