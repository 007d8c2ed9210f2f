"""The ways the library reaches a board: lib/package.json for mpremote's mip, firmware/manifest.py for freezing."""

import json
import os
import subprocess

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


def test_every_module_compiles_with_mpy_cross(tmp_path):
    mpy_cross = find_tool("mpy-cross")
    for name in library_files() + ["../../firmware/main.py", "../../firmware/boot.py"]:
        source = os.path.normpath(os.path.join(LIB, "xmpp_lite", name))
        result = subprocess.run([mpy_cross, "-O2", "-o", str(tmp_path / "out.mpy"), source], capture_output=True,
                                timeout=60)
        assert result.returncode == 0, (name, result.stderr.decode())
