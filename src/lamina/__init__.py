"""lamina: a daemonless, Docker-compatible container image builder and runtime.

The public API is one function per command (``lamina.images()``, ``lamina.history(name)``,
``lamina.lint(text)`` ...), each returning typed values. They are imported lazily so that
``import lamina`` stays cheap for the command line.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {  # name -> module that defines it
    "LaminaError": "lamina.errors",
    "lint": "lamina.dockerfile.lint",
    **{name: "lamina.api" for name in (
        "build", "images", "tag", "remove", "inspect", "history", "prune", "disk_usage", "check",
        "save", "load", "import_image", "pull", "push", "login", "logout", "run",
        "list_containers", "bootstrap_busybox", "bootstrap_debian")},
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
