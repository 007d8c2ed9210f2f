"""A local ejabberd (Debian's package) for tests and demos: one node, or several joined in one cluster.

Everything lives in one state directory: the test CA (``pki/``, see ``testca``), an Erlang cookie of its
own, and one folder per node (``node1/``, ``node2/`` ...) with its generated ``ejabberd.yml``, an
``ejabberdctl.cfg``, the Mnesia spool and the logs; ``server.json`` records the nodes' pids and ports.

Each node is started by ``ejabberdctl foreground`` in a session of its own, with our config, spool, log
folder and node name (``xl<tag>n<i>@localhost``, the tag derived from the state directory), so it never
meets the system's ``ejabberd@localhost`` node or its cookie. ``ejabberdctl.cfg`` makes ejabberdctl run
the node as the calling user (root), where Debian's script would switch to the ``ejabberd`` user. The
nodes of a cluster listen on the same address on ports of their own; node 2 and up ``join_cluster``
node 1, and ``list_cluster`` must then name them all. Erlang's port mapper (epmd) is used if it runs;
otherwise one is started and recorded, and ``stop`` ends it when no other node is registered there.

The config: c2s with STARTTLS required plus a direct TLS port (XEP-0368), the test CA, passwords stored
as given (so that SCRAM-SHA-1, SCRAM-SHA-256 and PLAIN are all offered: a test server's choice),
mod_stream_mgmt, ping, disco, roster, offline, version, and in-band registration open to the trusted
networks (loopback by default) with ``registration_timeout: infinity``: ejabberd's default allows one
registration per IP address every 600 s.
"""

import hashlib
import os
import secrets
import signal
import subprocess
import time

from host_tools import testca
from host_tools.engines.base import (DOMAIN_RE, LOOPBACK, POLL_INTERVAL, STATE_FILE, AccountExists, ServerEngine,
                                     ServerError, check_user, cmdline, free_ports, group_alive, listen_names, pid_alive,
                                     port_open, read_state, stream_features, tail)

EJABBERDCTL = "ejabberdctl"
EPMD = "epmd"
CONFIG_FILE = "ejabberd.yml"
CTL_CONFIG_FILE = "ejabberdctl.cfg"
CONSOLE_FILE = "console.log"  # ejabberdctl's own output: errors printed before logging is set up
LOG_DIR = "log"
LOG_FILE = "ejabberd.log"
SPOOL_DIR = "spool"
PKI_DIR = "pki"
COOKIE_FILE = ".erlang.cookie"  # read from $HOME by every Erlang VM we start (nodes and ejabberdctl)
NODE_DIR = "node%d"
ERLANG_HOST = "localhost"  # short node names on this host
MAX_NODES = 8
COOKIE_BYTES = 24
START_TIMEOUT = 60.0  # an Erlang VM and Mnesia on a loaded machine
STOP_TIMEOUT = 15.0
CTL_TIMEOUT = 60.0
PORT_ATTEMPTS = 3
DEFAULT_TRUSTED_NETWORKS = ("127.0.0.0/8",)
# Stanza size limit for c2s, as Prosody's default; a device's stanzas are far smaller.
MAX_STANZA_SIZE = 262144
# XEP-0198: how many unacknowledged stanzas a session may queue, and how long it stays resumable.
STREAM_MGMT_MAX_ACK_QUEUE = 5000
STREAM_MGMT_RESUME_TIMEOUT = 300
_BIND_FAILURES = ("Failed to start listener", "eaddrinuse")


def _yaml_string(value):
    # A double-quoted YAML scalar is JSON's string syntax.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"%s"' % escaped


def _node_tag(state_dir):
    return hashlib.sha256(state_dir.encode()).hexdigest()[:8]


class EjabberdNode:
    """One ejabberd node: its folder, name, ports and process."""

    def __init__(self, server, index, c2s_port=None, direct_tls_port=None, pid=None):
        self.server = server
        self.index = index  # 1-based
        self.directory = os.path.join(server.state_dir, NODE_DIR % index)
        self.name = "xl%sn%d@%s" % (_node_tag(server.state_dir), index, ERLANG_HOST)
        self.config_path = os.path.join(self.directory, CONFIG_FILE)
        self.ctl_config_path = os.path.join(self.directory, CTL_CONFIG_FILE)
        self.console_path = os.path.join(self.directory, CONSOLE_FILE)
        self.log_dir = os.path.join(self.directory, LOG_DIR)
        self.log_path = os.path.join(self.log_dir, LOG_FILE)
        self.spool_dir = os.path.join(self.directory, SPOOL_DIR)
        self.c2s_port = c2s_port
        self.direct_tls_port = direct_tls_port
        self.pid = pid
        self.process = None

    def ctl_options(self):
        """ejabberdctl's options for this node: its ctl config, config, logs, spool and node name."""
        return ["--ctl-config", self.ctl_config_path, "--config", self.config_path, "--logs", self.log_dir,
                "--spool", self.spool_dir, "--node", self.name]

    def is_running(self):
        if self.process is not None:
            return self.process.poll() is None and group_alive(self.pid)
        # Guards against a recycled pid: it must be a live ejabberdctl on this node's config.
        return (self.pid is not None and pid_alive(self.pid)
                and self.ctl_config_path.encode() in cmdline(self.pid))

    def describe(self):
        running = self.is_running()
        return {"name": self.name, "pid": self.pid if running else None, "address": self.server.listen,
                "c2s_port": self.c2s_port, "direct_tls_port": self.direct_tls_port, "running": running}

    def render_config(self):
        server = self.server
        q = _yaml_string
        pki = server.pki
        lines = [
            "# Generated by host_tools.engines.ejabberd; rewritten on every start.",
            "hosts:",
            "  - %s" % q(server.domain),
            "loglevel: info",
            "log_rotate_count: 1",
            "hide_sensitive_log_data: true",
        ]
        if server.tls:
            lines += ["certfiles:"] + ["  - %s" % q(path) for path in (pki.server_cert, pki.server_key, pki.ca_cert)]
            lines += ["ca_file: %s" % q(pki.ca_cert)]
        lines += ["listen:",
                  "  - port: %d" % self.c2s_port,
                  "    ip: %s" % q(server.listen),
                  "    module: ejabberd_c2s",
                  "    max_stanza_size: %d" % MAX_STANZA_SIZE]
        if server.tls:
            lines += ["    starttls_required: true"]
            if self.direct_tls_port:
                lines += ["  - port: %d" % self.direct_tls_port,
                          "    ip: %s" % q(server.listen),
                          "    module: ejabberd_c2s",
                          "    max_stanza_size: %d" % MAX_STANZA_SIZE,
                          "    tls: true"]
        lines += [
            "# No s2s listener: nothing here federates.",
            "auth_method: internal",
            "# Passwords as given, so that every SCRAM variant (and PLAIN) can be offered; a test server.",
            "auth_password_format: plain",
            "# ejabberd's default is 600 s between two registrations from one IP address.",
            "registration_timeout: %s" % ("infinity" if server.registration_timeout_s is None
                                          else server.registration_timeout_s),
            "acl:",
            "  trusted_networks:",
            "    ip:",
        ] + ["      - %s" % q(network) for network in server.trusted_networks] + [
            "access_rules:",
            "  register:",
            "    allow: all",
            "  register_from:",
            "    allow: trusted_networks",
            "api_permissions:",
            "  \"console commands\":",
            "    from:",
            "      - ejabberd_ctl",
            "    who: all",
            "    what: \"*\"",
            "modules:",
            "  mod_admin_extra: {}  # ejabberdctl change_password",
            "  mod_disco: {}",
            "  mod_ping: {}",
            "  mod_roster: {}",
            "  mod_offline: {}",
            "  mod_version:",
            "    show_os: false",
            "  mod_stream_mgmt:",
            "    max_ack_queue: %d" % STREAM_MGMT_MAX_ACK_QUEUE,
            "    resume_timeout: %d" % STREAM_MGMT_RESUME_TIMEOUT,
        ]
        if server.allow_registration:
            lines += ["  mod_register:",
                      "    access: register",
                      "    ip_access: register_from"]
        return "\n".join(lines) + "\n"

    def render_ctl_config(self):
        return "\n".join([
            "# Generated by host_tools.engines.ejabberd; ejabberdctl (a shell script) sources it.",
            "# Run the node and the admin commands as the calling user, not as the 'ejabberd' user.",
            "EXEC_CMD=as_current_user",
            "ERLANG_NODE=%s" % self.name,
            "INET_DIST_INTERFACE=127.0.0.1",
            "EJABBERD_BYPASS_WARNINGS=true",
            "ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"",
            "",
        ])


class EjabberdServer(ServerEngine):
    """ejabberd in ``state_dir``: ``nodes`` nodes (1 to MAX_NODES) in one cluster.

    ``ports``: [(c2s, direct TLS)] per node, None to pick free ones at start. ``listen``: the address
    every node listens on. ``trusted_networks``: where in-band registration is open (CIDR).
    ``registration_timeout_s``: seconds between two in-band registrations from one address (None: no
    limit; ejabberd's own default is 600).
    """

    engine = "ejabberd"
    admin_tool = EJABBERDCTL

    def __init__(self, state_dir, domain="localhost", nodes=1, ports=None, tls=True, allow_registration=True,
                 listen=LOOPBACK, trusted_networks=DEFAULT_TRUSTED_NETWORKS, registration_timeout_s=None):
        if not DOMAIN_RE.match(domain):
            raise ServerError("not a valid XMPP domain: %r" % domain)
        if not 1 <= nodes <= MAX_NODES:
            raise ServerError("nodes: 1 to %d, not %r" % (MAX_NODES, nodes))
        self.state_dir = os.path.abspath(state_dir)
        self.domain = domain
        self.tls = bool(tls)
        self.require_encryption = self.tls
        self.allow_registration = bool(allow_registration)
        self.listen = listen
        self.trusted_networks = list(trusted_networks)
        self.registration_timeout_s = registration_timeout_s  # None: no limit (ejabberd's default is 600)
        self.accounts = {}
        self.epmd_pid = None
        self.epmd_port = None  # the port mapper of this server's own, on a free port (ERL_EPMD_PORT)
        self._epmd_process = None
        self.state_path = os.path.join(self.state_dir, STATE_FILE)
        self.cookie_path = os.path.join(self.state_dir, COOKIE_FILE)
        self.pki = testca.TestPKI(os.path.join(self.state_dir, PKI_DIR))
        self.ca_path = self.pki.ca_cert
        self.ca_der_path = self.pki.ca_der
        self._wanted_ports = list(ports) if ports else None
        if self._wanted_ports is not None and len(self._wanted_ports) != nodes:
            raise ServerError("ports: one (c2s, direct TLS) pair per node")
        self.node_list = [EjabberdNode(self, i + 1, *(self._wanted_ports[i] if ports else (None, None)))
                          for i in range(nodes)]

    def __repr__(self):
        return "EjabberdServer(%r, domain=%r, nodes=%r)" % (
            self.state_dir, self.domain, [(n.name, n.c2s_port, n.pid) for n in self.node_list])

    # What the tools read from a single server: node 1's.
    @property
    def c2s_port(self):
        return self.node_list[0].c2s_port

    @property
    def direct_tls_port(self):
        return self.node_list[0].direct_tls_port if self.tls else None

    @property
    def pid(self):
        return self.node_list[0].pid if self.node_list[0].is_running() else None

    @property
    def log_path(self):
        return self.node_list[0].log_path

    def nodes(self):
        return [node.describe() for node in self.node_list]

    def is_running(self):
        """True if any node of ours is alive."""
        return any(node.is_running() for node in self.node_list)

    # -- start -------------------------------------------------------------------------------------

    def _pick_ports(self):
        missing = sum(1 for node in self.node_list for port in (node.c2s_port, node.direct_tls_port)
                      if port is None)
        picked = iter(free_ports(missing, self.listen))
        for node in self.node_list:
            if node.c2s_port is None:
                node.c2s_port = next(picked)
            if node.direct_tls_port is None:
                node.direct_tls_port = next(picked)

    def _prepare(self):
        os.makedirs(self.state_dir, exist_ok=True)
        if not os.path.exists(self.cookie_path):
            fd = os.open(self.cookie_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(COOKIE_BYTES))
        if self.tls:
            testca.ensure(self.pki.directory, self.domain, extra_names=listen_names(self.listen))
        for node in self.node_list:
            for directory in (node.directory, node.log_dir, node.spool_dir):
                os.makedirs(directory, mode=0o750, exist_ok=True)
            with open(node.config_path, "w") as f:
                f.write(node.render_config())
            with open(node.ctl_config_path, "w") as f:
                f.write(node.render_ctl_config())

    def _env(self):
        env = dict(os.environ)
        env["HOME"] = self.state_dir  # where Erlang reads the cookie
        if self.epmd_port is not None:
            # Erlang's port mapper of this server's own: nodes of other servers (another test run, the
            # system's ejabberd) never register with it, so stop() can always end it.
            env["ERL_EPMD_PORT"] = str(self.epmd_port)
        return env

    def start(self, timeout=START_TIMEOUT):
        """Write the configs, start every node, join them in one cluster, and wait until c2s answers."""
        if self.is_running():
            raise ServerError("already running (%s)" % ", ".join(
                "%s pid %s" % (n.name, n.pid) for n in self.node_list if n.is_running()))
        self._check_recorded()
        self._pick_ports()
        self._prepare()
        try:
            self._ensure_epmd()
            log_starts = []
            for node in self.node_list:
                log_starts.append(os.path.getsize(node.log_path) if os.path.exists(node.log_path) else 0)
                self._spawn(node)
            deadline = time.monotonic() + timeout
            for node, log_start in zip(self.node_list, log_starts):
                self._wait_ready(node, deadline, log_start)
            if len(self.node_list) > 1:
                self._join_cluster(deadline)
        except BaseException:
            self.stop()
            raise
        self._save_state()
        return self

    def _check_recorded(self):
        # Another process may have started this state directory's nodes: do not start them twice.
        try:
            recorded = load(self.state_dir)
        except (ServerError, KeyError, TypeError, ValueError):
            return
        if recorded.is_running():
            raise ServerError("a server on %s is already running; reattach with EjabberdServer.load()"
                              % self.state_dir)

    def _ensure_epmd(self):
        if self.epmd_port is None:
            self.epmd_port = free_ports(1, LOOPBACK)[0]
        if self._epmd_answers():
            return  # ours, from an earlier start of this state directory
        try:
            self._epmd_process = subprocess.Popen([EPMD, "-address", LOOPBACK], stdin=subprocess.DEVNULL,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                  env=self._env(), start_new_session=True)
        except FileNotFoundError:
            raise ServerError("%r not found: install Erlang (apt-get install ejabberd pulls it in)" % EPMD) from None
        self.epmd_pid = self._epmd_process.pid
        deadline = time.monotonic() + START_TIMEOUT
        while not self._epmd_answers():
            if self._epmd_process.poll() is not None or time.monotonic() > deadline:
                raise ServerError("epmd did not start")
            time.sleep(POLL_INTERVAL)

    def _epmd_answers(self):
        try:
            return subprocess.run([EPMD, "-names"], capture_output=True, env=self._env(),
                                  timeout=CTL_TIMEOUT).returncode == 0
        except FileNotFoundError:
            raise ServerError("%r not found: install Erlang (apt-get install ejabberd pulls it in)" % EPMD) from None

    def _spawn(self, node):
        with open(node.console_path, "ab") as console:
            try:
                node.process = subprocess.Popen(
                    [EJABBERDCTL] + node.ctl_options() + ["foreground"],
                    stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, cwd=node.directory,
                    env=self._env(),
                    # Own session: Ctrl-C in the caller's terminal does not reach it, a CLI that started it
                    # can exit, and stop() signals the node's whole process group.
                    start_new_session=True)
            except FileNotFoundError:
                raise ServerError("%r not found: install ejabberd (apt-get install ejabberd)" % EJABBERDCTL) from None
        node.pid = node.process.pid

    def _wait_ready(self, node, deadline, log_start=0):
        last_error = None
        while True:
            log = tail(node.log_path, size=1 << 20, start=log_start)
            for marker in _BIND_FAILURES:
                if marker in log:
                    line = next(entry for entry in log.splitlines() if marker in entry)
                    raise ServerError("ejabberd node %d could not open a port: %s" % (node.index, line.strip()))
            if not node.is_running():
                raise ServerError("ejabberd node %d exited during start-up\n%s\n%s" % (
                    node.index, tail(node.console_path), tail(node.log_path, start=log_start)))
            try:
                features = stream_features(node.c2s_port, self.domain, host=self.listen)
                if self.tls and b"starttls" not in features:
                    raise ServerError("no <starttls/> in stream features: %r" % features)
                if self.tls and node.direct_tls_port and not port_open(node.direct_tls_port, self.listen):
                    raise ServerError("direct TLS port %d not open yet" % node.direct_tls_port)
                return
            except (OSError, ServerError) as e:
                last_error = e
            if time.monotonic() > deadline:
                raise ServerError("ejabberd node %d not ready (%s); log:\n%s" % (
                    node.index, last_error, tail(node.log_path, start=log_start)))
            time.sleep(POLL_INTERVAL * 4)

    def _join_cluster(self, deadline):
        first = self.node_list[0]
        members = self.cluster()
        for node in self.node_list[1:]:
            if node.name in members:
                continue  # a restart: Mnesia remembers the cluster
            self.ctl("join_cluster", first.name, node=node)
            self._wait_ready(node, deadline)
        members = self.cluster()
        missing = [node.name for node in self.node_list if node.name not in members]
        if missing:
            raise ServerError("list_cluster does not list %s: %s" % (", ".join(missing), " ".join(members)))

    def cluster(self):
        """The node names ``list_cluster`` gives (asked of node 1)."""
        return self.ctl("list_cluster").split()

    # -- stop --------------------------------------------------------------------------------------

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop every node (SIGTERM to its process group, SIGKILL after ``timeout``), then our epmd."""
        for node in self.node_list:
            if node.is_running():
                self._signal(node.pid, signal.SIGTERM)
        for node in self.node_list:
            self._wait_gone(node, timeout)
            node.pid = None
            node.process = None
        self._stop_epmd(timeout)
        if os.path.exists(self.state_path):
            self._save_state()

    @staticmethod
    def _signal(pid, sig):
        try:
            os.killpg(pid, sig)  # the node's session: ejabberdctl, the Erlang VM and its helper
        except ProcessLookupError:
            pass

    def _wait_gone(self, node, timeout):
        # ejabberdctl exits at once on SIGTERM; the Erlang VM stops gracefully, which takes seconds.
        # The node is gone when nothing is left in its process group.
        if node.pid is None:
            return
        for sig in (None, signal.SIGKILL):
            if sig is not None:
                self._signal(node.pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if node.process is not None:
                    node.process.poll()
                else:
                    try:  # reap it if it is our child after all
                        os.waitpid(node.pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                if not group_alive(node.pid):
                    return
                time.sleep(POLL_INTERVAL)
        raise ServerError("ejabberd node %s (pid %s) did not exit" % (node.name, node.pid))

    def _stop_epmd(self, timeout):
        pid = self.epmd_pid
        if pid is None:
            return
        ours = self._epmd_process is not None or (pid_alive(pid) and os.path.basename(
            (cmdline(pid) or [b""])[0]) == EPMD.encode())
        if ours:  # on a port of this server's own: its nodes, stopped now, were its only users
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self._epmd_process is not None:
                self._epmd_process.wait(timeout)
            self.epmd_pid = None
            self._epmd_process = None

    # -- admin commands and accounts ---------------------------------------------------------------

    def admin_command(self, index=1):
        """The ejabberdctl command line (a list) for node ``index``, with its config and node name."""
        return [EJABBERDCTL] + self.node_list[index - 1].ctl_options()

    def ctl(self, *args, node=None):
        """Run ``ejabberdctl ARGS`` against a node (default: the first running one); its output."""
        if node is None:
            node = next((n for n in self.node_list if n.is_running()), None)
            if node is None:
                raise ServerError("ejabberd is not running: start it first ('xmpp-lite server start "
                                  "--engine ejabberd')")
        try:
            result = subprocess.run([EJABBERDCTL] + node.ctl_options() + list(args), capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL, cwd=node.directory, env=self._env(),
                                    timeout=CTL_TIMEOUT)
        except FileNotFoundError:
            raise ServerError("%r not found: install ejabberd (apt-get install ejabberd)" % EJABBERDCTL) from None
        except subprocess.TimeoutExpired:
            raise ServerError("ejabberdctl %s: no answer within %.0f s" % (args[0], CTL_TIMEOUT)) from None
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise ServerError("ejabberdctl %s failed (%d): %s" % (args[0], result.returncode, output))
        return output

    def register(self, user, password, replace=True, remember=True):
        """Create ``user@domain`` with ejabberdctl (a running node is needed).

        The password is on ejabberdctl's command line while it runs (ejabberdctl takes no other way).
        """
        check_user(user, password)
        try:
            self.ctl("register", user, self.domain, password)
        except ServerError as error:
            if "conflict" not in str(error) and "already registered" not in str(error):
                raise ServerError(str(error).replace(password, "********")) from None
            if not replace:
                raise AccountExists("%s already exists" % self.jid(user)) from None
            self.ctl("change_password", user, self.domain, password)
        if remember:
            self.accounts[user] = password
            self._save_state_if_present()

    def unregister(self, user):
        check_user(user)
        self.ctl("unregister", user, self.domain)
        self.accounts.pop(user, None)
        self._save_state_if_present()

    def registered_users(self):
        return self.ctl("registered_users", self.domain).split()

    # -- state file --------------------------------------------------------------------------------

    def _state(self):
        return {
            "engine": self.engine,
            "domain": self.domain,
            "listen": self.listen,
            "tls": self.tls,
            "allow_registration": self.allow_registration,
            "trusted_networks": self.trusted_networks,
            "registration_timeout_s": self.registration_timeout_s,
            "nodes": [{"name": n.name, "pid": n.pid if n.is_running() else None, "c2s_port": n.c2s_port,
                       "direct_tls_port": n.direct_tls_port} for n in self.node_list],
            "epmd_pid": self.epmd_pid,
            "epmd_port": self.epmd_port,
            # What readers of a single server look for.
            "pid": self.pid,
            "c2s_port": self.c2s_port,
            "direct_tls_port": self.direct_tls_port,
            "ca_path": self.ca_path if self.tls else None,
            "ca_der_path": self.ca_der_path if self.tls else None,
            "log_path": self.log_path,
            "accounts": self.accounts,
        }

    @classmethod
    def load(cls, state_dir):
        """Reattach to the nodes recorded in ``state_dir/server.json`` (running or not)."""
        state = read_state(state_dir)
        if state.get("engine") != cls.engine:
            raise ServerError("the server in %s is %s, not %s" % (state_dir, state.get("engine", "prosody"),
                                                                 cls.engine))
        nodes = state["nodes"]
        server = cls(state_dir, domain=state["domain"], nodes=len(nodes),
                     ports=[(n["c2s_port"], n["direct_tls_port"]) for n in nodes], tls=state["tls"],
                     allow_registration=state["allow_registration"], listen=state.get("listen") or LOOPBACK,
                     trusted_networks=state.get("trusted_networks") or DEFAULT_TRUSTED_NETWORKS,
                     registration_timeout_s=state.get("registration_timeout_s"))
        for node, recorded in zip(server.node_list, nodes):
            node.pid = recorded.get("pid")
            if not node.is_running():
                node.pid = None
        server.epmd_pid = state.get("epmd_pid")
        server.epmd_port = state.get("epmd_port")
        server.accounts = dict(state.get("accounts") or {})
        return server


def load(state_dir):
    return EjabberdServer.load(state_dir)
