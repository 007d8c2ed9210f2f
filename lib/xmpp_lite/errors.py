"""The errors a peer reports by a named condition, and TLSError, in a module of their own.

Code that only catches them (the firmware, xmpp_lite.robust) imports them from here and so does not
load what raises them: the SASL mechanisms (xmpp_lite.sasl) are loaded only while logging in, the
connection code (xmpp_lite.connecting) only while connecting.
"""


class ConditionError(Exception):
    """An error named by a short condition token, with optional text.

    The base of the errors the peer can cause by a named condition
    (AuthError, StreamError, RegistrationError). ``str()`` gives
    "condition: text".
    """

    def __init__(self, condition, text=""):
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __str__(self):
        if self.text:
            return self.condition + ": " + self.text
        return self.condition


class AuthError(ConditionError):
    """Authentication failed; ``condition`` is a short token, ``text`` says more.

    ``condition`` is the child of the server's <failure/> (e.g.
    "not-authorized") or one of xmpp_lite.sasl's conditions (e.g.
    SERVER_SIGNATURE_MISMATCH).
    """


class TLSError(OSError):
    """The TLS handshake failed: certificate not trusted, wrong host name, or a TLS alert."""


def describe(error):
    """An exception as one line of text: its message, else its class name."""
    text = str(error).strip()
    return text or type(error).__name__
