"""What every local server engine has: the interface, the state file, and probes of a c2s port.

A server engine runs an XMPP server from a config it generates in one state directory, and records
what it started in ``server.json`` there, with ``"engine"`` naming the engine, so that another process
can reattach (``host_tools.engines.load``). Every engine offers:

- ``start()`` / ``stop()`` / ``is_running()``, and ``nodes()``: one dict per server process (name, pid,
  address, ports, running);
- ``addresses()``: the (host, port) pairs where clients connect with STARTTLS, one per node;
- ``register(user, password, replace, remember)`` / ``unregister(user)``: accounts by the engine's
  admin command, with this server's config (and node);
- ``domain``, ``c2s_port``, ``direct_tls_port``, ``listen``, ``tls``, ``ca_path`` / ``ca_der_path`` (the
  test CA of ``host_tools.testca``), ``accounts`` (the passwords it was asked to remember).
"""

import json
import os
import re
import socket

STATE_FILE = "server.json"
LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT = 2.0
POLL_INTERVAL = 0.05
MAX_FEATURES_BYTES = 64 * 1024
LOG_TAIL_BYTES = 4000

_DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN_RE = re.compile(r"^%s(\.%s)*$" % (_DNS_LABEL, _DNS_LABEL))
# What the admin commands and a JID local part both take without escaping.
USER_RE = re.compile(r"^[^\s@/\"&'<>:]{1,1023}$")


class ServerError(Exception):
    """The local server could not be configured, started, stopped or managed."""


class AccountExists(ServerError):
    """``register(..., replace=False)``: the account is already there."""


class ServerEngine:
    """Base of the engines: what they share. Subclasses set ``engine`` and ``admin_tool``."""

    engine = None
    admin_tool = None
    sasl2 = False

    def jid(self, user):
        return "%s@%s" % (user, self.domain)

    def addresses(self):
        """[(host, port)]: where clients connect with STARTTLS (or plaintext), one pair per node."""
        return [(node["address"], node["c2s_port"]) for node in self.nodes()]

    def direct_tls_addresses(self):
        return [(node["address"], node["direct_tls_port"]) for node in self.nodes() if node["direct_tls_port"]]

    def _save_state(self):
        write_state(self.state_path, self._state())

    def _save_state_if_present(self):
        """Keep server.json up to date once there is one (or a running server that should have one)."""
        if os.path.exists(self.state_path) or self.is_running():
            self._save_state()

    def __enter__(self):
        if not self.is_running():
            self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()


def check_user(user, password=None):
    if not USER_RE.match(user):
        raise ServerError("not a valid user name: %r" % user)
    if password is not None and ("\n" in password or "\r" in password or not password):
        raise ServerError("password must be one non-empty line")


def read_state(state_dir):
    """The parsed ``server.json`` of ``state_dir``."""
    path = os.path.join(os.path.abspath(state_dir), STATE_FILE)
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        raise ServerError("no server state in %s" % state_dir) from None
    except ValueError as e:
        raise ServerError("unreadable %s: %s" % (path, e)) from None
    if not isinstance(state, dict):
        raise ServerError("unreadable %s: not a JSON object" % path)
    return state


def write_state(path, state):
    # Written whole to a temporary file and renamed: a reader never sees half a file.
    # Private: it holds the test accounts' passwords.
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def free_port(host=LOOPBACK):
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count, host=LOOPBACK):
    # Hold every socket open until all are picked, so the ports differ.
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stream_header(domain):
    return ("<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>" % domain).encode()


def read_until(sock, marker, limit=MAX_FEATURES_BYTES):
    """Read from ``sock`` until ``marker`` has arrived; return everything read. The socket's timeout applies."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ServerError("connection closed before %r; got %r" % (marker, data[-200:]))
        data += chunk
        if len(data) > limit:
            raise ServerError("no %r within %d bytes" % (marker, limit))
    return data


def stream_features(port, domain="localhost", host=LOOPBACK, ssl_context=None, timeout=PROBE_TIMEOUT):
    """Open a c2s stream and return the server's first ``<stream:features>`` (raw bytes, with the header).

    With ``ssl_context`` the connection is direct TLS (XEP-0368) with SNI ``domain``.
    """
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = ssl_context.wrap_socket(raw, server_hostname=domain) if ssl_context else raw
        try:
            sock.sendall(stream_header(domain))
            data = read_until(sock, b"</stream:features>")
            sock.sendall(b"</stream:stream>")
            return data
        finally:
            if sock is not raw:
                sock.close()


def port_open(port, host=LOOPBACK, timeout=PROBE_TIMEOUT):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True if ``pid`` is a live (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the ")" that ends the command name.
    return stat[stat.rindex(")") + 2] not in "ZX"


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def tail(path, size=LOG_TAIL_BYTES, start=0):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(start, end - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def listen_names(listen):
    """Extra names for the server certificate of a server that listens on ``listen``: the address
    itself and, beyond loopback, this host's name (how a board on the network may reach it)."""
    if listen in (LOOPBACK, "localhost"):
        return []
    names = [listen]
    host = socket.gethostname()
    if host and DOMAIN_RE.match(host):
        names.append(host)
    fqdn = socket.getfqdn()
    if fqdn and fqdn != host and DOMAIN_RE.match(fqdn):
        names.append(fqdn)
    return names


def group_alive(pgid):
    """True if a live process is left in process group ``pgid`` (a server started in a session of its own)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if fields[0] not in "ZX" and int(fields[2]) == pgid:
            return True
    return False
