"""A scripted XMPP server for session tests: the Peer, canned server bytes, RFC 5802 numbers.

Runs on CPython and MicroPython, like the tests that use it.
"""

from support import chunkings

from xmpp_lite import sasl
from xmpp_lite.parser import Parser
from xmpp_lite.session import Session
from xmpp_lite.stanza import NS_STANZAS, Builder

MODES = 6  # whole, byte by byte, four random splits (support.chunkings)
SHORT_MODES = 2  # whole and byte by byte only

XML_DECL = b"<?xml version='1.0'?>"
STREAM_START = b"<stream:stream "
HEADER = (
    XML_DECL + b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" id='s-1' from='example.net' version='1.0' xml:lang='en'>"
)
FEATURES_TLS = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    b"</stream:features>"
)
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
FEATURES_BIND = (
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>"
    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
    b"<sm xmlns='urn:xmpp:sm:3'/></stream:features>"
)
FEATURES_BIND_SESSION_REQUIRED = (
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
)
# What gloox-era servers offered (as in old jabberd2/ejabberd setups).
FEATURES_GLOOX = (
    b"<stream:features>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>DIGEST-MD5</mechanism><mechanism>PLAIN</mechanism>"
    b"<mechanism>ANONYMOUS</mechanism><mechanism>CRAM-MD5</mechanism></mechanisms>"
    b"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>"
    b"<auth xmlns='http://jabber.org/features/iq-auth'/>"
    b"<register xmlns='http://jabber.org/features/iq-register'/>"
    b"</stream:features>"
)
STREAM_END = b"</stream:stream>"

# RFC 5802 section 5 (user "user", password "pencil").
SCRAM_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SCRAM_CLIENT_FIRST = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
SCRAM_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SCRAM_CLIENT_FINAL = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
SCRAM_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

JID = "user@example.net"
PASSWORD = "pencil"
FULL_JID = "user@example.net/sensor"


def mechanism_children(*names):
    """<mechanism/> elements, as in a SASL or a SASL2 offer."""
    return b"".join(b"<mechanism>" + name.encode() + b"</mechanism>" for name in names)


def mechanisms(*names, extra=b""):
    inner = mechanism_children(*names)
    return (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + inner
            + b"</mechanisms>" + extra + b"</stream:features>")


def sasl_element(name, data=None):
    text = b"" if data is None else sasl.b64encode(data).encode()
    return b"<" + name + b" xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + text + b"</" + name + b">"


def bind_result(stanza_id, jid=FULL_JID):
    return ("<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind></iq>"
            % (stanza_id, jid)).encode()


def stream_error(condition, text=None, content=""):
    inner = "<%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s</%s>" % (condition, content, condition)
    if text is not None:
        inner += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s</text>" % text
    return ("<stream:error>%s</stream:error></stream:stream>" % inner).encode()


# Random chunkings cut the data in segments of at most this many bytes first:
# support.chunkings builds the byte-by-byte list of what it is given, and on
# the VM's small heap a long one fragments memory.
SEGMENT = 192


def pieces(data, mode):
    """The chunks of ``data`` for one chunking mode (an index into support.chunkings)."""
    if mode == 0:
        return [data]
    out = []
    for start in range(0, len(data), SEGMENT):
        index = 0
        for chunks in chunkings(data[start:start + SEGMENT]):
            if index == mode:
                out.extend(chunks)
                break
            index += 1
    return out


class Peer:
    """The server end of a conversation with a Session.

    ``take()`` parses what the session sent since the last call into items:
    ("stream", attrs) for a stream header, ("/stream", None) for its end,
    ("el", Element) for a first-level element. ``reply(data)`` feeds the
    session the server's bytes in this peer's chunking; the session's events
    collect in ``events``.
    """

    def __init__(self, session, mode=0):
        self.session = session
        self.mode = mode
        self.sent = b""  # every byte the session sent
        self.events = []
        self._items = []
        self._parser = None

    def _new_stream(self):
        builder = Builder(
            lambda elem: self._items.append(("el", elem)),
            lambda name, attrs: self._items.append(("stream", attrs)),
            lambda: self._items.append(("/stream", None)),
        )
        self._parser = Parser(builder)

    def start(self):
        self.session.start()
        return self.take()

    def take(self):
        data = self.session.data_to_send()
        self.sent += data
        # A new stream starts at every header (and at an XML declaration just before one).
        cuts = []
        found = data.find(STREAM_START)
        while found >= 0:
            begin = found - len(XML_DECL)
            cuts.append(begin if begin >= 0 and data[begin:found] == XML_DECL else found)
            found = data.find(STREAM_START, found + 1)
        if not cuts or cuts[0] > 0:
            if data[:cuts[0] if cuts else len(data)]:
                self._parser.feed(data[:cuts[0] if cuts else len(data)])
        for index in range(len(cuts)):
            self._new_stream()
            self._parser.feed(data[cuts[index]:cuts[index + 1] if index + 1 < len(cuts) else len(data)])
        items, self._items = self._items, []
        return items

    def names(self):
        """take(), reduced to names: "stream", "/stream" or an element's local name."""
        return [item[0] if item[0] != "el" else item[1].local for item in self.take()]

    def elements(self):
        return [item[1] for item in self.take() if item[0] == "el"]

    def reply(self, data):
        if self.mode == 1:
            for i in range(len(data)):  # byte by byte, without a list of them
                self.session.receive_data(data[i:i + 1])
        else:
            for chunk in pieces(data, self.mode):
                self.session.receive_data(chunk)
        new = []
        while True:
            event = self.session.next_event()
            if event is None:
                break
            new.append(event)
        self.events += new
        return new


def online_session(mode=0, **options):
    """A session taken through a plaintext PLAIN login to online; returns (session, peer)."""
    session = Session(JID, PASSWORD, resource="sensor", tls="none", insecure_plain=True, **options)
    peer = Peer(session, mode)
    peer.start()
    peer.reply(HEADER + mechanisms("PLAIN"))
    peer.take()
    peer.reply(sasl_element(b"success"))
    bind = peer.elements()[0]
    peer.reply(HEADER + FEATURES_BIND + bind_result(bind.get("id")))
    assert session.online
    peer.take()
    peer.events = []
    return session, peer


def iq_get(payload, stanza_id="q1", sender="controller@example.net/desk"):
    return ("<iq type='get' id='%s' from='%s' to='%s'>%s</iq>" % (stanza_id, sender, FULL_JID, payload)).encode()


def service_unavailable(reply):
    error = reply.find("error")
    return (reply.get("type") == "error" and error is not None and error.get("type") == "cancel"
            and error.find("service-unavailable", NS_STANZAS) is not None)
