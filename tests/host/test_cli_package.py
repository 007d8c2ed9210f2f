"""The library for a board without the board's firmware: `xmpp-lite package` + `mpremote mip install`, and
`xmpp-lite deploy --library-only`, onto a simboard at its default heap, as a user with a main.py of their own.
"""

import functools
import http.server
import json
import os
import subprocess
import threading

import pytest

from host_tools.cmd_package import ARCH_NUMBERS, TARGETS
from host_tools.tools import LIBRARY, find_tool
from test_cli_deploy import board, xmpp_lite  # noqa: F401 - board is a fixture
from test_cli_simboard import ENV, ROOT

MPREMOTE_TIMEOUT = 120
IMPORT = "import xmpp_lite.client, gc; gc.collect(); print('imported', xmpp_lite.__version__, gc.mem_free())"


def modules():
    return sorted(name[:-3] for name in os.listdir(LIBRARY) if name.endswith(".py"))


def version():
    from xmpp_lite import __version__

    return __version__


def mpremote(url, *args):
    return subprocess.run([find_tool("mpremote"), "connect", url] + list(args), capture_output=True, text=True,
                          timeout=MPREMOTE_TIMEOUT, env=ENV, cwd=ROOT)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("mip")
    result = xmpp_lite("package", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout


def test_package_writes_mpy_for_every_target(packages):
    out, stdout = packages
    assert sorted(os.listdir(out)) == sorted(TARGETS)
    for name, (_, mpy_version, sub, arch, _) in TARGETS.items():
        assert "package: %s/package.json: %d modules for " % (out / name, len(modules())) in stdout
        with open(out / name / "package.json") as f:
            package = json.load(f)
        assert package["version"] == version() and package["deps"] == []
        assert package["urls"] == [["xmpp_lite/%s.mpy" % m, "xmpp_lite/%s.mpy" % m] for m in modules()]
        with open(out / name / "xmpp_lite" / "parser.mpy", "rb") as f:
            header = f.read(3)
        # The parser has native code: its header names the architecture and the sub-version.
        assert header == b"M" + bytes((mpy_version, ARCH_NUMBERS[arch] << 2 | sub)), (name, header)
    assert "mip install %s/package.json" % (out / "mpy6.3-xtensawin") in stdout


def test_package_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "taken").write_text("")
    result = xmpp_lite("package", "--out", tmp_path / "taken")
    assert result.returncode == 1 and result.stderr == "xmpp-lite: error: package: %s exists and is not a folder\n" \
        % (tmp_path / "taken")


def test_mip_install_onto_a_simboard_then_import_at_the_default_heap(packages, board):
    out, _ = packages
    installed = mpremote(board.url, "mip", "install", str(out / "mpy6.3-x64" / "package.json"))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    lib = os.path.join(board.flash, "lib", "xmpp_lite")
    assert sorted(os.listdir(lib)) == [m + ".mpy" for m in modules()]
    imported = mpremote(board.url, "exec", IMPORT)
    assert imported.returncode == 0 and "imported %s" % version() in imported.stdout, \
        imported.stdout + imported.stderr


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_mip_github_form_names_the_published_folder(packages, tmp_path):
    """The github: form rewrites to raw.githubusercontent.com/OWNER/REPO/BRANCH/PATH, and the module URLs are
    relative to package.json: the folder works from any web server. Here a local one stands in for GitHub."""
    from mpremote import mip

    from test_packaging import FolderTransport

    assert mip._rewrite_url("github:OWNER/xmpp_lite/mpy6.3-xtensawin/package.json", "mip") == \
        "https://raw.githubusercontent.com/OWNER/xmpp_lite/mip/mpy6.3-xtensawin/package.json"
    out, _ = packages
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flash = tmp_path / "flash"
        flash.mkdir()
        url = "http://127.0.0.1:%d/mpy6.3-xtensawin/package.json" % server.server_address[1]
        mip._install_json(FolderTransport(str(flash)), url, mip._PACKAGE_INDEX, "/lib", None, True)
    finally:
        server.shutdown()
        server.server_close()
    for module in modules():
        with open(flash / "lib" / "xmpp_lite" / (module + ".mpy"), "rb") as mine, \
                open(out / "mpy6.3-xtensawin" / "xmpp_lite" / (module + ".mpy"), "rb") as published:
            assert mine.read() == published.read()


def test_deploy_library_only_then_import_at_the_default_heap(board):
    result = xmpp_lite("deploy", "--port", board.url, "--library-only", "--no-reset")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" not in result.stdout  # no config was asked for
    assert "verified %d files on the board" % len(modules()) in result.stdout
    assert sorted(os.listdir(board.flash)) == ["lib"]  # no main.py, boot.py, board.json or config.json
    assert sorted(os.listdir(os.path.join(board.flash, "lib", "xmpp_lite"))) == [m + ".mpy" for m in modules()]
    imported = mpremote(board.url, "exec", IMPORT)
    assert imported.returncode == 0 and "imported %s" % version() in imported.stdout, \
        imported.stdout + imported.stderr


def test_deploy_library_only_takes_no_config(tmp_path):
    result = xmpp_lite("deploy", "--port", "socket://127.0.0.1:1", "--library-only", "--config", tmp_path / "c.json")
    assert result.returncode == 1
    assert result.stderr == "xmpp-lite: error: deploy: --library-only copies the library alone; drop --config\n"
    result = xmpp_lite("deploy", "--port", "socket://127.0.0.1:1")
    assert result.stderr == ("xmpp-lite: error: deploy: give the board's --config FILE, or --library-only to copy "
                             "just the library\n")
