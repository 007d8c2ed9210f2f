"""Stanzas: a small Element tree, its serialisation, and the stream Builder.

Only depth-1 elements (stanzas, ``<stream:features/>``, SASL elements ...) are
ever built; the stream root is reported to the caller and never kept, and a
stanza is dropped as soon as it has been dispatched.

Namespaces. ``Element.xmlns`` is the element's namespace URI: ``None`` means
"not known here, inherited from where the element is written". The Builder
resolves every element it builds, including prefixed names such as
``stream:features`` and namespaces inherited from the stream root
(``jabber:client``). The stanza builders below (``message()`` ...) leave the
stanza's own namespace at ``None`` so that it is written without an ``xmlns``
and takes the stream's; their payloads carry their own namespaces.

Equality (``==``) compares what the XML means, not how it was spelt: qualified
names, resolved namespaces, attributes other than namespace declarations,
text, children, and the children's tails. The receivers' own tails are not
compared, since a tail is not part of its element's serialisation. So
``parse(serialise(e)) == e`` for every element ``e`` that serialises.
"""

import re

from xmpp_lite._compat import const
from xmpp_lite.parser import XMLError
from xmpp_lite.parser import _check_name as _check_name_chars  # the Name production beyond ASCII

# Namespaces other modules use; each literal is a string on the heap, so
# they are spelt once, here, and imported.
NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# Elements (the stanza included) the Builder keeps for one stanza. The parser
# caps a stanza's bytes, but "<a/>" is 4 bytes and an Element costs far more
# heap than that, so the element count needs its own cap.
MAX_ELEMENTS = const(128)
# Characters of text the Builder keeps for one stanza. The stanza cap lets a
# peer send one text of nearly 16 KB, which would need a block that large in
# one piece: on a fragmented board heap, a MemoryError. A stanza with more text
# is cut short and marked (Builder.cut); the session refuses it whole (see
# xmpp_lite.session, MAX_STANZA_TEXT there). Commands, reports and the login's
# elements are far smaller.
MAX_STANZA_TEXT = const(4096)

# The one prefix bound without a declaration (Namespaces in XML, section 3).
# Shared and never changed: scopes copy it before adding a binding.
_XML_PREFIXES = {"xml": "http://www.w3.org/XML/1998/namespace"}

# ASCII characters no XML name may contain, a first character it cannot start with, a colon at the end
# (in the regex: on MicroPython name[0] and name[-1] would intern each first and last letter for good);
# non-ASCII ones are checked by the parser's name check. Control characters are caught in the final bytes.
_BAD_NAME_RE = re.compile("[\t\n\r -,/;-@[-^`{-\x7f]|^[-.0-9:]|:$")
_NON_ASCII_RE = re.compile("[^\x01-\x7f]")
# UTF-8 of characters XML 1.0 cannot carry: C0 controls other than TAB, LF and
# CR, U+FFFE, U+FFFF, and surrogates (MicroPython encodes a lone one as
# ED A0..BF xx). NUL is looked for with find: MicroPython's regex engine cannot
# hold a NUL byte in a pattern.
_ILLEGAL_RE = re.compile(b"[\x01-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]|\xed[\xa0-\xbf]")

_PREFIX_DECL_LEN = const(6)  # len("xmlns:")
_TEXT_PIECE = const(512)  # pieces of text are put together up to this length, see Builder.text


def escape_text(s):
    """Escape character data: ``& < >``, and CR, which parsers turn into LF."""
    if s.find("&") >= 0:
        s = s.replace("&", "&amp;")
    if s.find("<") >= 0:
        s = s.replace("<", "&lt;")
    if s.find(">") >= 0:
        s = s.replace(">", "&gt;")  # also makes "]]>" impossible
    if s.find("\r") >= 0:
        s = s.replace("\r", "&#13;")
    return s


def escape_attr(s):
    """Escape an attribute value for either quote.

    TAB, LF and CR become character references: written literally, attribute
    value normalisation would turn them into spaces.
    """
    s = escape_text(s)
    if s.find('"') >= 0:
        s = s.replace('"', "&quot;")
    if s.find("'") >= 0:
        s = s.replace("'", "&apos;")
    if s.find("\t") >= 0:
        s = s.replace("\t", "&#9;")
    if s.find("\n") >= 0:
        s = s.replace("\n", "&#10;")
    return s


def _scope(name, attrs, xmlns, default, prefixes):
    """Resolve an element in the scope (default namespace, prefix map) it is in.

    Returns (namespace, declaration, child_default, child_prefixes):
    namespace is the element's resolved URI (None if nothing binds it);
    declaration is the attribute ("xmlns" or "xmlns:p") that serialising must
    add so that the element's own ``xmlns`` holds, or None; the last two are
    the scope of the element's children.
    """
    colon = name.find(":")
    declaration = None
    if colon < 0:
        if xmlns is None:
            xmlns = attrs.get("xmlns")
        if xmlns is None:
            xmlns = default
        elif xmlns != default:
            declaration = "xmlns"
        child_default = xmlns
    else:
        child_default = attrs.get("xmlns", default)
    copied = False
    for key in attrs:
        if key.startswith("xmlns:"):
            if not copied:
                prefixes = dict(prefixes)
                copied = True
            prefixes[key[_PREFIX_DECL_LEN:]] = attrs[key] or None  # "" unbinds
    if colon >= 0:
        prefix = name[:colon]
        bound = prefixes.get(prefix)
        if xmlns is None:
            xmlns = bound
        elif xmlns != bound:
            declaration = "xmlns:" + prefix
            if not copied:
                prefixes = dict(prefixes)
            prefixes[prefix] = xmlns
    return xmlns, declaration, child_default, prefixes


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError("XML names are non-empty strings")
    if _BAD_NAME_RE.search(name) is not None or name.count(":") > 1:
        raise ValueError("not an XML name: " + repr(name))
    if _NON_ASCII_RE.search(name) is not None:
        _check_name_chars(name)  # a loop per character: only for non-ASCII names


def _inherit(elem, xmlns):
    # An unprefixed element with no namespace of its own takes its parent's
    # default namespace, and so do its descendants that have none either.
    if xmlns is not None and elem.xmlns is None and elem.name.find(":") < 0:
        elem.xmlns = xmlns
        for child in elem.children:
            _inherit(child, xmlns)


class Element:
    """One XML element: name, attrs, text, children, tail, xmlns.

    ``name`` is the qualified name as written; ``attrs`` a dict, namespace
    declarations included; ``text`` the character data before the first
    child; ``tail`` the character data after this element's end tag, inside
    its parent. If ``xmlns`` is not given, an unprefixed element takes it from
    ``attrs["xmlns"]``. Children given to the constructor inherit the default
    namespace as with ``append``.
    """

    # What most elements have: kept here rather than in each element's own
    # attributes, which then hold only name, attrs, children and what differs
    # (a smaller table per element: a stanza is built for every one received).
    text = ""
    tail = ""
    xmlns = None

    def __init__(self, name, attrs=None, text="", children=None, xmlns=None):
        self.name = name
        self.attrs = {} if attrs is None else attrs
        if text:
            self.text = text
        if xmlns is None and name.find(":") < 0:
            xmlns = self.attrs.get("xmlns")
        if xmlns is not None:
            self.xmlns = xmlns
        if children is None:
            children = []
        else:
            # Unprefixed children take the default namespace, which is the
            # element's own unless the element is prefixed (as in append).
            default = xmlns if name.find(":") < 0 else self.attrs.get("xmlns")
            for child in children:
                _inherit(child, default)
        self.children = children

    @property
    def local(self):
        """The name without its prefix."""
        colon = self.name.find(":")
        return self.name if colon < 0 else self.name[colon + 1:]

    def append(self, child):
        """Add child last and return it; see ``_inherit`` for its namespace."""
        # Unprefixed children take the default namespace, which is the
        # element's own unless the element is prefixed.
        _inherit(child, self.xmlns if self.name.find(":") < 0 else self.attrs.get("xmlns"))
        self.children.append(child)
        return child

    def get(self, attr, default=None):
        return self.attrs.get(attr, default)

    def set(self, attr, value):
        """Set an attribute (None removes it; other non-str values go through str); returns self."""
        if value is None:
            self.attrs.pop(attr, None)
        else:
            self.attrs[attr] = value if isinstance(value, str) else str(value)
        return self

    def find_all(self, name=None, xmlns=None, first=False):
        """All children called name (None: any name) in namespace xmlns (None: any).

        With ``first``, the first of them, or None.
        """
        found = []
        for child in self.children:
            if (name is None or child.name == name or child.local == name) and (
                    xmlns is None or child.xmlns == xmlns):
                if first:
                    return child
                found.append(child)
        return None if first else found

    def find(self, name, xmlns=None):
        """The first child called name (local or qualified) in namespace xmlns (None: any)."""
        return self.find_all(name, xmlns, True)

    def find_text(self, name, xmlns=None, default=None):
        """The text of ``find(name, xmlns)``, or default if there is no such child."""
        child = self.find_all(name, xmlns, True)
        return default if child is None else child.text

    def serialise(self, xmlns=None):
        """UTF-8 bytes of the element; see the module function ``serialise``."""
        return serialise(self, xmlns)

    def __eq__(self, other):
        # != is the negation of this on both runtimes, and an Element is not hashable (it is mutable).
        if not isinstance(other, Element):
            return NotImplemented  # type: ignore[name-defined]  # a builtin the stubs lack
        # Loaded at the first comparison: the library itself never compares elements, tests and tools do.
        from xmpp_lite.stanza_equal import equal

        return equal(self, other)

    def __repr__(self):
        return "<Element %s {%s} %d children>" % (self.name, self.xmlns or "", len(self.children))


def _write(elem, out, default, prefixes):
    name = elem.name
    _check_name(name)
    attrs = elem.attrs
    xmlns, declaration, child_default, child_prefixes = _scope(name, attrs, elem.xmlns, default, prefixes)
    out.append("<" + name)
    if declaration is not None:
        out.append(" %s=\"%s\"" % (declaration, escape_attr(xmlns)))
    unprefixed = name.find(":") < 0
    for key in attrs:
        # An unprefixed element's default namespace is its xmlns, written above if needed.
        if key == declaration or (unprefixed and key == "xmlns"):
            continue
        _check_name(key)
        value = attrs[key]
        if not isinstance(value, str):
            value = str(value)
        out.append(" %s=\"%s\"" % (key, escape_attr(value)))
    if not elem.text and not elem.children:
        out.append("/>")
        return
    out.append(">")
    if elem.text:
        out.append(escape_text(elem.text))
    for child in elem.children:
        _write(child, out, child_default, child_prefixes)
        if child.tail:
            out.append(escape_text(child.tail))
    out.append("</" + name + ">")


def serialise(elem, xmlns=None):
    """The element as UTF-8 bytes of well-formed, namespace-correct XML.

    ``xmlns`` is the default namespace already in force where the bytes will
    go (e.g. ``NS_CLIENT`` inside a client stream): an element in that
    namespace is then written without an ``xmlns`` attribute. Namespace
    declarations are added where an element's ``xmlns`` needs one. The
    element's own tail is not written.

    Raises ValueError for a character XML 1.0 cannot carry (control
    characters other than TAB, LF and CR, U+FFFE, U+FFFF, lone surrogates)
    or for a name that is not an XML name.
    """
    out = []
    _write(elem, out, xmlns, _XML_PREFIXES)
    try:
        data = "".join(out).encode("utf-8")
    except UnicodeError:  # CPython: a lone surrogate
        raise ValueError("character not allowed in XML (surrogate)")
    if data.find(b"\x00") >= 0 or _ILLEGAL_RE.search(data) is not None:
        raise ValueError("character not allowed in XML")
    return data


class Builder:
    """Parser handler that builds one Element per stanza (depth-1 element).

    ``on_stream_start(name, attrs)`` is called for the stream root's start tag
    (the root is not kept), ``on_stanza(element)`` for each complete depth-1
    element, which the Builder then forgets, and ``on_stream_end()`` for the
    root's end tag. Text between stanzas (whitespace keepalives) is ignored.
    A stanza of more than ``max_elements`` elements raises XMLError. Of a
    stanza's text, at most ``max_text`` characters are kept (None: all);
    past that, the rest is dropped and ``cut`` is True while ``on_stanza``
    runs, so that the receiver can refuse the stanza rather than use part of it.
    """

    def __init__(self, on_stanza, on_stream_start=None, on_stream_end=None, max_elements=MAX_ELEMENTS,
                 max_text=MAX_STANZA_TEXT):
        self.on_stanza = on_stanza
        self.on_stream_start = on_stream_start
        self.on_stream_end = on_stream_end
        self.max_elements = max_elements
        self.max_text = max_text
        self.reset()

    def reset(self):
        """Forget the stream (for a stream restart, with the parser's reset)."""
        self._root = None  # inside a stream root: the (default namespace, prefixes) in force under it
        self._stack = []  # (element, child default, child prefixes) of the current stanza
        self._count = 0  # elements in the current stanza
        self._texts = []  # text since the last tag, joined once at the next one (see text)
        self._text_chars = 0  # text of the current stanza, kept or not
        self.cut = False  # the current stanza had more than max_text characters of text

    def start(self, name, attrs):
        if self._texts:
            self._flush_text()
        if self._root is None:
            _, _, default, prefixes = _scope(name, attrs, None, None, _XML_PREFIXES)
            self._root = (default, prefixes)
            if self.on_stream_start is not None:
                self.on_stream_start(name, attrs)
            return
        stack = self._stack
        if stack:
            parent, default, prefixes = stack[-1]
            self._count += 1
            if self._count > self.max_elements:
                raise XMLError("stanza of more than {} elements".format(self.max_elements))
        else:
            parent = None
            default, prefixes = self._root
            self._count = 1
            self._text_chars = 0
            self.cut = False
        elem = Element(name, attrs)
        xmlns, _, default, prefixes = _scope(name, attrs, None, default, prefixes)
        if xmlns is not None:
            elem.xmlns = xmlns
        if parent is not None:
            parent.children.append(elem)
        stack.append((elem, default, prefixes))

    def end(self, name):
        if self._texts:
            self._flush_text()
        stack = self._stack
        if stack:
            elem = stack.pop()[0]
            if not stack:
                self.on_stanza(elem)
            return
        self.reset()
        if self.on_stream_end is not None:
            self.on_stream_end()

    def text(self, data):
        if not self._stack:
            return  # between stanzas
        self._text_chars += len(data)
        if self.max_text is not None and self._text_chars > self.max_text:
            # The stanza will be refused whole: what was kept of its text goes now, and no more is kept.
            self.cut = True
            self._texts = []
            return
        # The parser passes a long text on in pieces as they arrive: adding
        # each to the text so far would copy it all again every time. The
        # pieces are joined once, at the next tag; small ones are put
        # together at once, so that text that comes a byte at a time does
        # not cost an object per byte.
        texts = self._texts
        if texts and len(texts[-1]) < _TEXT_PIECE:
            texts[-1] += data
        else:
            texts.append(data)

    def _flush_text(self):
        texts = self._texts
        data = texts[0] if len(texts) == 1 else "".join(texts)
        self._texts = []
        elem = self._stack[-1][0]
        if elem.children:
            elem = elem.children[-1]
            elem.tail = elem.tail + data if elem.tail else data
        else:
            elem.text = elem.text + data if elem.text else data


def __getattr__(name):
    # parse() is for tests and tools (a board builds its elements from the stream): loaded on demand.
    if name == "parse":
        from xmpp_lite.stanza_equal import parse

        return parse
    raise AttributeError(name)


def _stanza(name, attrs, texts, payload):
    """A stanza: attrs and texts are pairs (attribute or child element, value), None values left out.

    Values that are not str go through str. Each text becomes a child element
    of that name with that text; payload (an Element or a list of them) follows.
    """
    elem = Element(name)
    for key, value in attrs:
        if value is not None:
            elem.attrs[key] = value if isinstance(value, str) else str(value)
    for key, value in texts:
        if value is not None:
            elem.append(Element(key, text=value if isinstance(value, str) else str(value)))
    if payload is not None:
        if isinstance(payload, Element):
            elem.append(payload)
        else:
            for child in payload:
                elem.append(child)
    return elem


def message(to=None, body=None, type=None, id=None, payload=None):
    """A ``<message/>``; payload is an Element or a list of them."""
    return _stanza("message", (("to", to), ("type", type), ("id", id)), (("body", body),), payload)


def presence(to=None, type=None, show=None, status=None, priority=None, id=None, payload=None):
    """A ``<presence/>``; show/status/priority become children (RFC 6121 4.7.2)."""
    return _stanza("presence", (("to", to), ("type", type), ("id", id)),
                   (("show", show), ("status", status), ("priority", priority)), payload)


def iq(type, id, to=None, payload=None):
    """An ``<iq/>`` of type get/set/result/error."""
    return _stanza("iq", (("type", type), ("id", id), ("to", to)), (), payload)


def error_reply(stanza, error_type, condition, text=None):
    """The error reply to stanza (RFC 6120 8.3): same kind and id, to/from swapped.

    error_type is "auth", "cancel", "continue", "modify" or "wait"; condition a
    defined condition such as "service-unavailable". Replying to an error with
    an error could loop between two entities (RFC 6120 8.3.1), so that raises
    ValueError.
    """
    if stanza.get("type") == "error":
        raise ValueError("never answer an error stanza with an error")
    error = Element("error", {"type": error_type}, children=[Element(condition, xmlns=NS_STANZAS)])
    if text is not None:
        error.append(Element("text", text=text, xmlns=NS_STANZAS))
    return _stanza(stanza.local, (
        ("to", stanza.get("from")), ("from", stanza.get("to")), ("type", "error"), ("id", stanza.get("id"))), (), error)

