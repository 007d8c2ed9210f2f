"""Answers to iq get/set (RFC 6120 8.2.3: every one gets exactly one answer).

Built in: XEP-0199 ping, XEP-0030 disco#info (identity and exactly the
features answered here) and XEP-0092 software version. Handlers registered
per payload namespace come first; everything else gets
<service-unavailable/>. Results and errors are never answered: the session
does not pass them here.
"""

from xmpp_lite.stanza import Element, error_reply
from xmpp_lite.stanza import iq as make_iq

NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_VERSION = "jabber:iq:version"

DEFAULT_IDENTITY = ("client", "bot")  # XEP-0030 category and type
BUILT_IN = (NS_DISCO_INFO, NS_PING, NS_VERSION)


class Responder:
    """Answers iq get/set for one session; ``software`` is (name, version).

    ``identity`` is the XEP-0030 (category, type), None for DEFAULT_IDENTITY; ``handlers`` maps payload
    namespaces to handlers (see ``register``), None for none yet.
    """

    def __init__(self, software, identity=None, handlers=None):
        self.software = software
        self.identity = identity if identity is not None else DEFAULT_IDENTITY
        self.handlers = handlers if handlers is not None else {}

    def register(self, xmlns, fn):
        """Answer get/set whose payload is in ``xmlns`` with ``fn(iq) -> reply Element``.

        The reply's id (and ``to``) are filled in when missing; returning
        None answers <service-unavailable/>. The namespace is then listed in
        disco#info.
        """
        self.handlers[xmlns] = fn

    def features(self):
        """The XEP-0030 features answered here, sorted."""
        names = list(BUILT_IN)
        for xmlns in self.handlers:
            if xmlns not in names:
                names.append(xmlns)
        names.sort()
        return names

    def answer(self, iq):
        """(reply Element, exception raised by a handler or None) for an iq get/set."""
        if iq.get("id") is None or len(iq.children) != 1:
            return error_reply(iq, "modify", "bad-request"), None
        payload = iq.children[0]
        handler = self.handlers.get(payload.xmlns)
        if handler is not None:
            try:
                reply = handler(iq)
            except Exception as error:  # a bug in the handler must not leave the iq unanswered
                return error_reply(iq, "wait", "internal-server-error"), error
            if reply is None:
                return error_reply(iq, "cancel", "service-unavailable"), None
            if reply.get("id") is None:
                reply.set("id", iq.get("id"))
            if reply.get("to") is None and iq.get("from") is not None:
                reply.set("to", iq.get("from"))
            return reply, None
        if iq.get("type") == "get":
            if payload.xmlns == NS_PING and payload.local == "ping":
                return self._result(iq), None
            if payload.xmlns == NS_DISCO_INFO and payload.local == "query":
                if payload.get("node") is not None:
                    return error_reply(iq, "cancel", "item-not-found"), None
                return self._result(iq, self._disco_info()), None
            if payload.xmlns == NS_VERSION and payload.local == "query":
                query = Element("query", xmlns=NS_VERSION)
                query.append(Element("name", text=self.software[0]))
                query.append(Element("version", text=self.software[1]))
                return self._result(iq, query), None
        return error_reply(iq, "cancel", "service-unavailable"), None

    def _result(self, iq, payload=None):
        return make_iq("result", iq.get("id"), to=iq.get("from"), payload=payload)

    def _disco_info(self):
        query = Element("query", xmlns=NS_DISCO_INFO)
        query.append(Element("identity", {
            "category": self.identity[0], "type": self.identity[1], "name": self.software[0]}))
        for name in self.features():
            query.append(Element("feature", {"var": name}))
        return query
