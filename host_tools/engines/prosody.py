"""A local Prosody for tests and demos, run from a generated config.

Everything the server touches lives in one state directory: the config, certificates (see ``testca``),
account data, the log, and ``server.json`` (pid, ports, accounts) so that another process can reattach with
``ProsodyServer.load(state_dir)``. The server listens on 127.0.0.1 (or the ``listen`` address), on c2s ports (STARTTLS and, when TLS
is on, direct TLS); s2s, HTTP, components and proxy65 are closed.

Prosody is started in the foreground as our child (``prosody -F --config FILE``) without mod_posix, so it
runs as root when we are root, writes no pidfile of its own, and exits at once on SIGTERM (mod_posix is what
would turn SIGTERM into a graceful shutdown).

    with ProsodyServer("xmpp-state") as server:
        server.register("device1", "secret")
        print(server.c2s_port, server.ca_path)
"""

import json
import os
import re
import signal
import subprocess
import time

from host_tools import testca
from host_tools.resources import prosody_modules_dir
from host_tools.engines.base import (DOMAIN_RE as _DOMAIN_RE, LOOPBACK, POLL_INTERVAL, STATE_FILE,  # noqa: F401
                                     AccountExists, ServerEngine, ServerError, check_user,
                                     cmdline as _cmdline, free_port, free_ports as _free_ports,
                                     pid_alive as _pid_alive, port_open as _port_open, read_until,
                                     listen_names, read_state, stream_features, stream_header,
                                     tail as _tail)

PROSODY = "prosody"
PROSODYCTL = "prosodyctl"

CONFIG_FILE = "prosody.cfg.lua"
LOG_FILE = "prosody.log"
CONSOLE_FILE = "prosody.console"  # stdout/stderr: errors printed before logging is set up
DATA_DIR = "data"
PKI_DIR = "pki"
PLUGIN_DIR = "plugins"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
PROSODYCTL_TIMEOUT = 30.0
PORT_ATTEMPTS = 3  # a free port picked by us can be taken by someone else before Prosody binds it
# Room for tests that push 1000 stanzas at a client that acks late; Prosody's default is 500,
# and a longer unacked run makes the session unresumable.
SMACKS_MAX_QUEUE_SIZE = 5000
# XEP-0388 SASL2 with XEP-0386 Bind2: community modules, from Debian's prosody-modules. (Its
# mod_sasl2_sm, XEP-0198 inline, needs a newer mod_smacks than Prosody 0.12 has: not loaded.)
SASL2_MODULES = ["sasl2", "sasl2_bind2"]
SASL2_PACKAGE = "prosody-modules"
PROSODY_MODULE_DIRS = ("/usr/lib/prosody/modules",)  # where Debian's packages put them
# Our own Prosody modules: mod_tls_info_compat lets that mod_sasl2 run on encrypted streams.
OWN_MODULES_DIR = prosody_modules_dir()
SASL2_TLS_MODULE = "tls_info_compat"

_OPTION_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(?!=)", re.MULTILINE)
# Lines Prosody logs when a listener cannot be opened; it keeps running without that port.
_BIND_FAILURES = ("Failed to open server port", "Error binding encrypted port")
# What prosodyctl adduser says about an account that is already there.
_USER_EXISTS = "That user already exists"


def _lua_string(value):
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"%s"' % escaped


def _lua_bool(value):
    return "true" if value else "false"


def _lua_list(items):
    return "{ %s }" % ", ".join(items) if items else "{}"


def _is_our_prosody(pid, config_path):
    # Guards against a recycled pid: it must be a live Prosody on this config.
    return _pid_alive(pid) and config_path.encode() in _cmdline(pid)


def _recorded_server_pid(state_dir, config_path):
    """The pid in ``state_dir``'s state file if that process is still our Prosody, else None."""
    try:
        with open(os.path.join(state_dir, STATE_FILE)) as f:
            pid = json.load(f).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and _is_our_prosody(pid, config_path) else None


def _module_installed(name):
    """True if Prosody can load mod_``name`` from its module directory (flat or in a folder of its own)."""
    for directory in PROSODY_MODULE_DIRS:
        if (os.path.exists(os.path.join(directory, "mod_%s.lua" % name))
                or os.path.exists(os.path.join(directory, "mod_" + name, "mod_%s.lua" % name))):
            return True
    return False


class ProsodyServer(ServerEngine):
    """One local Prosody instance living in ``state_dir``.

    ``port`` / ``direct_tls_port``: None picks a free loopback port at start; ``direct_tls_port=False``
    opens no direct TLS listener (there is never one when ``tls`` is off). ``require_encryption`` only
    applies with ``tls``: without TLS, encryption cannot be required and PLAIN is allowed in the clear.
    ``sasl2`` also offers XEP-0388 SASL2 with XEP-0386 Bind2 (the community modules of Debian's
    prosody-modules package); the classic SASL of RFC 6120 stays on offer beside it.
    ``listen``: the address c2s listens on (default loopback); the certificate then names it too, and
    the host's name. ``extra_config`` is Lua config text inserted verbatim at the end of the global section, after every
    generated option (so it overrides them) and before the VirtualHost.
    """

    engine = "prosody"
    admin_tool = PROSODYCTL

    def __init__(self, state_dir, domain="localhost", port=None, direct_tls_port=None, tls=True,
                 require_encryption=True, allow_registration=True, smacks=True, sasl2=True, extra_config="",
                 listen=LOOPBACK):
        if not _DOMAIN_RE.match(domain):
            raise ServerError("not a valid XMPP domain: %r" % domain)
        self.state_dir = os.path.abspath(state_dir)
        self.domain = domain
        self.listen = listen
        self.tls = bool(tls)
        self.require_encryption = bool(require_encryption) and self.tls
        self.allow_registration = bool(allow_registration)
        self.smacks = bool(smacks)
        self.sasl2 = bool(sasl2)
        self.extra_config = extra_config
        self._wanted_port = port
        self._wanted_direct_tls_port = direct_tls_port if self.tls else False
        self.c2s_port = port
        self.direct_tls_port = direct_tls_port if self.tls and direct_tls_port else None
        self.pid = None
        self.accounts = {}
        self._process = None

        self.config_path = os.path.join(self.state_dir, CONFIG_FILE)
        self.log_path = os.path.join(self.state_dir, LOG_FILE)
        self.console_path = os.path.join(self.state_dir, CONSOLE_FILE)
        self.state_path = os.path.join(self.state_dir, STATE_FILE)
        self.data_dir = os.path.join(self.state_dir, DATA_DIR)
        self.pki = testca.TestPKI(os.path.join(self.state_dir, PKI_DIR))
        self.ca_path = self.pki.ca_cert
        self.ca_der_path = self.pki.ca_der
        self.cert_path = self.pki.server_cert
        self.key_path = self.pki.server_key
        self.wrong_cert_path = self.pki.wrong_cert

    def __repr__(self):
        return "ProsodyServer(%r, domain=%r, c2s_port=%r, direct_tls_port=%r, pid=%r)" % (
            self.state_dir, self.domain, self.c2s_port, self.direct_tls_port, self.pid)

    # -- configuration -----------------------------------------------------------------------------

    def render_config(self):
        """The Prosody config for the current settings and ports, as text.

        A global option that ``extra_config`` sets itself is left out of the generated part, so the
        value is not set twice (Prosody warns about duplicate options).
        """
        if not self._ports_known():
            raise ServerError("ports are picked at start(); render_config() needs them set")
        modules = ["roster", "saslauth", "disco", "ping", "time", "version", "register", "carbons"]
        if self.tls:
            modules.insert(2, "tls")
        if self.smacks:
            modules.append("smacks")
        if self.sasl2:
            modules += SASL2_MODULES
            if self.tls:
                modules.append(SASL2_TLS_MODULE)
        # posix: daemonizing, pidfile, signal handlers and the refusal to run as root; we supervise
        # the process ourselves. s2s is loaded by default; nothing here federates.
        disabled = ["posix", "s2s", "s2s_auth_certs"]
        direct_tls = [str(self.direct_tls_port)] if self.direct_tls_port else []
        q = _lua_string
        options = [
            ("run_as_root", "true  -- else prosodyctl, run as root, switches to the 'prosody' user"),
            ("data_path", q(self.data_dir)),
            ("installer_plugin_path", q(os.path.join(self.state_dir, PLUGIN_DIR))),
            ("plugin_paths", "{ %s }" % q(OWN_MODULES_DIR)),
            ("certificates", q(self.pki.directory)),
            ("log", "{\n    { levels = { min = \"info\" }, to = \"file\", filename = %s };\n}"
             % q(self.log_path)),
            ("interfaces", "{ %s }" % q(self.listen)),
            ("local_interfaces", "{ %s }" % q(self.listen)),
            ("c2s_ports", "{ %d }" % self.c2s_port),
            ("c2s_direct_tls_ports", _lua_list(direct_tls)),
            ("legacy_ssl_ports", "{}"),
            ("s2s_ports", "{}"),
            ("s2s_direct_tls_ports", "{}"),
            ("component_ports", "{}"),
            ("http_ports", "{}"),
            ("https_ports", "{}"),
            ("proxy65_ports", "{}"),
            ("modules_enabled", _lua_list([q(m) for m in modules])),
            ("modules_disabled", _lua_list([q(m) for m in disabled])
             + "  -- posix: we supervise the process; s2s: no federation"),
            # mod_limits is not loaded: no rate limits on c2s.
            ("authentication", q("internal_hashed") + "  -- SCRAM-SHA-1, and PLAIN where allowed"),
            ("storage", q("internal")),
            ("c2s_require_encryption", _lua_bool(self.require_encryption)),
            ("allow_unencrypted_plain_auth", _lua_bool(not self.tls)),
            ("allow_registration", _lua_bool(self.allow_registration)),
        ]
        if self.tls:
            options.append(("ssl", "{ certificate = %s, key = %s }" % (q(self.cert_path), q(self.key_path))))
        if self.smacks:
            options.append(("smacks_max_queue_size", str(SMACKS_MAX_QUEUE_SIZE)))
        overridden = set(_OPTION_RE.findall(self.extra_config))
        lines = [
            "-- Generated by host_tools.engines.prosody; rewritten on every start.",
            "-- Everything lives under the state directory; nothing listens beyond %s." % self.listen,
            "",
        ]
        lines += ["%s = %s" % (name, value) for name, value in options if name not in overridden]
        if self.extra_config:
            lines += ["", "-- extra_config", self.extra_config.rstrip("\n")]
        lines += ["", "VirtualHost %s" % q(self.domain), ""]
        return "\n".join(lines)

    def _prepare(self):
        if self.sasl2:
            missing = [name for name in SASL2_MODULES if not _module_installed(name)]
            if missing:
                raise ServerError("Prosody module %s is not installed (Debian package %s; "
                                  "or turn SASL2 off)" % (", ".join("mod_" + m for m in missing), SASL2_PACKAGE))
        os.makedirs(self.state_dir, exist_ok=True)
        os.makedirs(self.data_dir, mode=0o750, exist_ok=True)
        # Prosody scans the certificates directory even without TLS, and logs an error if it is missing.
        os.makedirs(self.pki.directory, exist_ok=True)
        if self.tls:
            testca.ensure(self.pki.directory, self.domain, extra_names=listen_names(self.listen))
        with open(self.config_path, "w") as f:
            f.write(self.render_config())

    # -- process control ---------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        """Write the config, start Prosody and wait until c2s answers with stream features."""
        if self.is_running():
            raise ServerError("already running (pid %d)" % self.pid)
        other = _recorded_server_pid(self.state_dir, self.config_path)
        if other is not None:
            raise ServerError("a server on %s is already running (pid %d); reattach with "
                              "ProsodyServer.load()" % (self.state_dir, other))
        for attempt in range(PORT_ATTEMPTS):
            self._pick_ports()
            self._prepare()
            log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            self._spawn()
            try:
                self._wait_ready(timeout, log_start)
            except _PortTaken as e:
                self.stop()
                picked_by_us = self._wanted_port is None or self._wanted_direct_tls_port is None
                if not picked_by_us or attempt == PORT_ATTEMPTS - 1:
                    raise ServerError(str(e)) from None
                continue
            except BaseException:
                self.stop()
                raise
            self._save_state()
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _ports_known(self):
        wants_direct_tls = self.tls and self._wanted_direct_tls_port is not False
        return self.c2s_port is not None and (self.direct_tls_port is not None or not wants_direct_tls)

    def _pick_ports(self):
        wanted = [self._wanted_port, self._wanted_direct_tls_port if self.tls else False]
        picked = iter(_free_ports(sum(1 for p in wanted if p is None)))
        self.c2s_port = self._wanted_port if self._wanted_port is not None else next(picked)
        if not self.tls or self._wanted_direct_tls_port is False:
            self.direct_tls_port = None
        else:
            self.direct_tls_port = (self._wanted_direct_tls_port if self._wanted_direct_tls_port is not None
                                    else next(picked))

    def _spawn(self):
        with open(self.console_path, "ab") as console:
            try:
                self._process = subprocess.Popen(
                    [PROSODY, "-F", "--config", self.config_path],
                    stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                    cwd=self.state_dir,
                    # Own session: a Ctrl-C meant for the caller's terminal does not reach the server,
                    # and a CLI that started it can exit and leave it running.
                    start_new_session=True)
            except FileNotFoundError:
                raise ServerError("%r not found: install Prosody (apt-get install prosody prosody-modules)"
                                  % PROSODY) from None
        self.pid = self._process.pid

    def _wait_ready(self, timeout, log_start):
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            log = _tail(self.log_path, size=1 << 20, start=log_start)
            for marker in _BIND_FAILURES:
                if marker in log:
                    line = next(entry for entry in log.splitlines() if marker in entry)
                    raise _PortTaken("Prosody could not open a port: %s" % line.strip())
            if not self.is_running():
                raise ServerError("Prosody exited during start-up (status %r)\n%s\n%s" % (
                    self._process.poll() if self._process else None,
                    _tail(self.console_path), _tail(self.log_path, start=log_start)))
            try:
                features = stream_features(self.c2s_port, self.domain, host=self.listen)
                if self.direct_tls_port and not _port_open(self.direct_tls_port, host=self.listen):
                    raise ServerError("direct TLS port %d not open yet" % self.direct_tls_port)
                if self.tls and b"starttls" not in features:
                    raise ServerError("no <starttls/> in stream features: %r" % features)
                return
            except (OSError, ServerError) as e:
                last_error = e
            if time.monotonic() > deadline:
                raise ServerError("Prosody not ready after %.0f s (%s); log:\n%s" % (
                    timeout, last_error, _tail(self.log_path, start=log_start)))
            time.sleep(POLL_INTERVAL)

    def is_running(self):
        """True if our Prosody process is alive."""
        if self._process is not None:
            return self._process.poll() is None
        return self.pid is not None and _is_our_prosody(self.pid, self.config_path)

    def stop(self, timeout=STOP_TIMEOUT):
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``) and wait until it is gone."""
        if self._process is not None:
            process, self._process = self._process, None
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
        elif self.is_running():
            self._signal_and_wait(timeout)
        self.pid = None
        if os.path.exists(self.state_path):
            self._save_state()

    def _signal_and_wait(self, timeout):
        # Not our child (reattached with load()): signal it and watch /proc.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:  # reap it if it is our child after all
                    os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                if not _pid_alive(self.pid):
                    return
                time.sleep(POLL_INTERVAL)
        raise ServerError("Prosody (pid %d) did not exit" % self.pid)

    # -- accounts ----------------------------------------------------------------------------------

    def _prosodyctl(self, *args, stdin=None):
        command = [PROSODYCTL, "--config", self.config_path] + list(args)
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                    cwd=self.state_dir, timeout=PROSODYCTL_TIMEOUT)
        except FileNotFoundError:
            raise ServerError("%r not found: install Prosody (apt-get install prosody prosody-modules)"
                              % PROSODYCTL) from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ServerError("prosodyctl %s failed (%d): %s" % (args[0], result.returncode, output))
        return result

    def register(self, user, password, replace=True, remember=True):
        """Create the account ``user@domain``. Works with the server stopped too.

        ``replace``: an existing account gets the new password; with ``replace=False`` it is left alone
        and AccountExists is raised. ``remember``: keep the password in ``accounts`` (and so in
        server.json); a caller that stores the credentials elsewhere passes False.
        """
        check_user(user, password)
        if not os.path.exists(self.config_path):
            self._prepare_for_accounts()
        # The password goes on stdin (prosodyctl asks twice), not on the command line where any
        # local user could read it from the process list.
        stdin = "%s\n%s\n" % (password, password)
        if replace:
            self._prosodyctl("register", user, self.domain, stdin=stdin)
        else:
            # adduser, unlike register, refuses an account that exists.
            try:
                self._prosodyctl("adduser", self.jid(user), stdin=stdin)
            except ServerError as error:
                if _USER_EXISTS in str(error):
                    raise AccountExists("%s already exists" % self.jid(user)) from None
                raise
        if remember:
            self.accounts[user] = password
            self._save_state_if_present()

    def unregister(self, user):
        """Delete the account ``user@domain``."""
        check_user(user)
        self._prosodyctl("unregister", user, self.domain)
        self.accounts.pop(user, None)
        self._save_state_if_present()

    def _prepare_for_accounts(self):
        # prosodyctl needs a config; before the first start, ports are not known yet.
        if not self._ports_known():
            self._pick_ports()
        self._prepare()

    # -- state file --------------------------------------------------------------------------------

    def _state(self):
        return {
            "engine": self.engine,
            "pid": self.pid if self.is_running() else None,
            "domain": self.domain,
            "listen": self.listen,
            "c2s_port": self.c2s_port,
            "direct_tls_port": self.direct_tls_port,
            "tls": self.tls,
            "require_encryption": self.require_encryption,
            "allow_registration": self.allow_registration,
            "smacks": self.smacks,
            "sasl2": self.sasl2,
            "extra_config": self.extra_config,
            "config_path": self.config_path,
            "log_path": self.log_path,
            "ca_path": self.ca_path if self.tls else None,
            "ca_der_path": self.ca_der_path if self.tls else None,
            "accounts": self.accounts,
        }

    def nodes(self):
        """One entry: Prosody runs as one process."""
        return [{"name": "prosody", "pid": self.pid if self.is_running() else None, "address": self.listen,
                 "c2s_port": self.c2s_port, "direct_tls_port": self.direct_tls_port,
                 "running": self.is_running()}]

    @classmethod
    def load(cls, state_dir):
        """Reattach to the server recorded in ``state_dir/server.json`` (running or not)."""
        state = read_state(state_dir)
        if state.get("engine", cls.engine) != cls.engine:
            raise ServerError("the server in %s is %s, not %s" % (state_dir, state["engine"], cls.engine))
        server = cls(state_dir, domain=state["domain"], port=state["c2s_port"],
                     direct_tls_port=state["direct_tls_port"] if state["direct_tls_port"] else False,
                     tls=state["tls"], require_encryption=state["require_encryption"],
                     allow_registration=state["allow_registration"], smacks=state["smacks"],
                     sasl2=state.get("sasl2", True), extra_config=state.get("extra_config", ""),
                     listen=state.get("listen") or LOOPBACK)
        server.pid = state.get("pid")
        server.accounts = dict(state.get("accounts") or {})
        if not server.is_running():
            server.pid = None
        return server


class _PortTaken(ServerError):
    pass
