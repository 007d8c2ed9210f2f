"""`xmpp-lite provision`: device accounts with random passwords, and a board config.json for each.

    xmpp-lite provision --count 3 --prefix sensor-          # the local server of `xmpp-lite server start`
    xmpp-lite provision --server example.net --ca ca.pem --count 3 --prefix sensor- --wifi-ssid home

For each device NAME (``PREFIX1`` ... ``PREFIXN``) the account ``NAME@DOMAIN`` is created and
``OUT/NAME/config.json`` written (mode 0600: it holds the password), with ``ca.der`` beside it when the CA
is known. Every config passes ``xmpp_lite.config.check``.

Where. Without ``--server``, or with a ``--server`` that names it (its domain, its listen address or a
loopback address), the target is the local server recorded in the state directory (``--state``,
``$XMPP_LITE_STATE``, ``.state/server``), Prosody or ejabberd (``--engine`` checks which): domain,
address, port, TLS and CA come from there, and its admin command (prosodyctl, or ejabberdctl with the
server's own node and config) can create accounts. A config that points at a loopback address is for
a board on this host only (the VM, a simboard): provision warns, and ``server start --listen ADDR``
makes a server that boards on the network reach.

How (``--method``). ``ibr``: in-band registration (XEP-0077) by xmpp_lite's own client. ``prosodyctl``:
the local Prosody's admin tool (works with the server stopped too). ``ejabberdctl``: ``ejabberdctl
register USER HOST PASSWORD``: the local ejabberd's, or, for a server elsewhere, the one on this host
with ``--ejabberd-node`` and ``--ejabberd-config`` (without them: ejabberdctl's defaults, the system
node); the password is on its command line, where local users can see it in the process list while it
runs. ``auto`` (default): in-band registration, and the admin command once the server says it does not
offer it or refuses it for now (``resource-constraint``: ejabberd's ``registration_timeout``, by default
one registration per IP address every 600 s), or when the local server is stopped.

Safety. Nothing is overwritten without ``--force``, and that is checked before any account is created.
An account that exists already is an error; with ``--force`` its password is reset by the admin tool
(in-band registration cannot do that). Passwords are never printed, not even in errors.
"""

import argparse
import ipaddress
import json
import os
import secrets
import sys

from host_tools.accounts import Accounts
from host_tools.cli import CommandError, port_number
from host_tools.cmd_server import default_state_dir, engine_argument
from host_tools.cmd_server import load as load_server

DESCRIPTION = "Create device accounts and write one board config.json per device."

METHODS = ("auto", "ibr", "prosodyctl", "ejabberdctl")
TLS_MODES = ("required", "direct", "none")
DEFAULT_OUT = "provisioned"
DEFAULT_CONTROLLER = "controller"
CONFIG_FILE = "config.json"
CONTROLLER_FILE = "controller.json"
CA_FILE = "ca.der"
DEFAULT_PORTS = {"required": 5222, "none": 5222, "direct": 5223}
PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 random bits
MAX_COUNT = 1000
MAX_FIRST = 10 ** 6
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# A JID local part that needs no escaping, and a safe folder name.
_BAD_LOCAL_CHARS = set(" \t\r\n@/\\\"&'<>:")


def _whole(low, high):
    def parse(value):
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError("%r is not a whole number from %d to %d" % (value, low, high))
        return number
    return parse


def add_arguments(parser):
    parser.add_argument("--server", metavar="S",
                        help="the XMPP server: a domain, or HOST[:PORT] (default: the local server in "
                             "the state directory)")
    parser.add_argument("--domain", metavar="D",
                        help="the JID domain when it is not --server's host (e.g. --server 192.0.2.7)")
    parser.add_argument("--count", type=_whole(1, MAX_COUNT), required=True, metavar="N",
                        help="how many devices (1 to %d)" % MAX_COUNT)
    parser.add_argument("--prefix", required=True,
                        help="device names are PREFIX1 ... PREFIXN (with --first, from there)")
    parser.add_argument("--first", type=_whole(0, MAX_FIRST), default=1, metavar="K",
                        help="number of the first device (default 1), to add devices to a fleet")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="where to write DIR/NAME/config.json and ca.der (default: %s)" % DEFAULT_OUT)
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing files, and reset the password of existing accounts "
                             "(needs an admin tool)")
    parser.add_argument("--controller", metavar="JID",
                        help="the JID that receives the reports and commands the boards (default: "
                             "%s@DOMAIN; a bare name gets @DOMAIN)" % DEFAULT_CONTROLLER)
    parser.add_argument("--create-controller", action="store_true",
                        help="also create the controller's account and write its credentials to "
                             "DIR/%s (mode 0600)" % CONTROLLER_FILE)
    parser.add_argument("--state", metavar="DIR",
                        help="state directory of the local server from 'xmpp-lite server start' "
                             "(default: $XMPP_LITE_STATE, else .state/server, used when it exists)")
    engine_argument(parser, "; checks that the local server is that one")
    parser.add_argument("--port", type=port_number, metavar="P",
                        help="c2s port (default: --server's, the local server's, else 5222; 5223 with "
                             "--tls direct)")
    parser.add_argument("--tls", choices=TLS_MODES,
                        help="required: STARTTLS (default); direct: TLS from the first byte; none: "
                             "plaintext (default for a local server started with --no-tls)")
    parser.add_argument("--ca", metavar="FILE",
                        help="CA certificate (PEM or DER) that signs the server's certificate; copied to "
                             "each device as ca.der (default: the local server's test CA)")
    parser.add_argument("--method", choices=METHODS, default="auto",
                        help="how accounts are created: ibr (in-band registration), prosodyctl (the "
                             "local Prosody's), ejabberdctl (the local ejabberd's, or with --ejabberd-node), "
                             "or auto (default: in-band, else the admin command)")
    parser.add_argument("--ejabberd-node", metavar="NODE",
                        help="for an ejabberd elsewhere run from this host: its Erlang node name for "
                             "ejabberdctl --node (e.g. ejabberd@localhost)")
    parser.add_argument("--ejabberd-config", metavar="FILE",
                        help="its ejabberd.yml, for ejabberdctl --config")
    parser.add_argument("--network-profile", metavar="FILE",
                        help="the boards' network settings as JSON, the \"network\" object of config.json "
                             "(e.g. {\"kind\": \"wifi\", \"ssid\": \"home\", \"password\": \"...\"}), "
                             "instead of --wifi-ssid or --apn")
    parser.add_argument("--wifi-ssid", metavar="SSID",
                        help="Wi-Fi network for the boards (network kind wifi)")
    parser.add_argument("--wifi-password", metavar="PASSWORD", help="the Wi-Fi password (with --wifi-ssid)")
    parser.add_argument("--apn", help="the carrier's access point for a modem board (network kind modem)")
    parser.add_argument("--apn-user", metavar="USER", help="PAP user name for the APN, if the carrier wants one")
    parser.add_argument("--apn-password", metavar="PASSWORD", help="PAP password for the APN")


# -- where: the target server ---------------------------------------------------------------------


class Target:
    """Where the devices connect, and what can create accounts there."""

    def __init__(self, domain, host, port, tls, ca_der=None, ca_source=None, local=None, servers=None):
        self.domain = domain
        self.host = host
        self.port = port
        self.servers = servers  # "HOST:PORT" of each node of a cluster, for the configs' xmpp.servers
        self.tls = tls
        self.ca_der = ca_der  # bytes, or None when unknown
        self.ca_source = ca_source
        self.local = local  # the local server (an engine of host_tools.engines), or None


def parse_server(text):
    """(host, port or None) from ``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise CommandError("--server %s: expected [ADDRESS]:PORT" % text)
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or any(c in host for c in " /@"):
        raise CommandError("--server %r: expected a domain or HOST[:PORT]" % text)
    if port is not None:
        try:
            port = port_number(port)
        except argparse.ArgumentTypeError as error:
            raise CommandError("--server %s: %s" % (text, error))
    return host, port


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_ca(path, what):
    """The one DER certificate in a PEM or DER file."""
    from cryptography import x509

    from xmpp_lite.certs import load_ca

    try:
        certs = load_ca(path)
    except OSError as error:
        raise CommandError("%s %s: cannot be read (%s)" % (what, path, error.strerror or error))
    except (ValueError, TypeError) as error:
        raise CommandError("%s %s: not a PEM or DER certificate (%s)" % (what, path, error))
    if len(certs) != 1:
        raise CommandError("%s %s holds %d certificates; give the one CA certificate that signs the server's"
                           % (what, path, len(certs)))
    try:
        x509.load_der_x509_certificate(certs[0])
    except ValueError:
        raise CommandError("%s %s: not a PEM or DER certificate" % (what, path))
    return certs[0]


def _load_local(state_dir, explicit):
    local = load_server(state_dir)
    if local is None and explicit:
        raise CommandError("no local server in %s (start one with 'xmpp-lite server start --state %s')"
                           % (state_dir, state_dir))
    return local


def _names_local(local, host, port):
    """Does --server HOST[:PORT] mean the local server? Its domain, its address or a loopback name, and one of
    its ports."""
    ports = [node["c2s_port"] for node in local.nodes()] + [node["direct_tls_port"] for node in local.nodes()]
    return (host in (local.domain, local.listen) or host in LOOPBACK_HOSTS) and (port is None or port in ports)


def resolve_target(args):
    state_dir = args.state or default_state_dir()
    local = _load_local(state_dir, explicit=args.state is not None or args.engine is not None)
    if local is not None and args.engine is not None and local.engine != args.engine:
        raise CommandError("--engine %s: the local server in %s is %s" % (args.engine, state_dir, local.engine))
    host = port = None
    if args.server is not None:
        host, port = parse_server(args.server)
        if args.port is not None and port is not None and args.port != port:
            raise CommandError("--server %s and --port %d disagree" % (args.server, args.port))
    if local is not None and (host is None or _names_local(local, host, port)):
        return _local_target(local, args, port)
    if host is None:
        raise CommandError("no --server given and no local server in %s: give --server DOMAIN or "
                           "HOST[:PORT], or start one with 'xmpp-lite server start'" % state_dir)
    if args.state is not None:
        raise CommandError("--server %s is not the local server in %s (%s on %s:%d)" % (
            args.server, state_dir, local.domain, local.listen, local.c2s_port))
    if args.method == "prosodyctl":
        raise CommandError("--method prosodyctl works with the local server of 'xmpp-lite server start' "
                           "only (its --state directory)")
    domain = args.domain or host
    if _is_ip(domain):
        raise CommandError("--server %s is an address: give the XMPP domain with --domain" % args.server)
    tls = args.tls or "required"
    port = args.port or port or DEFAULT_PORTS[tls]
    ca_der = _read_ca(args.ca, "--ca") if args.ca else None
    return Target(domain, host, port, tls, ca_der, args.ca)


def _local_target(local, args, port):
    explicit_port = port
    if args.domain is not None and args.domain != local.domain:
        raise CommandError("--domain %s: the local server in %s serves %s" % (args.domain, local.state_dir,
                                                                            local.domain))
    tls = args.tls or ("required" if local.tls else "none")
    if tls != "none" and not local.tls:
        raise CommandError("--tls %s: the local server in %s runs without TLS" % (tls, local.state_dir))
    if tls == "none" and local.require_encryption:
        raise CommandError("--tls none: the local server in %s requires TLS" % local.state_dir)
    if tls == "direct":
        if not local.direct_tls_port:
            raise CommandError("--tls direct: the local server in %s has no direct TLS port" % local.state_dir)
        port = args.port or port or local.direct_tls_port
    else:
        port = args.port or port or local.c2s_port
    ca_der = ca_source = None
    if args.ca:
        ca_der, ca_source = _read_ca(args.ca, "--ca"), args.ca
    elif tls != "none":
        ca_der, ca_source = _read_ca(local.ca_der_path, "the local server's CA"), local.ca_der_path
    # Where the boards connect: the address the server listens on (loopback unless started with --listen),
    # and with several nodes and no port chosen, each of them in turn (the device fails over between them).
    servers = None
    nodes = local.nodes()
    if len(nodes) > 1 and args.port is None and explicit_port is None:
        key = "direct_tls_port" if tls == "direct" else "c2s_port"
        servers = ["%s:%d" % (local.listen, node[key]) for node in nodes]
    return Target(local.domain, local.listen, port, tls, ca_der, ca_source, local, servers)


# -- what: the files ----------------------------------------------------------------------------------


def _network(args):
    if args.network_profile:
        if args.wifi_ssid or args.apn:
            raise CommandError("--network-profile and --wifi-ssid or --apn: give the network one way")
        try:
            with open(args.network_profile) as f:
                network = json.load(f)
        except (OSError, ValueError) as error:
            raise CommandError("--network-profile %s: not a readable JSON file (%s)" % (args.network_profile, error))
        if not isinstance(network, dict) or "kind" not in network:
            raise CommandError("--network-profile %s: need a JSON object with \"kind\" (wifi, modem or none)"
                               % args.network_profile)
        return network
    if args.wifi_ssid and args.apn:
        raise CommandError("--wifi-ssid and --apn: a board uses one network; give one of them")
    if args.wifi_password is not None and not args.wifi_ssid:
        raise CommandError("--wifi-password needs --wifi-ssid")
    if (args.apn_user is not None or args.apn_password is not None) and not args.apn:
        raise CommandError("--apn-user and --apn-password need --apn")
    if args.wifi_ssid:
        return {"kind": "wifi", "ssid": args.wifi_ssid, "password": args.wifi_password or ""}
    if args.apn:
        network = {"kind": "modem", "apn": args.apn}
        if args.apn_user is not None:
            network["user"] = args.apn_user
        if args.apn_password is not None:
            network["password"] = args.apn_password
        return network
    return {"kind": "none"}


def _controller_jid(args, domain):
    controller = args.controller or DEFAULT_CONTROLLER
    if "@" not in controller:
        controller = "%s@%s" % (controller, domain)
    return controller


def device_config(target, network, controller, jid, password):
    if target.servers:
        xmpp = {"jid": jid, "password": password, "servers": target.servers, "tls": target.tls}
    else:
        xmpp = {"jid": jid, "password": password, "server": target.host, "port": target.port, "tls": target.tls}
    if target.tls != "none":
        xmpp["ca"] = CA_FILE
    return {"network": network, "xmpp": xmpp, "controller": controller}


def _check(config, what):
    from xmpp_lite.config import ConfigError, check

    try:
        check(config)
    except ConfigError as error:
        raise CommandError("%s: %s" % (what, error))


def _write_private(path, data):
    """Write ``data`` (str) to ``path`` whole, readable by its owner only (it holds a password)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover .tmp keeps its mode otherwise
        with os.fdopen(fd, "w") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)


def _write_public(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _to_json(value):
    return json.dumps(value, indent=2) + "\n"


def _is_loopback(host):
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_name(prefix):
    if not prefix or any(c in _BAD_LOCAL_CHARS for c in prefix) or prefix.startswith("."):
        raise CommandError("--prefix %r: use letters, digits, '-', '_' or '.' (it becomes the JID's local part "
                           "and a folder name)" % prefix)


# -- the command ----------------------------------------------------------------------------------


def run(args):
    secrets_used = [s for s in (args.wifi_password, args.apn_password) if s]
    try:
        _provision(args, secrets_used)
    except CommandError as error:
        raise CommandError(_scrub(str(error), secrets_used)) from None
    except KeyboardInterrupt:
        raise CommandError("provision: interrupted (the devices listed above are provisioned)") from None


def _scrub(text, secrets_used):
    for secret in secrets_used:
        text = text.replace(secret, "********")
    return text


def _provision(args, secrets_used):
    _check_name(args.prefix)
    network = _network(args)
    target = resolve_target(args)
    controller = _controller_jid(args, target.domain)
    names = ["%s%d" % (args.prefix, number) for number in range(args.first, args.first + args.count)]
    out = args.out

    # Everything that could stop us is checked before the first account exists.
    _check(device_config(target, network, controller, "%s@%s" % (names[0], target.domain), "x"),
           "the config for %s" % names[0])
    if args.create_controller and controller.rpartition("@")[2] != target.domain:
        raise CommandError("--create-controller: %s is not on %s" % (controller, target.domain))
    planned = [os.path.join(out, name, CONFIG_FILE) for name in names]
    if args.create_controller:
        planned.append(os.path.join(out, CONTROLLER_FILE))
    for path in planned:
        if os.path.exists(path) and not args.force:
            raise CommandError("%s exists; --force overwrites it" % path)
        parent = os.path.dirname(path)
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise CommandError("%s exists and is not a folder" % parent)
    accounts = Accounts(target, args.method, args.force, print, args)

    security = {"required": "STARTTLS", "direct": "direct TLS", "none": "no TLS"}[target.tls]
    if target.ca_source:
        security += ", CA %s" % target.ca_source
    print("provisioning %d device%s on %s at %s:%d (%s), accounts by %s" % (
        len(names), "" if len(names) == 1 else "s", target.domain, target.host, target.port, security,
        accounts.describe()))
    os.makedirs(out, exist_ok=True)
    done = []
    try:
        if args.create_controller:
            _provision_controller(accounts, target, controller, out, secrets_used)
        for name in names:
            jid = "%s@%s" % (name, target.domain)
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            secrets_used.append(password)
            config = device_config(target, network, controller, jid, password)
            _check(config, "the config for %s" % name)
            what = accounts.create(name, password)
            folder = os.path.join(out, name)
            os.makedirs(folder, exist_ok=True)
            if target.ca_der is not None:
                _write_public(os.path.join(folder, CA_FILE), target.ca_der)
            path = os.path.join(folder, CONFIG_FILE)
            _write_private(path, _to_json(config))
            done.append(name)
            print("  %-28s %-28s %s" % (jid, what, path))
    except CommandError as error:
        if done:
            raise CommandError("%s (%d of %d devices were provisioned before this)" % (error, len(done), len(names)))
        raise
    print("controller in the configs: %s" % controller)
    if target.tls != "none" and target.ca_der is None:
        print("note: no CA certificate known: put the CA that signs %s's certificate in each folder as %s "
              "(DER), or run again with --ca FILE --force" % (target.domain, CA_FILE))
    if network["kind"] == "none":
        print("note: network kind 'none' (the board is already online, e.g. the MicroPython VM); give "
              "--wifi-ssid, --apn or --network-profile for a real board")
    if _is_loopback(target.host):
        print("warning: the configs point at %s: only a board on this host (the VM, a simboard) reaches it; "
              "for a board on the network, start the server with 'xmpp-lite server start --listen ADDR' "
              "or give --server with an address the board can reach" % target.host, file=sys.stderr)
    print("%d device%s provisioned in %s: copy each folder's files to its board (see docs/hardware.md, "
          "\"Flashing a board\")" % (len(done), "" if len(done) == 1 else "s", out))


def _provision_controller(accounts, target, controller, out, secrets_used):
    user = controller.rpartition("@")[0]
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    secrets_used.append(password)
    what = accounts.create(user, password)
    credentials = {"jid": controller, "password": password, "host": target.host, "port": target.port,
                   "tls": target.tls, "ca": None}
    if target.ca_der is not None:
        ca_path = os.path.abspath(os.path.join(out, CA_FILE))
        _write_public(ca_path, target.ca_der)
        credentials["ca"] = ca_path
    path = os.path.join(out, CONTROLLER_FILE)
    _write_private(path, _to_json(credentials))
    print("  %-28s %-28s %s" % (controller, what, path))
