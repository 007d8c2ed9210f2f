"""Run device test modules on the MicroPython VM (it works on CPython too).

    micropython -X heapsize=256k tests/mp_runner.py [-k SUBSTRING] [--lib DIR] tests/device/test_x.py ...

``--lib DIR``: import xmpp_lite from DIR (e.g. the library compiled to .mpy)
instead of the repository's lib/.

Device tests are module-level `test_*` functions without arguments that use
plain `assert`; pytest runs the same files on CPython. This runner imports each
module, runs its tests in the order they are defined, prints one line per test
and exits with status 1 if any test failed or none ran.
"""

import gc
import os
import sys


def _dirname(path):
    # MicroPython's os has no os.path.
    cut = path.rfind("/")
    if cut < 0:
        return "."
    return path[:cut] or "/"


def _absolute(path):
    if path.startswith("/"):
        return path
    return os.getcwd() + "/" + path


# Paths relative to this file, so the runner works from any directory.
TESTS_DIR = _dirname(_absolute(__file__))
ROOT_DIR = _dirname(TESTS_DIR)


def _add_path(path):
    if path not in sys.path:
        sys.path.insert(0, path)


def _test_names(path, module):
    """Names of the module's test functions, in the order the source defines them.

    Globals carry no order on MicroPython, so read the order from the source;
    tests created any other way follow in sorted order.
    """
    names = []
    with open(path) as source:
        for line in source:
            if line.startswith("def test_"):
                names.append(line[4:].split("(")[0].strip())
    for name in sorted(dir(module)):
        if name.startswith("test_") and name not in names:
            names.append(name)
    return [name for name in names if callable(getattr(module, name, None))]


def _print_traceback(error):
    if hasattr(sys, "print_exception"):
        sys.print_exception(error)
    else:  # CPython
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stdout)


def _describe(error):
    return "%s: %s" % (type(error).__name__, error)


def _forget_modules(keep):
    """Drop the modules imported since ``keep`` (a list of names) was taken.

    With several test files in one run, their code and the library modules
    only they use would otherwise pile up in the capped heap.
    """
    for name in list(sys.modules):
        if name in keep:
            continue
        sys.modules.pop(name, None)
        dot = name.rfind(".")
        parent = sys.modules.get(name[:dot]) if dot > 0 else None
        if parent is not None and hasattr(parent, name[dot + 1:]):
            delattr(parent, name[dot + 1:])
    gc.collect()


def run_module(path, keyword, counts):
    """Run the tests of one module file; counts is [passed, failed]."""
    path = _absolute(path)
    _add_path(_dirname(path))
    module_name = path[path.rfind("/") + 1:]
    if module_name.endswith(".py"):
        module_name = module_name[:-3]
    loaded_before = list(sys.modules)
    try:
        module = __import__(module_name)
    except Exception as error:
        # An import error fails the whole module; the others still run.
        print("FAIL %s: %s" % (module_name, _describe(error)))
        _print_traceback(error)
        counts[1] += 1
        _forget_modules(loaded_before)
        return
    for name in _test_names(path, module):
        full_name = module_name + "." + name
        if keyword and keyword not in full_name:
            continue
        gc.collect()  # each test starts from the same heap, not the previous test's garbage
        try:
            getattr(module, name)()
        except Exception as error:
            print("FAIL %s: %s" % (full_name, _describe(error)))
            _print_traceback(error)
            counts[1] += 1
        else:
            print("PASS " + full_name)
            counts[0] += 1
    del module
    _forget_modules(loaded_before)


def main(argv):
    keyword = None
    lib = ROOT_DIR + "/lib"
    paths = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-k":
            if not args:
                print("mp_runner: -k needs a substring")
                return 2
            keyword = args.pop(0)
        elif arg == "--lib":
            if not args:
                print("mp_runner: --lib needs a folder")
                return 2
            lib = args.pop(0)
        else:
            paths.append(arg)
    if not paths:
        print("usage: mp_runner.py [-k SUBSTRING] [--lib DIR] TEST_FILE.py ...")
        return 2

    _add_path(ROOT_DIR + "/tests/device")
    _add_path(lib)
    counts = [0, 0]
    for path in paths:
        run_module(path, keyword, counts)

    runtime = sys.implementation.name
    print("%s: %d passed, %d failed" % (runtime, counts[0], counts[1]))
    if counts[0] + counts[1] == 0:
        print("%s: no tests ran" % runtime)
        return 1
    return 1 if counts[1] else 0


status = main(sys.argv[1:])
if status:
    sys.exit(status)
