"""How provision creates accounts: in-band registration (XEP-0077) by xmpp_lite's own client, the local
server's admin command, or ejabberdctl for an ejabberd elsewhere on this host; ``auto`` goes from the first
to the admin command when the server does not offer in-band registration or refuses it for now.
"""

import shutil
import subprocess

from host_tools.cli import CommandError
from host_tools.cmd_server import INSTALL_HINTS
from host_tools.engines.base import AccountExists, ServerError

EJABBERDCTL = "ejabberdctl"
REGISTER_TIMEOUT_MS = 10000
ADMIN_TIMEOUT = 30.0
# In-band registration answers that mean "not here": auto then uses the admin tool.
NOT_OFFERED = ("service-unavailable", "not-allowed", "forbidden", "feature-not-implemented")
# "Not now": ejabberd's registration_timeout (one registration per IP address every 600 s by default).
RATE_LIMITED = "resource-constraint"


class _Exists(Exception):
    pass


class _NotOffered(Exception):
    def __init__(self, error):
        super().__init__(str(error))
        self.condition = error.condition


class LocalAdmin:
    """The local server's admin command (prosodyctl, or ejabberdctl with its node and config)."""

    def __init__(self, server):
        self.server = server
        self.name = server.admin_tool

    def create(self, user, password, replace):
        if shutil.which(self.name) is None:
            raise CommandError("%s not found on PATH: %s" % (self.name, INSTALL_HINTS[self.server.engine]))
        try:
            # The credentials go to config.json; the server's own state need not keep them.
            self.server.register(user, password, replace=replace, remember=False)
        except AccountExists:
            raise _Exists() from None
        except ServerError as error:
            raise CommandError("%s: %s failed: %s" % (self.server.jid(user), self.name,
                                                     _one_line(str(error).replace(password, "********"))))


class EjabberdAdmin:
    """ejabberdctl on the ejabberd host: ``register USER HOST PASSWORD``, ``change_password`` for --force
    (mod_admin_extra); ``--node`` and ``--config`` when given."""

    name = "ejabberdctl"

    def __init__(self, domain, node=None, config=None):
        self.domain = domain
        self.options = (["--node", node] if node else []) + (["--config", config] if config else [])

    def _run(self, *args):
        try:
            result = subprocess.run([EJABBERDCTL] + self.options + list(args), capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, timeout=ADMIN_TIMEOUT)
        except FileNotFoundError:
            raise CommandError("%s not found on PATH (run provision on the ejabberd host, or use "
                               "--method ibr)" % EJABBERDCTL) from None
        except subprocess.TimeoutExpired:
            raise CommandError("%s %s: no answer within %.0f s" % (EJABBERDCTL, args[0], ADMIN_TIMEOUT)) from None
        return result.returncode, (result.stdout + result.stderr).strip()

    def create(self, user, password, replace):
        jid = "%s@%s" % (user, self.domain)
        status, output = self._run("register", user, self.domain, password)
        if status == 0:
            return
        if "already registered" not in output and "conflict" not in output:
            raise CommandError("%s: ejabberdctl register failed (%d): %s" % (jid, status, _one_line(output)))
        if not replace:
            raise _Exists()
        status, output = self._run("change_password", user, self.domain, password)
        if status != 0:
            raise CommandError("%s: ejabberdctl change_password failed (%d): %s"
                               % (jid, status, _one_line(output)))


def _one_line(text, default="no output"):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines[-3:]) if lines else default


class Accounts:
    """Creates accounts by the chosen method; ``create`` returns what it did, in words."""

    def __init__(self, target, method, force, say, args):
        self.args = args
        self.target = target
        self.method = method
        self.force = force
        self.say = say
        self.admin = self._admin()
        self.in_band = method in ("ibr", "auto")
        if method == "auto" and target.local is not None and not target.local.is_running():
            self.in_band = False  # nothing answers in-band; prosodyctl works on a stopped server
        if method in ("prosodyctl", "ejabberdctl") and self.admin is None:
            raise CommandError("--method %s needs the local server's state (--state DIR, from "
                               "'xmpp-lite server start')" % method)

    def _admin(self):
        local = self.target.local
        if local is not None:
            if self.method in ("prosodyctl", "ejabberdctl") and self.method != local.admin_tool:
                raise CommandError("--method %s: the local server in %s is %s (its admin command is %s)"
                                   % (self.method, local.state_dir, local.engine, local.admin_tool))
            return LocalAdmin(local)
        node, config = self.args.ejabberd_node, self.args.ejabberd_config
        if self.method == "ejabberdctl" or (self.method == "auto" and (node or config)):
            return EjabberdAdmin(self.target.domain, node, config)
        return None

    def describe(self):
        if self.method == "auto":
            if not self.in_band:
                return self.admin.name
            return "in-band registration" + (" (else %s)" % self.admin.name if self.admin else "")
        return {"ibr": "in-band registration"}.get(self.method, self.method)

    def create(self, user, password):
        jid = "%s@%s" % (user, self.target.domain)
        if self.in_band:
            try:
                self._in_band(jid, password)
                return "created (in-band)"
            except _NotOffered as error:
                limited = error.condition == RATE_LIMITED
                if self.method == "ibr" or self.admin is None:
                    hint = (" (ejabberd's registration_timeout: one registration per IP address every 600 s "
                            "by default)" if limited else "")
                    raise CommandError("%s: %s%s; create the accounts with the server's admin tool "
                                       "(--method prosodyctl or ejabberdctl)" % (jid, error, hint))
                self.say("  in-band registration %s (%s); using %s" % (
                    "refused for now" if limited else "not offered", error.condition, self.admin.name))
                self.in_band = False
            except _Exists:
                return self._exists(jid, user, password)
        try:
            self.admin.create(user, password, replace=False)
            return "created (%s)" % self.admin.name
        except _Exists:
            return self._exists(jid, user, password)

    def _exists(self, jid, user, password):
        if not self.force:
            raise CommandError("%s already exists (--force resets its password)" % jid)
        if self.admin is None:
            raise CommandError("%s already exists, and in-band registration cannot reset a password: "
                               "no admin tool for %s (use --state for the local server, or --method "
                               "ejabberdctl on the ejabberd host)" % (jid, self.target.domain))
        self.admin.create(user, password, replace=True)
        return "password reset (%s)" % self.admin.name

    def _in_band(self, jid, password):
        from xmpp_lite.client import Client
        from xmpp_lite.errors import ConditionError
        from xmpp_lite.register import RegistrationError
        from xmpp_lite.stream import ProtocolError

        target = self.target
        client = Client(jid, password, host=target.host, port=target.port, tls=target.tls, ca=target.ca_der,
                        # Without TLS the password goes in the clear: only to the local server, on loopback.
                        insecure_plain=target.tls == "none" and target.local is not None)
        try:
            client.register(timeout_ms=REGISTER_TIMEOUT_MS)
        except RegistrationError as error:
            if error.condition == "conflict":
                raise _Exists() from None
            if error.condition in NOT_OFFERED or error.condition == RATE_LIMITED:
                raise _NotOffered(error) from None
            raise CommandError("%s: in-band registration failed: %s" % (jid, error)) from None
        except (ConditionError, ProtocolError, OSError, ValueError) as error:  # auth, stream, TLS, network
            hint = ""
            if isinstance(error, ConnectionRefusedError):
                hint = " (is the server running? 'xmpp-lite server status')"
            raise CommandError("%s: in-band registration at %s:%d failed: %s%s" % (
                jid, target.host, target.port, _one_line(error, type(error).__name__), hint)) from None
