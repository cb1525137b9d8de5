"""lamina: a daemonless, Docker-compatible container image builder and runtime.

The public API is one function per command (``lamina.build(...)``, ``lamina.images()``,
``lamina.history(name)``, ``lamina.run(image, options=...)``, ``lamina.lint(text)`` ...), each
returning typed values; docs/api.md is the reference. Every name of ``lamina.api`` is also a
name here, the same object, imported on first use so that ``import lamina`` stays cheap for
the command line. ``lamina.testing`` holds fakes for tests: an in-process registry, random
images, a temporary store.

``build`` is also the name of a subpackage (the builder): importing ``lamina.build.builder``
would normally rebind ``lamina.build`` to that package, so this module refuses to let an
imported submodule take an API name (``_Package.__setattr__``). ``from lamina.build.progress
import PlainProgress`` works as ever; ``lamina.build`` is always the function.
"""
from __future__ import annotations

import sys
import types


class _Deferred(types.ModuleType):
    """Stands for a module not imported yet: the first attribute read imports it."""

    def __getattr__(self, name: str) -> object:
        import importlib
        return getattr(importlib.import_module(self.__name__), name)


def _import_deferring(module: str, *deferred: str) -> None:
    """Import ``module`` with its imports of ``deferred`` put off until first use.

    Start-up time: dataclasses imports inspect (5-7 ms with ast, dis and tokenize) only to
    write a docstring for a class without one, and every lamina dataclass has its own
    (tests/unit/test_dataclass_docstrings.py); urllib.parse, which pathlib imports, imports
    ipaddress (1 ms) for bracketed IPv6 hosts only; shutil imports bz2 and lzma (0.5 ms, two
    shared libraries) only to note that its archive formats can use them, which lamina never
    asks of it. Anyone else importing a deferred module later gets the real one."""
    if module in sys.modules or any(name in sys.modules for name in deferred):
        return
    stand_ins = {name: _Deferred(name) for name in deferred}
    sys.modules.update(stand_ins)
    try:
        __import__(module)
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


_import_deferring("dataclasses", "inspect")
_import_deferring("urllib.parse", "ipaddress")
_import_deferring("shutil", "bz2", "lzma")

from . import api as _api     # noqa: E402 (only its table of names: it imports nothing else)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _api._LAZY:
            return      # the import system binding a submodule: keep the API's name free
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = ["__version__", *_api.__all__]


def __getattr__(name: str) -> object:
    if name not in _api._LAZY:
        raise AttributeError(f"module 'lamina' has no attribute {name!r}")
    value = getattr(_api, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
