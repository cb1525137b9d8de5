"""Start-up time: the methods ``@dataclass`` writes, compiled once and kept, as .pyc files are.

For each dataclass, the dataclasses module writes the source of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` (and, frozen, ``__setattr__`` and ``__delattr__``) and compiles it with
``exec``: about half a millisecond a class, a fifth of a small build's time and a tenth of a
``run``'s. ``compiled_dataclasses(name)`` gives that module, while the block runs, an ``exec``
that compiles each source text once: the code objects are kept by their exact text, so the
methods made are the ones the text says whatever changed in between (a text never seen is
compiled).

The cache, ``__pycache__/dataclasses-lamina.<python tag>.bin`` beside lamina's .pyc files,
holds every lamina class (~0.9 MB). Each entry is a method's code, kept marshalled on its own
under its exact source text, and decoded only when a class asks for it: a command reads the
file (~0.9 ms) and decodes the 100-400 entries it uses (~2.5 us each), not all 800. It is
written like a .pyc: when a block compiled something new (added to what was there), unless
Python is told not to write bytecode (``PYTHONDONTWRITEBYTECODE``: then
``python -m lamina.dataclass_cache`` writes it anew, as scripts/setup.sh does), and not if the
folder is read-only. Nothing from lamina is imported here: the run path loads this first.
"""
from __future__ import annotations

import _thread
import builtins
import importlib
import marshal
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import CodeType

import _frozen_importlib_external    # MAGIC_NUMBER, without importlib.util's imports

MAGIC = _frozen_importlib_external.MAGIC_NUMBER
CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
CACHES = {"lamina": None}      # name -> its modules (None: every module of lamina)
_lock = _thread.allocate_lock()                # one block at a time (parallel build stages)


def cache_path(name: str) -> str:
    return os.path.join(CACHE_DIR, f"dataclasses-{name}.{sys.implementation.cache_tag}.bin")


@contextmanager
def compiled_dataclasses(name: str, *, write: bool | None = None,
                         path: str | None = None) -> Iterator[None]:
    """Dataclasses made in the block take their methods' code from the cache ``name`` (or the
    file ``path``). ``write``: keep what was compiled (default: when something new was, and
    Python writes bytecode); True keeps exactly what the block used."""
    import dataclasses

    if sys.implementation.cache_tag is None or "exec" in vars(dataclasses) \
            or not _lock.acquire(False):
        yield   # no bytecode cache here, or a block running already (another thread)
        return
    path = path or cache_path(name)
    entries = _load(path)       # key -> marshalled (source, code)
    used: dict[str, CodeType] = {}
    missed = False

    def exec_(source, globals_=None, locals_=None, /):
        nonlocal missed
        if isinstance(source, str):
            code = used.get(source) or _lookup(entries, source)
            if code is None:
                # As exec compiles it in the dataclasses module: no __future__ flags of ours.
                code = compile(source, "<string>", "exec", dont_inherit=True)
                missed = True
            used[source] = code
            source = code
        builtins.exec(source, globals_, locals_)

    dataclasses.exec = exec_   # type: ignore[attr-defined]  # the name its functions call
    try:
        yield
    finally:
        del dataclasses.exec   # type: ignore[attr-defined]
        _lock.release()
        if write or (write is None and missed and not sys.dont_write_bytecode):
            fresh = {src: marshal.dumps(code) for src, code in used.items()}
            if not write:
                _save(path, {**entries, **fresh})
            elif missed or fresh.keys() != entries.keys():
                _save(path, fresh)


def _lookup(entries: dict[str, bytes], source: str) -> CodeType | None:
    entry = entries.get(source)
    if entry is None:
        return None
    try:
        code = marshal.loads(entry)
    except (ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _load(path: str) -> dict[str, bytes]:
    try:
        with open(path, "rb") as f:
            magic, entries = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if magic != MAGIC or not isinstance(entries, dict) \
            or not isinstance(next(iter(entries), ""), str) \
            or not isinstance(next(iter(entries.values()), b""), bytes):
        return {}       # another Python's, or an older layout of this file
    return entries


def _save(path: str, entries: dict[str, bytes]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((MAGIC, entries)))
        os.replace(tmp, path)
    except OSError:     # a read-only install: start-up stays as it was
        if os.path.exists(tmp):
            os.unlink(tmp)


def _lamina_modules() -> Iterator[str]:
    import pkgutil

    import lamina

    for module in pkgutil.walk_packages(lamina.__path__, "lamina."):
        if not module.name.endswith("__main__"):   # the command line itself
            yield module.name


def import_modules(modules: Iterable[str] | None = None) -> None:
    """Import ``modules`` (default: every lamina module); one that fails (an optional extra
    missing) is skipped. What the caches written at set-up are made from."""
    for module in modules or _lamina_modules():
        try:
            importlib.import_module(module)
        except Exception:   # noqa: BLE001 - an optional extra missing: its classes wait
            continue


def write_cache(name: str) -> None:
    """Write the cache ``name`` from its modules' dataclasses (in a fresh process: a module
    imported before makes no dataclass)."""
    with compiled_dataclasses(name, write=True):
        import_modules(CACHES[name])


def main(argv: list[str]) -> int:
    """``python -m lamina.dataclass_cache [NAME...]``: write those caches (default: all),
    each in a process of its own."""
    import subprocess

    for name in argv or CACHES:
        if name not in CACHES:
            print(f"unknown cache {name!r}: one of {', '.join(CACHES)}", file=sys.stderr)
            return 2
        if argv:
            write_cache(name)
        else:
            subprocess.run([sys.executable, "-m", "lamina.dataclass_cache", name], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
