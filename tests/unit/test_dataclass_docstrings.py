"""Every lamina dataclass has a docstring of its own.

``@dataclass`` writes a docstring for a class that has none, from ``inspect.signature``: the
first such class a command defines imports inspect (with ast, dis, tokenize), some 5-7 ms of
every command's start-up, which lamina/__init__.py keeps out by importing dataclasses with
inspect deferred.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import lamina

SKIPPED = {"lamina.__main__"}   # importing it runs the command line


def _modules() -> list[str]:
    names = [lamina.__name__]
    for info in pkgutil.walk_packages(lamina.__path__, prefix=f"{lamina.__name__}."):
        if info.name not in SKIPPED:
            names.append(info.name)
    return names


def _classes(owner: object, module: str) -> list[type]:
    """The classes ``owner`` (a module or a class) defines, nested ones too."""
    found = []
    for value in vars(owner).values():
        if isinstance(value, type) and value.__module__ == module and value is not owner \
                and value.__qualname__.startswith(getattr(owner, "__qualname__", "")):
            found.append(value)
            found.extend(_classes(value, module))
    return found


def _has_own_docstring(cls: type) -> bool:
    doc = cls.__dict__.get("__doc__")
    # What dataclasses writes for a class without one: "Name(field: type, ...)".
    return bool(doc and doc.strip()) and not doc.startswith(f"{cls.__name__}(")


def test_the_walk_finds_lamina_dataclasses():
    found = {f"{cls.__module__}.{cls.__qualname__}"
             for name in _modules()
             for cls in _classes(importlib.import_module(name), name)
             if dataclasses.is_dataclass(cls)}
    # A few that must be there, so that an empty walk cannot pass the test below.
    assert {"lamina.runtime.options.RunOptions", "lamina.image.config.ImageConfig",
            "lamina.api.analysis._Node"} <= found
    assert len(found) > 50


def test_every_dataclass_has_its_own_docstring():
    missing = sorted({f"{cls.__module__}.{cls.__qualname__}"
                      for name in _modules()
                      for cls in _classes(importlib.import_module(name), name)
                      if dataclasses.is_dataclass(cls) and not _has_own_docstring(cls)})
    assert not missing, (
        f"{len(missing)} lamina dataclass(es) without a docstring: {', '.join(missing)}. "
        "Give each a one-line docstring saying what the value is for: for a class without "
        "one, @dataclass writes one with inspect.signature, and importing inspect costs "
        "every lamina command 5-7 ms of start-up (see lamina/__init__.py).")
