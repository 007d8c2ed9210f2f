"""A deterministic corpus of typical XMPP client traffic, for the parser benchmarks."""

import random

STREAM_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='b3f1c2' from='example.net' "
    b"to='sensor-01@example.net' version='1.0' xml:lang='en'>"
)

_WORDS = ("temp", "humidity", "ok", "alarm", "read", "status", "set", "relay", "on", "off",
          "caf\xe9", "\u0434\u0430\u0442\u0447\u0438\u043a", "<&>", "\"quoted\"", "it's", "21.5C", "40%")


def _sentence(rng, count):
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def stanzas(seed=7):
    """Yield an endless sequence of stanzas (bytes) like those a board receives."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        kind = rng.random()
        peer = "controller@example.net/desk{}".format(rng.randrange(3))
        if kind < 0.45:
            body = _escape(_sentence(rng, rng.randrange(2, 12)))
            xml = ("<message from='{}' to='sensor-01@example.net/board' type='chat' id='m{}'>"
                   "<body>{}</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
                   ).format(peer, n, body)
        elif kind < 0.75:
            xml = ("<presence from='sensor-{:02d}@example.net/board' id='p{}'><show>chat</show>"
                   "<status>temp={:.1f}C hum={}%</status><priority>5</priority>"
                   "<reading xmlns='urn:xmpp-lite:sensor:0' temp='{:.1f}' hum='{}' t='{}'/></presence>"
                   ).format(rng.randrange(100), n, rng.uniform(-10, 40), rng.randrange(100),
                            rng.uniform(-10, 40), rng.randrange(100), 1700000000 + n)
        elif kind < 0.9:
            xml = ("<iq from='example.net' to='sensor-01@example.net/board' type='get' id='ping{}'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>").format(n)
        else:
            xml = ("<iq from='{}' type='set' id='c{}' to='sensor-01@example.net/board'>"
                   "<command xmlns='urn:xmpp-lite:command:0' name='set' output='relay1'>"
                   "<arg>on</arg><![CDATA[raw <payload> & more]]></command></iq>").format(peer, n)
        yield xml.encode("utf-8")
        if rng.random() < 0.1:
            yield b" "  # whitespace keepalive between stanzas


def stream(size, seed=7):
    """A stream header followed by stanzas: at least `size` bytes, never closed."""
    parts = [STREAM_HEADER]
    total = len(STREAM_HEADER)
    for stanza in stanzas(seed):
        parts.append(stanza)
        total += len(stanza)
        if total >= size:
            break
    return b"".join(parts)
