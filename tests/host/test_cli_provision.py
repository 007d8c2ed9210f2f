"""`xmpp-lite provision`, run as a user runs it, against real Prosody instances from `xmpp-lite server start`.

What is checked is what a user gets: configs that pass xmpp_lite.config.check and log in with a real
xmpp_lite Client, files that are never overwritten without --force, and no password in any output.
"""

import json
import os
import shutil
import stat

import pytest

from clirun import cli, one_line_error
from host_tools.__main__ import main
from host_tools.server import ProsodyServer
from xmpp_lite.client import Client
from xmpp_lite.config import check
from xmpp_lite.sasl import AuthError

TIMEOUT_MS = 10000


def start_server(state_dir, *options):
    result = cli("server", "start", "--state", state_dir, *options)
    assert result.returncode == 0, result.stderr
    return ProsodyServer.load(state_dir)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A server from `xmpp-lite server start`: TLS required, in-band registration allowed."""
    state = tmp_path_factory.mktemp("state")
    try:
        yield start_server(state)
    finally:
        ProsodyServer.load(state).stop()


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    """A server started with --no-registration: accounts only by prosodyctl."""
    state = tmp_path_factory.mktemp("state-closed")
    try:
        yield start_server(state, "--no-registration", "--domain", "closed.test")
    finally:
        ProsodyServer.load(state).stop()


def configs(out):
    """{name: (path, checked config)} for every device folder in ``out``."""
    found = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name, "config.json")
        if os.path.exists(path):
            with open(path) as f:
                found[name] = (path, check(json.load(f)))
    return found


def passwords(out):
    found = [config["xmpp"]["password"] for _, config in configs(out).values()]
    controller = os.path.join(out, "controller.json")
    if os.path.exists(controller):
        with open(controller) as f:
            found.append(json.load(f)["password"])
    return found


def provision(*args, out, ok=True, **kwargs):
    """Run provision; check that no password of ``out`` (before or after) shows in its output."""
    before = passwords(out) if os.path.isdir(out) else []
    result = cli("provision", "--out", out, *args, **kwargs)
    shown = result.stdout + result.stderr
    for password in before + (passwords(out) if os.path.isdir(out) else []):
        assert password not in shown
    if ok:
        assert result.returncode == 0, shown
    return result


def login(path, config=None, password=None):
    """Log in as the board of config.json ``path`` would; returns the bound JID."""
    if config is None:
        with open(path) as f:
            config = check(json.load(f))
    xmpp = config["xmpp"]
    ca = os.path.join(os.path.dirname(path), xmpp["ca"]) if xmpp["ca"] else None
    client = Client(xmpp["jid"], password or xmpp["password"], host=xmpp["server"], port=xmpp["port"],
                    tls=xmpp["tls"], ca=ca)
    try:
        return client.connect(TIMEOUT_MS)
    finally:
        client.close()


def account_is_free(server, user):
    """True if in-band registration of ``user`` succeeds, i.e. no such account existed."""
    client = Client(server.jid(user), "probe-password", host="127.0.0.1", port=server.c2s_port, ca=server.ca_path)
    client.register(timeout_ms=TIMEOUT_MS)
    return True


def test_in_band_registration_makes_working_configs(local, tmp_path):
    out = tmp_path / "out"
    result = provision("--state", local.state_dir, "--count", 3, "--prefix", "ibr-", "--method", "ibr", out=out)
    found = configs(out)
    assert sorted(found) == ["ibr-1", "ibr-2", "ibr-3"]
    ca_der = open(local.ca_der_path, "rb").read()
    for name, (path, config) in found.items():
        assert name + "@localhost" in result.stdout and path in result.stdout
        assert "created (in-band)" in result.stdout
        assert config["xmpp"]["jid"] == name + "@localhost"
        assert (config["xmpp"]["server"], config["xmpp"]["port"]) == ("127.0.0.1", local.c2s_port)
        assert (config["xmpp"]["tls"], config["xmpp"]["ca"]) == ("required", "ca.der")
        assert config["network"]["kind"] == "none" and config["controller"] == "controller@localhost"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert open(os.path.join(os.path.dirname(path), "ca.der"), "rb").read() == ca_der
        assert login(path).startswith(name + "@localhost/")
    assert len(set(passwords(out))) == 3


def test_prosodyctl_makes_working_configs(local, tmp_path):
    out = tmp_path / "out"
    result = provision("--state", local.state_dir, "--count", 2, "--prefix", "ctl-", "--method", "prosodyctl",
                       out=out)
    assert result.stdout.count("created (prosodyctl)") == 2
    for name, (path, _) in configs(out).items():
        assert login(path).startswith(name + "@localhost/")
    # The passwords live in the configs only, not in the server's state too.
    assert not set(ProsodyServer.load(local.state_dir).accounts) & {"ctl-1", "ctl-2"}


def test_auto_falls_back_to_prosodyctl_when_registration_is_closed(closed, tmp_path):
    out = tmp_path / "out"
    refused = provision("--state", closed.state_dir, "--count", 1, "--prefix", "x-", "--method", "ibr",
                        out=tmp_path / "ibr", ok=False)
    assert "does not offer in-band registration" in one_line_error(refused)
    result = provision("--state", closed.state_dir, "--count", 2, "--prefix", "auto-", out=out)
    assert "in-band registration not offered" in result.stdout and "using prosodyctl" in result.stdout
    assert result.stdout.count("created (prosodyctl)") == 2
    for name, (path, config) in configs(out).items():
        assert config["xmpp"]["jid"] == name + "@closed.test"
        assert login(path).startswith(name + "@closed.test/")


def test_never_overwrites_without_force_and_force_resets_passwords(local, tmp_path):
    out = tmp_path / "out"
    provision("--state", local.state_dir, "--count", 2, "--prefix", "keep-", out=out)
    old = {name: config for name, (_, config) in configs(out).items()}

    # Checked before any account is made: keep-3 is still free afterwards.
    refused = provision("--state", local.state_dir, "--count", 3, "--prefix", "keep-", out=out, ok=False)
    error = one_line_error(refused)
    assert os.path.join(str(out), "keep-1", "config.json") in error and "--force" in error
    assert {name: config for name, (_, config) in configs(out).items()} == old
    assert account_is_free(local, "keep-3")

    # The account exists but its config does not: a conflict, named.
    taken = provision("--state", local.state_dir, "--count", 1, "--prefix", "keep-", out=tmp_path / "other",
                      ok=False)
    assert "keep-1@localhost already exists" in one_line_error(taken)

    forced = provision("--state", local.state_dir, "--count", 2, "--prefix", "keep-", "--force", out=out)
    assert forced.stdout.count("password reset (prosodyctl)") == 2
    for name, (path, config) in configs(out).items():
        assert config["xmpp"]["password"] != old[name]["xmpp"]["password"]
        assert login(path).startswith(name + "@localhost/")
        with pytest.raises(AuthError):
            login(path, old[name])


def without_admin_tools():
    """The environment of a host without ejabberdctl (installed or not here): its folders left out of PATH."""
    folders = [folder for folder in os.environ.get("PATH", "").split(os.pathsep)
               if folder and not os.path.exists(os.path.join(folder, "ejabberdctl"))]
    env = {name: value for name, value in os.environ.items() if name != "XMPP_LITE_STATE"}
    env["PATH"] = os.pathsep.join(folders)
    assert shutil.which("ejabberdctl", path=env["PATH"]) is None
    return env


def test_remote_server_with_ca_and_no_admin_tool(local, tmp_path):
    # No state directory: the server is "remote", named by address, domain and CA given.
    out = tmp_path / "out"
    target = ["--server", "127.0.0.1:%d" % local.c2s_port, "--domain", "localhost", "--ca", local.ca_path,
              "--wifi-ssid", "home", "--wifi-password", "wifi-secret-1"]
    env = without_admin_tools()
    result = provision(*target, "--count", 1, "--prefix", "far-", out=out, cwd=tmp_path, env=env)
    assert "wifi-secret-1" not in result.stdout + result.stderr
    assert "note: network kind" not in result.stdout
    (path, config), = configs(out).values()
    assert config["network"] == dict(config["network"], kind="wifi", ssid="home", password="wifi-secret-1")
    assert open(os.path.join(out, "far-1", "ca.der"), "rb").read() == open(local.ca_der_path, "rb").read()
    assert login(path).startswith("far-1@localhost/")
    # --force cannot reset a password in-band, and there is no admin tool for a remote server here.
    forced = provision(*target, "--count", 1, "--prefix", "far-", "--force", out=out, cwd=tmp_path, env=env,
                       ok=False)
    error = one_line_error(forced)
    assert "far-1@localhost already exists" in error and "admin tool" in error


def test_create_controller(local, tmp_path):
    out = tmp_path / "out"
    result = provision("--state", local.state_dir, "--count", 1, "--prefix", "led-", "--controller", "boss",
                       "--create-controller", out=out)
    assert "boss@localhost" in result.stdout
    (_, config), = configs(out).values()
    assert config["controller"] == "boss@localhost"
    path = os.path.join(out, "controller.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        credentials = json.load(f)
    client = Client(**credentials)
    assert client.connect(TIMEOUT_MS).startswith("boss@localhost/")
    client.close()
    again = provision("--state", local.state_dir, "--count", 1, "--prefix", "led2-", "--controller", "boss",
                      "--create-controller", out=out, ok=False)
    assert path in one_line_error(again)


def test_plaintext_local_server(tmp_path):
    state = tmp_path / "state"
    server = start_server(state, "--no-tls")
    try:
        out = tmp_path / "out"
        provision("--state", state, "--count", 1, "--prefix", "plain-", out=out)
        (path, config), = configs(out).values()
        assert config["xmpp"]["tls"] == "none" and config["xmpp"]["ca"] is None
        assert not os.path.exists(os.path.join(out, "plain-1", "ca.der"))
        assert login(path).startswith("plain-1@localhost/")
    finally:
        server.stop()


def test_ejabberdctl_command_form(local, tmp_path):
    # A stand-in ejabberdctl that keeps its accounts in a file and logs its arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, users = tmp_path / "calls", tmp_path / "users"
    script = bin_dir / "ejabberdctl"
    script.write_text("""#!/bin/sh
echo "$@" >> %(log)s
case "$1" in
register)
    if grep -qx "$2@$3" %(users)s 2>/dev/null; then echo "Error: conflict: User $2@$3 already registered"; exit 1; fi
    echo "$2@$3" >> %(users)s; echo "User $2@$3 successfully registered";;
change_password) ;;
*) exit 2;;
esac
""" % {"log": log, "users": users})
    script.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    env.pop("XMPP_LITE_STATE", None)
    out = tmp_path / "out"
    target = ["--server", "xmpp.example.net", "--ca", local.ca_path, "--method", "ejabberdctl",
              "--count", 2, "--prefix", "ej-"]
    result = provision(*target, out=out, cwd=tmp_path, env=env)
    assert result.stdout.count("created (ejabberdctl)") == 2
    found = configs(out)
    assert log.read_text().splitlines() == [
        "register %s xmpp.example.net %s" % (name, config["xmpp"]["password"]) for name, (_, config) in found.items()]
    assert found["ej-1"][1]["xmpp"]["server"] == "xmpp.example.net" and found["ej-1"][1]["xmpp"]["port"] == 5222
    assert "already exists" in one_line_error(provision(*target, out=tmp_path / "again", cwd=tmp_path, env=env,
                                                        ok=False))
    forced = provision(*target, "--force", out=out, cwd=tmp_path, env=env)
    assert forced.stdout.count("password reset (ejabberdctl)") == 2
    assert log.read_text().splitlines()[-1] == "change_password ej-2 xmpp.example.net %s" % (
        configs(out)["ej-2"][1]["xmpp"]["password"])


def test_stopped_local_server_uses_prosodyctl_and_says_so_for_ibr(tmp_path):
    state = tmp_path / "state"
    start_server(state).stop()
    out = tmp_path / "out"
    result = provision("--state", state, "--count", 1, "--prefix", "off-", out=out)
    assert "created (prosodyctl)" in result.stdout
    error = one_line_error(provision("--state", state, "--count", 1, "--prefix", "off2-", "--method", "ibr",
                                     out=out, ok=False))
    assert "is the server running?" in error
    server = start_server(state)
    try:
        (path, _), = configs(out).values()
        assert login(path).startswith("off-1@localhost/")
    finally:
        server.stop()


@pytest.mark.parametrize("args, words", [
    (["--count", "0", "--prefix", "s-"], ["--count", "1 to 1000"]),
    (["--count", "1"], ["--prefix"]),
    (["--count", "1", "--prefix", "a b"], ["--prefix 'a b'"]),
    (["--count", "1", "--prefix", "s-"], ["no --server given", "xmpp-lite server start"]),
    (["--count", "1", "--prefix", "s-", "--server", "192.0.2.7"], ["--domain"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net:99999"], ["port number"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net", "--method", "prosodyctl"],
     ["--method prosodyctl"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net", "--ca", "/nonexistent/ca.pem"],
     ["/nonexistent/ca.pem", "cannot be read"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net", "--wifi-password", "hush-hush"],
     ["--wifi-password needs --wifi-ssid"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net", "--wifi-ssid", "a", "--apn", "b"],
     ["--apn"]),
    (["--count", "1", "--prefix", "s-", "--server", "example.net", "--controller", "bad@"], ["controller"]),
    (["--count", "1", "--prefix", "s-", "--state", "/nonexistent/state"], ["no local server in"]),
    (["--count", "1", "--prefix", "s-", "--method", "magic"], ["invalid choice", "ibr"]),
])
def test_bad_arguments_are_one_line(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XMPP_LITE_STATE", raising=False)
    assert main(["provision"] + args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmpp-lite: error: "), captured.err
    for word in words:
        assert word in lines[0]
    assert "hush-hush" not in captured.err + captured.out
    assert not os.path.exists(tmp_path / "provisioned")
