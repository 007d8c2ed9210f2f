"""The parser's careful path: what a session rarely needs, loaded on demand.

xmpp_lite.parser keeps on a board's heap only the loop that handles the
tokens a session sees all the time (tags of a shape seen before, text, end
tags, whitespace between stanzas). Everything else is here, imported the
first time it is needed: every error (its message is built here), a tag the
fast path does not take (references or line ends in it, both quote styles,
a new shape cut by a chunk's end when it is long or not ASCII), a tag that
comes in many pieces, CDATA
sections, character references, XML declarations other than the usual one,
non-ASCII names, and the control-character screen for a runtime without the
native emitter (CPython). The functions take the Parser as their first
argument ``p``: this module is part of the parser, and shares its state.

``xmpp_lite.unload("xmpp_lite.parser_rare")`` frees it again; the next rare
token loads it afresh. It holds no state of its own.
"""

import re

from xmpp_lite.parser import MAX_REFERENCE, XMLError, _expand, _NAME_RE, _screen, _utf8, const

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
_PIECE = const(512)  # pieces of an unfinished tag are put together up to this size, see keep_piece
_SCREEN = const(256)  # bytes screened at once, see check_controls_portable
_SHORT_CHUNK = const(64)  # up to this many bytes min() screens faster
_ONES = const(((1 << (8 * _SCREEN)) - 1) // 0xFF)  # 0x0101...01, _SCREEN bytes
# Where check_open_tag stopped in an unfinished start tag: after the element
# name or a value (a gap), after an attribute name, after its "=", inside its
# value. end_tag keeps its own place in an unfinished end tag as _TAG_END.
_TAG_GAP = const(0)
_TAG_ATTR = const(1)
_TAG_EQ = const(2)
_TAG_VALUE = const(3)
_TAG_END = const(4)

# The messages of the errors numbered 0 to 13, separated by "|": those
# that xmpp_lite.parser raises by number (its _E_* constants) and a few of
# this module's. "{}" takes the cap. xmpp_lite.streamerror maps their key
# phrases ("larger than", "not allowed in XMPP", ...) to stream errors.
MESSAGES = (
    "stanza larger than {} bytes|token or stanza larger than {} bytes|token larger than {} bytes"
    "|attribute value longer than {} bytes|elements nested deeper than {}|more than {} attributes"
    "|']]>' in text|unterminated or overlong reference|text between stanzas|text outside the root element"
    "|invalid UTF-8 or a character XML does not allow|content after the root element"
    "|character not allowed in XML|CDATA section between stanzas"
)
# The condition of character data between stanzas.
# RFC 6120 section 4.9.3.1: bad-format is "XML that cannot be processed".
# Character data directly inside <stream:stream> is well-formed XML, so
# not-well-formed (section 4.9.3.13: a violation of XML's well-formedness
# rules) would be wrong; it breaks only XMPP's rule that the stream's
# children are stanzas, with whitespace between them as keepalives.
CONDITION_TEXT_BETWEEN_STANZAS = "bad-format"
_TEXT_BETWEEN = const(8)
_CDATA_BETWEEN = const(13)

_CDATA_OPEN = b"<![CDATA["
_WS = b" \t\r\n"  # the S production


def error(code, cap=0):
    """The XMLError numbered `code` (see MESSAGES)."""
    exc = XMLError(MESSAGES.split("|")[code].format(cap))
    if code == _TEXT_BETWEEN or code == _CDATA_BETWEEN:
        exc.condition = CONDITION_TEXT_BETWEEN_STANZAS
    return exc


def fail(p, exc):
    """Make `exc` (an XMLError or UnicodeError from a feed; None: the
    error already kept) the parser's final error, and raise it."""
    if exc is not None:
        if isinstance(exc, XMLError):
            reason = exc.args[0] if exc.args else "error"
            condition = exc.condition
        else:
            # Tokens are decoded with str(raw, "utf-8") right where they are
            # cut out; a decoding failure anywhere means the same thing.
            reason = "invalid UTF-8"
            condition = None
        p._error = ("{} (near byte {})".format(reason, p._offset), condition)
    message, condition = p._error
    exc = XMLError(message)
    exc.condition = condition
    raise exc


def check_name(name):
    """Check the non-ASCII characters of a decoded name (the regex did the ASCII ones)."""
    # The non-ASCII ranges of the Name production (XML 1.0 fifth edition,
    # section 2.3) as pairs of characters, first and last: those a name may
    # start with, then after "|" those it may hold besides.
    ranges = ("\xc0\xd6\xd8\xf6\xf8\u02ff\u0370\u037d\u037f\u1fff\u200c\u200d\u2070\u218f"
              "\u2c00\u2fef\u3001\ud7ff\uf900\ufdcf\ufdf0\ufffd\U00010000\U000effff"
              "|\xb7\xb7\u0300\u036f\u203f\u2040")
    more = ranges.find("|")
    first = True
    for ch in name:
        if ord(ch) >= 0x80:
            i = 0
            stop = more if first else len(ranges)
            while i < stop and not ranges[i] <= ch <= ranges[i + 1]:
                i += 3 if i + 2 == more else 2  # over the "|"
            if i >= stop:
                raise XMLError("invalid character in name " + repr(name))
        first = False


def check_controls(data):
    """The parser's control-character screen: raise on a control character,
    return True if data has no byte below 0x20 at all."""
    if _screen is None:
        return check_controls_portable(data)
    found = _screen(data, len(data))
    if found == 2:
        raise error(12)
    return found == 0


def check_controls_portable(data):
    """The parser's control-character screen without native code: raise on
    a control character, return True if data has no byte below 0x20 at all.

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
    # Control characters XML 1.0 does not allow (NUL is looked for with
    # find: the MicroPython regex engine cannot hold a NUL byte in a pattern).
    if data.find(b"\x00") >= 0 or re.search(b"[\x01-\x08\x0b\x0c\x0e-\x1f]", data) is not None:
        raise error(12)
    return False


def reference(ref):
    """Expand the body of one reference (between "&" and ";") to UTF-8 bytes."""
    if ref[:2] == b"#x":
        digits, base = ref[2:], 16
    elif ref[:1] == b"#":
        digits, base = ref[1:], 10
    else:
        value = {b"lt": b"<", b"gt": b">", b"amp": b"&", b"apos": b"'", b"quot": b'"'}.get(ref)
        if value is not None:
            return value
        # Any other entity would need a DTD, which XMPP forbids.
        raise XMLError("undefined entity &" + str(ref, "utf-8") + ";")
    if not digits:
        raise XMLError("empty character reference")
    for digit in digits:  # int() alone would accept "_", "+" and spaces
        if not (0x30 <= digit <= 0x39 or (base == 16 and 0x61 <= (digit | 0x20) <= 0x66)):
            raise XMLError("bad character reference")
    code = int(digits, base)
    if not (code == 0x9 or code == 0xA or code == 0xD
            or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF):
        raise XMLError("character reference to a character XML does not allow")
    return chr(code).encode("utf-8")


def reference_start(part):
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


def _normalise_newlines(data):
    # XML 1.0 section 2.11: CRLF and lone CR become LF before anything else.
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _skip_ws(buf, pos, end):
    while pos < end and (buf[pos] == 0x20 or buf[pos] == 0x0A or buf[pos] == 0x09 or buf[pos] == 0x0D):
        pos += 1
    return pos


# -- unfinished tags held in pieces -----------------------------------------


def piece(p, data):
    """The next bytes after an unfinished tag held in pieces (p._parts): a
    piece without ">" cannot end the tag, so it is checked alone and kept
    as it is (None); else the whole tag, joined once, to parse."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if data.find(b">") < 0:
        keep_piece(p, data)
        return None
    parts = p._parts
    parts.append(data)
    parts.insert(0, p._buf)
    data = b"".join(parts)  # the one copy of the whole tag
    p._parts = None  # the pieces may go while it is parsed
    p._buf = b""
    return data


def keep_piece(p, data):
    """Check and keep a piece of the unfinished tag held, which it cannot end."""
    plain = check_controls(data)
    held = p._held + len(data)
    start = p._stanza_at if p._stanza_at >= 0 else p._offset
    if p._offset + held - start > p.max_stanza_bytes:
        raise error(1, p.max_stanza_bytes)
    state = p._open_tag
    if state is not None and state[0] == p._offset:
        # Only the bytes the last check did not pass (a name or a
        # reference cut short) are looked at again, with the new ones.
        resume = state[1]
        tail = _held_tail(p, p._offset + p._held - resume) + data
        if state[2] == _TAG_END:
            if tail.strip(_WS):
                raise XMLError("junk in an end tag")
            p._open_tag = state[:1] + (resume + len(tail),) + state[2:]
        else:
            check_open_tag(p, tail, 0, len(tail), resume, state[0])
    # Small pieces are put together: a tag that comes a byte at a time
    # must not cost an object per byte.
    parts = p._parts
    if parts and len(parts[-1]) + len(data) <= _PIECE:
        parts[-1] += data
    elif not parts and len(p._buf) + len(data) <= _PIECE:
        p._buf += data
    else:
        parts.append(data)
    p._held = held
    p._plain = p._plain and plain


def _held_tail(p, count):
    """The last count bytes held."""
    pieces = []
    parts = p._parts
    i = len(parts)
    while count > 0:
        i -= 1
        got = parts[i] if i >= 0 else p._buf
        take = got if len(got) <= count else got[len(got) - count:]
        pieces.append(take)
        count -= len(take)
    pieces.reverse()
    return b"".join(pieces)


# -- markup ---------------------------------------------------------------------


def _name(p, buf, pos, end):
    """Match a name at pos; return (name_bytes, end_pos), or None if cut off."""
    window = buf[pos:pos + p.max_name + 1]
    match = _NAME_RE.match(window)
    if match is None:
        if pos >= end:
            return None
        raise XMLError("invalid name")
    name = match.group(0)
    if len(name) > p.max_name:
        raise XMLError("name longer than {} bytes".format(p.max_name))
    after = pos + len(name)
    if after >= end:
        return None  # the name may go on in the next chunk
    return name, after


def _name_part(buf, pos, end):
    """Check the start of a name cut short at end (its complete characters)."""
    stop = end - _utf8_tail(buf, pos, end)
    if stop > pos:
        _decode_name(buf[pos:stop])


def _decode_name(raw):
    name = _utf8(raw)
    if len(name) != len(raw):
        check_name(name)
    return name


def start_tag(p, buf, pos, end):
    """Parse the start tag at buf[pos] that the fast path did not take;
    return where the rest of buf starts, or -1 if the tag is cut short."""
    got = _name(p, buf, pos + 1, end)
    if got is None:
        return -1
    raw_name, i = got
    attrs = {}
    seen = []  # raw attribute names, to reject duplicates
    while True:
        j = _skip_ws(buf, i, end)
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
        got = _name(p, buf, j, end)
        if got is None:
            return -1
        raw_attr, k = got
        k = _skip_ws(buf, k, end)
        if k >= end:
            return -1
        if buf[k] != _EQ:
            raise XMLError("attribute without '='")
        k = _skip_ws(buf, k + 1, end)
        if k >= end:
            return -1
        quote = buf[k]
        if quote != _QUOT and quote != _APOS:
            raise XMLError("attribute value not quoted")
        close = buf.find(b'"' if quote == _QUOT else b"'", k + 1)
        if close < 0:
            return -1
        if close - k - 1 > p.max_attr_value:
            raise error(3, p.max_attr_value)
        if raw_attr in seen:
            raise XMLError("duplicate attribute")
        if len(seen) >= p.max_attrs:
            raise error(5, p.max_attrs)
        seen.append(raw_attr)
        attrs[_decode_name(raw_attr)] = _attr_value(buf[k + 1:close])
        i = close + 1
    name = _decode_name(raw_name)
    p._open(name, raw_name, attrs, pos)
    if empty and p._stack and p._stack[-1] is name:
        p._close(i)
    return i


def check_open_tag(p, buf, pos, end, base=-1, at=-1):
    """Raise now what is already wrong with the unfinished tag buf[pos:end].

    A bad name, junk, a "<" in a value, and the caps on names, values
    and attributes show before the tag's ">" arrives, as in expat. How
    far the check got is kept in p._open_tag, so that a tag coming in
    many pieces is checked once, not again with every piece: only an
    unfinished name (within the name cap) is looked at twice. base and
    at, when given, are the stream offsets of buf[0] and of the tag, for
    a check that goes on in a piece of the tag (see keep_piece).
    """
    if base < 0:
        base = p._offset  # the stream offset of buf[0]
        at = base + pos  # the tag's place in the stream
    state = p._open_tag
    if state is not None and state[0] == at:
        _, i, phase, spaced, count, quote, value_at = state
        i -= base
        value_at -= base
    else:
        got = _name(p, buf, pos + 1, end)
        if got is None:
            _name_part(buf, pos + 1, end)
            return
        _decode_name(got[0])
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
            if stop - value_at > p.max_attr_value:
                raise error(3, p.max_attr_value)
            if close < 0:
                i = _check_value_part(buf, i, end)
                break
            _check_value_part(buf, i, close + 1)
            i = close + 1
            phase = _TAG_GAP
            spaced = False
            continue
        j = _skip_ws(buf, i, end)
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
            if count >= p.max_attrs:  # one more is starting
                raise error(5, p.max_attrs)
            got = _name(p, buf, i, end)
            if got is None:
                _name_part(buf, i, end)
                break  # an attribute name cut short: looked at again next time
            _decode_name(got[0])
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
    p._open_tag = (at, base + i, phase, spaced, count, quote, base + value_at)


def _check_value_part(buf, pos, stop):
    """Check the references and UTF-8 of buf[pos:stop], part of an
    attribute value (its closing quote included when it has come);
    return where the check stopped: before a reference or a character
    cut short, which the next check looks at again."""
    amp = buf.find(b"&", pos, stop)
    while amp >= 0:
        semi = buf.find(b";", amp, stop)
        if semi < 0 or semi - amp + 1 > MAX_REFERENCE:
            if semi >= 0 or stop - amp >= MAX_REFERENCE:
                raise error(7)
            reference_start(buf[amp + 1:stop])
            stop = amp
            break
        reference(buf[amp + 1:semi])
        amp = buf.find(b"&", semi, stop)
    stop -= _utf8_tail(buf, pos, stop)
    if stop > pos:
        _utf8(buf[pos:stop])
    return stop


def _attr_value(raw):
    if raw.find(b"<") >= 0:
        raise XMLError("'<' in an attribute value")
    # Attribute-value normalisation (XML 1.0 section 3.3.3): after line
    # ends are normalised, each literal TAB, LF and CR becomes a space;
    # characters written as references are kept.
    raw = _normalise_newlines(raw)
    if raw.find(b"\n") >= 0 or raw.find(b"\t") >= 0:
        raw = raw.replace(b"\n", b" ").replace(b"\t", b" ")
    return _utf8(_expand(raw))


def end_tag(p, buf, pos, end):
    """Parse the end tag at buf[pos] that the fast path did not take;
    return where the rest of buf starts, or -1 if the tag is cut short."""
    # The name and what follows it are checked as they arrive; white
    # space after the name is looked at once, however it is cut.
    at = p._offset + pos
    state = p._open_tag
    if state is not None and state[0] == at:
        i = state[1] - p._offset
        raw_name = buf[pos + 2:state[6] - p._offset]
    else:
        got = _name(p, buf, pos + 2, end)
        if got is None:
            _name_part(buf, pos + 2, end)
            return -1
        raw_name, i = got
    gt = _skip_ws(buf, i, end)
    if gt >= end:
        p._open_tag = (at, p._offset + gt, _TAG_END, False, 0, 0, at + 2 + len(raw_name))
        return -1
    if buf[gt] != _GT:
        raise XMLError("junk in an end tag")
    if not p._stack:
        raise XMLError("end tag outside the root element")
    if p._stack[-1] != str(raw_name, "utf-8"):
        raise XMLError("end tag does not match the open element " + p._stack[-1])
    p._close(gt + 1)
    return gt + 1


def cdata(p, buf, pos, end):
    """Parse the "<!" markup at buf[pos]: only a CDATA section may be there."""
    have = buf[pos:pos + len(_CDATA_OPEN)]
    if have != _CDATA_OPEN[:len(have)]:
        if have[:4] == b"<!--":
            raise XMLError("comments are not allowed in XMPP")
        raise XMLError("DTDs and declarations are not allowed in XMPP")
    if not p._stack:
        raise XMLError("CDATA section outside the root element")
    if len(p._stack) < p._text_depth:
        raise error(_CDATA_BETWEEN)
    if len(have) < len(_CDATA_OPEN):
        return -1
    return _cdata_body(p, buf, pos + len(_CDATA_OPEN), end)


def cdata_resume(p, buf, end, plain):
    """Go on with the CDATA section the last chunk ended in; return
    where the rest of buf starts, or -1 if the section goes on still."""
    pos = _cdata_body(p, buf, 0, end)
    if p._stanza_at >= 0 and p._offset + pos - p._stanza_at > p.max_stanza_bytes:
        raise error(0, p.max_stanza_bytes)
    if p._in_cdata:
        p._hold(buf, pos, end, plain)
        return -1
    return pos


def _cdata_body(p, buf, pos, end):
    """Pass on a CDATA section's text from pos; return where it stopped.

    Its text is passed on as it arrives, as a text run's is, so that a
    long section is never held: p._in_cdata says it goes on.
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
        p._text(_utf8(_normalise_newlines(buf[pos:stop])))
    if close < 0:
        p._in_cdata = True
        # What was passed on counts towards the stanza (the rest is
        # held, which _hold counts).
        if p._stanza_at >= 0 and p._offset + stop - p._stanza_at > p.max_stanza_bytes:
            raise error(0, p.max_stanza_bytes)
        return stop
    p._in_cdata = False
    return close + 3


def xml_decl(p, buf, pos, end):
    """Parse the "<?" markup at buf[pos]: only the XML declaration, first in the stream."""
    # Processing instructions are forbidden; the one allowed form is the
    # XML declaration, as the very first bytes of the stream.
    at_start = p._offset + pos == (3 if p._bom else 0)
    head = buf[pos:pos + 6]
    if not at_start or head[:5] != b"<?xml"[:len(head)] or (len(head) == 6 and _skip_ws(head, 5, 6) == 5):
        raise XMLError("processing instructions are not allowed in XMPP")
    # No ">" can stand inside a valid declaration: the first one ends it.
    close = buf.find(b">", pos + 2) - 1
    if close < 0:
        return -1
    if buf[close] != _QUEST:
        raise XMLError("malformed XML declaration")
    decl = buf[pos:close + 2]
    match = re.match(
        b"<\\?xml\\s+version\\s*=\\s*(\"1\\.[0-9]+\"|'1\\.[0-9]+')"
        b"(\\s+encoding\\s*=\\s*(\"[A-Za-z][-A-Za-z0-9._]*\"|'[A-Za-z][-A-Za-z0-9._]*'))?"
        b"(\\s+standalone\\s*=\\s*(\"yes\"|\"no\"|'yes'|'no'))?\\s*\\?>", decl)
    if match is None or match.group(0) != decl:
        raise XMLError("malformed XML declaration")
    encoding = match.group(3)
    if encoding is not None and encoding[1:-1].lower() != b"utf-8":
        raise XMLError("XMPP streams are UTF-8 only")
    return close + 2
