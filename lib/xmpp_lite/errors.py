"""The base of the errors a peer reports by a named condition."""


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
