"""What ``Element.__eq__`` compares: what two elements mean, not how they were spelt; and ``parse``.

Qualified names, resolved namespaces, attributes other than namespace
declarations, text, children, and the children's tails (see xmpp_lite.stanza).
Loaded on demand, at the first comparison or the first ``xmpp_lite.stanza.parse``
(which is this module's ``parse``): the library itself never compares elements, nor
parses one alone.
"""

from xmpp_lite.parser import Parser, XMLError
from xmpp_lite.stanza import _XML_PREFIXES, Builder, _scope


def parse(data):
    """Parse one standalone element (bytes or str) into an Element."""
    found = []
    builder = Builder(found.append, max_text=None)
    builder.start("", {})  # a root without a name or bindings: the element stands where a stanza would
    if isinstance(data, str):
        data = data.encode("utf-8")
    Parser(builder, stream=False).feed(data)  # one element alone: text may stand in it
    if len(found) != 1 or builder._stack:
        raise XMLError("expected one complete element")
    return found[0]


def equal(a, b):
    """True if elements a and b mean the same, each at the top of a document."""
    scope = (None, _XML_PREFIXES)
    return _equal(a, b, scope, scope)


def _equal(a, b, a_scope, b_scope):
    """a and b mean the same in their scopes ((default, prefixes) each); see the module docstring."""
    if a.name != b.name or a.text != b.text or len(a.children) != len(b.children):
        return False
    # Attributes, namespace declarations left out.
    count = 0
    for key in a.attrs:
        if key != "xmlns" and not key.startswith("xmlns:"):
            if key not in b.attrs or a.attrs[key] != b.attrs[key]:
                return False
            count += 1
    for key in b.attrs:
        if key != "xmlns" and not key.startswith("xmlns:"):
            count -= 1
    if count:
        return False
    a_ns, _, a_default, a_prefixes = _scope(a.name, a.attrs, a.xmlns, a_scope[0], a_scope[1])
    b_ns, _, b_default, b_prefixes = _scope(b.name, b.attrs, b.xmlns, b_scope[0], b_scope[1])
    if a_ns != b_ns:
        return False
    a_scope = (a_default, a_prefixes)
    b_scope = (b_default, b_prefixes)
    for x, y in zip(a.children, b.children):
        if x.tail != y.tail or not _equal(x, y, a_scope, b_scope):
            return False
    return True
