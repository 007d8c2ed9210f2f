"""Environment variables of the fake modules (MicroPython's os.getenv or CPython's os.environ)."""

import os

# Tests in the same process set these instead of the environment (the VM cannot change its own).
overrides = {}


def env(name, default=None):
    if name in overrides:
        value = overrides[name]
    elif getattr(os, "getenv", None) is not None:
        value = os.getenv(name)
    else:  # pragma: no cover - CPython always has os.getenv
        value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name, default):
    """An integer setting, or ``default``."""
    value = env(name)
    return default if value is None else int(value)
