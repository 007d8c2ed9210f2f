"""XEP-0198 stream management: the state that outlives one connection.

A ``StreamManagement`` is handed to every Session of one logical link (see
xmpp_lite.robust). It holds the resumption id, both stanza counters and the
stanzas the server has not acknowledged yet, so that a new connection can
resume the old stream (``<resume h=... previd=...>``) and resend what was
lost, or, when the server no longer knows the stream, start a fresh one and
resend everything not known to have arrived.

One list, ``unacked``, serves three purposes, oldest first:
  - stanzas sent on the current stream since <enable/> and not yet acked;
  - stanzas sent on a previous stream and not acked before it died;
  - stanzas the application sent while offline (``queue_offline``).
All of them are sent (again) when a stream is back, in order.

Counters are modulo 2**32 (XEP-0198 section 4).

Bounded: at most ``max_unacked`` stanzas from the application
(``QueueFull`` beyond, never a silent drop); the session's own automatic
replies may take up to as many again before the session gives up on a
server that never acks.
"""

from xmpp_lite.stanza import escape_attr

NS_SM = "urn:xmpp:sm:3"

# Stanzas kept for resending until the server acks them. Each is kept
# serialised (a sensor report is ~150-250 bytes), so 32 cost ~8 KB at most.
MAX_UNACKED = 32
# Ask the server for an ack (<r/>) after this many stanzas without one: when
# half the queue waits, so the answer comes long before it is full. Each ask
# costs an <a/> back (~61 B in a TLS record of its own); liveness probes ask
# too, riding on a stanza when one is due (xmpp_lite.keepalive).
ACK_REQUEST_EVERY = MAX_UNACKED // 2

ENABLE = b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
REQUEST = b"<r xmlns='urn:xmpp:sm:3'/>"


class QueueFull(Exception):
    """More than ``max_unacked`` stanzas wait for an ack or a connection.

    Nothing was queued. Poll (acks arrive, or the link comes back) and try
    again, or drop the stanza knowingly.
    """


def answer(handled):
    """The bytes of <a h=.../> for ``handled`` stanzas."""
    return b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % handled


def resume(handled, previd):
    return b"<resume xmlns='urn:xmpp:sm:3' h='%d' previd='%s'/>" % (handled, escape_attr(previd).encode())


def parse_h(elem):
    """The h attribute of <a/>, <resumed/> or <failed/> as an int, or None if absent or malformed."""
    text = elem.get("h")
    if text is None or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= 0xFFFFFFFF else None  # counters are 32-bit


class StreamManagement:
    """Counters, resumption id and unacked stanzas of one logical XMPP link."""

    def __init__(self, max_unacked=MAX_UNACKED, ack_request_every=None, hold_acks=False):
        if max_unacked < 1:
            raise ValueError("max_unacked must be at least 1")
        self.max_unacked = max_unacked
        # Default: half the queue (at least 1), so that a small queue is asked before it fills.
        self.ack_request_every = ack_request_every or max(max_unacked // 2, 1)
        # True: an ack the server asks for waits for our next stanza (or for the
        # driver: Session.ack_owed, xmpp_lite.keepalive's SEND_ACK) instead of a write of its own.
        self.hold_acks = hold_acks
        self.ask_next = False  # an <r/> goes with the next stanza (a liveness probe riding on it)
        self.id = None  # resumption id of the last stream, while the server may still resume it
        self.resumable = False  # id is not None
        self.jid = None  # the full JID bound on that stream
        self.handled = 0  # inbound stanzas handled on the stream (our h)
        self.acked = 0  # the server's last h: our stanzas it has handled
        self.unacked = []  # serialised stanzas, oldest first (see the module docstring)
        # What the session's ``sm`` does on the current stream: outbound stanzas go to ``unacked`` from
        # <enable/> or <resume/> on (counting); inbound ones are counted once the server confirmed
        # stream management with <enabled/> or <resumed/> (enabled).
        self.counting = False
        self.enabled = False
        self._since_request = 0

    # -- what a Session asks ----------------------------------------------------------------

    def start_fresh(self):
        """<enable/> goes out on a new stream: count from zero; what is in ``unacked`` is sent again."""
        self.forget()
        self.counting = True
        self._since_request = 0

    def confirm(self, resumption_id, jid):
        """<enabled/> arrived; ``resumption_id`` is None when the server will not resume this stream."""
        self.id = resumption_id
        self.resumable = resumption_id is not None
        self.jid = jid
        self.counting = self.enabled = True

    def resumed(self):
        self.counting = self.enabled = True
        self._since_request = 0

    def give_up_stream(self):
        """The server refused <enable/>: what was sent on this stream stays sent, unconfirmed."""
        self.id = None
        self.resumable = self.counting = self.enabled = False
        self.unacked = []

    def stream_ended(self):
        """The connection is gone; keep the id, counters and unacked stanzas for a resumption."""
        self.counting = self.enabled = False

    def forget(self):
        """The stream was closed on purpose or cannot be resumed: no resumption, counters reset."""
        self.id = None
        self.resumable = self.counting = self.enabled = False
        self.handled = 0
        self.acked = 0

    def received_stanza(self):
        if self.enabled:
            self.handled = (self.handled + 1) & 0xFFFFFFFF

    def sent_stanza(self, data):
        """Keep ``data`` (just queued for the server) until acked; True if an <r/> is due now."""
        self.unacked.append(data)
        self._since_request += 1
        if self._since_request >= self.ack_request_every or self.ask_next:
            self.requested()
            return True
        return False

    def requested(self):
        self._since_request = 0
        self.ask_next = False

    def ack(self, h):
        """The server says it handled ``h`` of our stanzas; drop those. False if h is impossible."""
        count = (h - self.acked) & 0xFFFFFFFF
        if count > len(self.unacked):
            return False
        if count:
            del self.unacked[:count]
        self.acked = h
        return True

    # -- what the application asks -----------------------------------------------------------

    def queue_offline(self, data):
        """Keep a stanza to send when the link is back; raises QueueFull."""
        if len(self.unacked) >= self.max_unacked:
            raise QueueFull("%d stanzas already wait for the link or an ack" % len(self.unacked))
        self.unacked.append(data)
