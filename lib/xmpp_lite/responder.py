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
    namespaces to handlers (``fn(iq) -> reply Element``), None for none. A handler's reply gets the
    request's id (and ``to``) when it has none; a handler that returns None answers
    <service-unavailable/>. Each handler's namespace is listed in disco#info.
    """

    def __init__(self, software, identity=None, handlers=None):
        self.software = software
        self.identity = identity if identity is not None else DEFAULT_IDENTITY
        self.handlers = handlers if handlers is not None else {}

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
        query = None
        if iq.get("type") != "get" or payload.local != ("ping" if payload.xmlns == NS_PING else "query"):
            return error_reply(iq, "cancel", "service-unavailable"), None
        if payload.xmlns == NS_DISCO_INFO:
            if payload.get("node") is not None:
                return error_reply(iq, "cancel", "item-not-found"), None
            query = Element("query", xmlns=NS_DISCO_INFO)
            query.append(Element("identity", {
                "category": self.identity[0], "type": self.identity[1], "name": self.software[0]}))
            names = list(BUILT_IN)  # the features answered here, sorted
            for xmlns in self.handlers:
                if xmlns not in names:
                    names.append(xmlns)
            names.sort()
            for name in names:
                query.append(Element("feature", {"var": name}))
        elif payload.xmlns == NS_VERSION:
            query = Element("query", xmlns=NS_VERSION)
            query.append(Element("name", text=self.software[0]))
            query.append(Element("version", text=self.software[1]))
        elif payload.xmlns != NS_PING:
            return error_reply(iq, "cancel", "service-unavailable"), None
        return make_iq("result", iq.get("id"), to=iq.get("from"), payload=query), None
