"""In-band account registration (XEP-0077), for provisioning devices.

Sans-I/O, on top of a Session: the session opens the stream and settles TLS,
then hands the stream to a Registration instead of authenticating.

    reg = Registration(fields={"email": "ops@example.net"})  # extra fields, if the server asks
    session = Session(jid, password, registration=reg)
    ... EVENT_REGISTERED (the username) or EVENT_ERROR(RegistrationError)

The exchange: get the registration form, fill in username, password and the
given extra fields, submit it. Both the plain fields of XEP-0077 and a data
form (XEP-0004) are understood. A form that needs more than this client has
(a CAPTCHA, a field nobody gave a value for) fails before anything is
submitted. ``xmpp_lite.client.Client.register()`` drives this over a socket.
"""

from xmpp_lite._compat import const
from xmpp_lite.errors import ConditionError
from xmpp_lite.session import EVENT_REGISTERED
from xmpp_lite.stanza import NS_STANZAS, Element
from xmpp_lite.streamerror import read_condition
from xmpp_lite.stanza import iq as make_iq

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_DATA = "jabber:x:data"

# Plain children of the form's <query/> that are not fields to fill in.
_NOT_FIELDS = ("instructions", "registered", "x")

# What each error condition means here (XEP-0077 section 3.1 and 8).
_EXPLAIN = {
    "conflict": "the username is already taken",
    "not-acceptable": "the server did not accept the data: a required field is missing or invalid",
    "not-allowed": "the server does not allow in-band registration",
    "service-unavailable": "the server does not offer in-band registration",
    "forbidden": "registration is forbidden for this client",
    "resource-constraint": "the server refuses registrations for now (too many); try later",
    "bad-request": "the server found the request malformed",
    "already-registered": "the server says this stream is already registered",
    "missing-fields": "the server asks for fields that were not given",
}

_FORM = const(1)  # form requested
_SUBMITTED = const(2)  # form sent back
_DONE = const(3)


class RegistrationError(ConditionError):
    """Registration failed: ``condition`` (e.g. "conflict"), ``text`` (ours, then the server's)."""



def _error(iq):
    condition = "undefined-condition"
    server_text = ""
    error = iq.find("error")
    if error is not None:
        found, server_text = read_condition(error, NS_STANZAS)
        if found is not None:
            condition = found.local
    text = _EXPLAIN.get(condition, "registration failed")
    if server_text:
        text += " (server: " + server_text + ")"
    return RegistrationError(condition, text)


def _element(name, text="", attrs=None, xmlns=None):
    return Element(name, attrs, text=text, xmlns=xmlns)


class Registration:
    """One registration; ``fields`` gives values for extra fields ({"email": ...})."""

    def __init__(self, fields=None):
        self.fields = dict(fields) if fields else {}
        self.instructions = None  # the server's instructions, once the form came
        self._step = 0
        self._id = None  # the id of our last request

    @property
    def done(self):
        return self._step == _DONE

    def request(self, features, stanza_id):
        """The iq that asks for the form. ``features`` may lack the register feature: try anyway."""
        self._step = _FORM
        self._id = stanza_id
        return make_iq("get", stanza_id, payload=_element("query", xmlns=NS_REGISTER))

    def on_iq(self, session, iq, password):
        """An iq while ``session`` registers: the answer to our last request, or one for the session to handle."""
        kind = iq.get("type")
        if (kind != "result" and kind != "error") or iq.get("id") != self._id:
            session._on_iq(iq)
            return
        try:
            reply = self.receive(iq, session.username, password)
        except Exception as error:  # RegistrationError, or a form this client cannot fill in
            session._fail(error)
            return
        if reply is None:
            session._event(EVENT_REGISTERED, session.username)
            session.close()
            return
        self._id = session.new_id()
        reply.set("id", self._id)
        session._queue_element(reply)

    def receive(self, iq, username, password):
        """Take the answer to the last request: the next iq to send (id unset), or None when done."""
        if iq.get("type") == "error":
            raise _error(iq)
        if self._step == _SUBMITTED:
            self._step = _DONE
            return None
        if self._step != _FORM:
            raise RegistrationError("bad-request", "unexpected answer")
        query = iq.find("query", NS_REGISTER)
        if query is None:
            raise RegistrationError("bad-request", "the server sent no registration form")
        if query.find("registered") is not None:
            raise RegistrationError("already-registered", _EXPLAIN["already-registered"])
        self.instructions = query.find_text("instructions")
        values = dict(self.fields)
        values["username"] = username
        values["password"] = password
        plain = [child for child in query.children if child.local not in _NOT_FIELDS]
        form = query.find("x", NS_DATA)
        if plain:
            answer = self._fill_plain(plain, values)
        elif form is not None:
            answer = self._fill_form(form, values)
        else:
            raise RegistrationError("bad-request", "the registration form has no fields")
        self._step = _SUBMITTED
        return make_iq("set", None, payload=answer)

    def _fill_plain(self, fields, values):
        query = _element("query", xmlns=NS_REGISTER)
        missing = []
        for field in fields:
            name = field.local
            if name == "key":
                query.append(_element("key", field.text))  # obsolete, echoed back (XEP-0077 3.1)
            elif name in values:
                query.append(_element(name, values[name]))
            else:
                missing.append(name)
        if missing:
            raise RegistrationError("missing-fields", _EXPLAIN["missing-fields"] + ": " + ", ".join(missing))
        return query

    def _fill_form(self, form, values):
        submit = _element("x", attrs={"type": "submit"}, xmlns=NS_DATA)
        missing = []
        for field in form.find_all("field"):
            var = field.get("var")
            if var is None or field.get("type") == "fixed":
                continue
            if var in values:
                value = values[var]
            elif field.get("type") == "hidden":
                value = field.find_text("value", default="")
            elif field.find("required") is not None:
                missing.append(var)
                continue
            else:
                continue
            answer = submit.append(_element("field", attrs={"var": var}))
            answer.append(_element("value", value))
        if missing:
            raise RegistrationError("missing-fields", _EXPLAIN["missing-fields"] + ": " + ", ".join(missing))
        query = _element("query", xmlns=NS_REGISTER)
        query.append(submit)
        return query
