"""Start-up time: the methods ``@dataclass`` writes, compiled once and kept, as .pyc files are.

For each dataclass, the dataclasses module writes the source of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` (and, frozen, ``__setattr__`` and ``__delattr__``) and compiles it with
``exec``: about half a millisecond a class, a fifth of a small build's time and a tenth of a
``run``'s. ``compiled_dataclasses(name)`` gives that module, while the block runs, an ``exec``
that compiles each source text once: the code objects are kept by their exact text, so the
methods made are the ones the text says whatever changed in between (a text never seen is
compiled).

Two caches, in ``__pycache__/dataclasses-<name>.<python tag>.bin`` beside lamina's .pyc files:
``build`` holds every lamina class (~0.8 MB), ``run`` only those a run makes (~190 kB: loading
the whole one would cost a run more than it saves). Each is written like a .pyc: when a block
compiled something new, unless Python is told not to write bytecode (``PYTHONDONTWRITEBYTECODE``:
then ``python -m lamina.dataclass_cache`` writes both, as scripts/setup.sh does), and not if the
folder is read-only. Nothing from lamina is imported here: the run path loads this first.
"""
from __future__ import annotations

import _thread
import builtins
import importlib
import marshal
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType

import _frozen_importlib_external    # MAGIC_NUMBER, without importlib.util's imports

MAGIC = _frozen_importlib_external.MAGIC_NUMBER
CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
# The modules whose dataclasses a run makes (with a bridge network, ports and volumes), for
# writing its cache ahead of time; one left out is compiled at each run, nothing worse.
RUN_MODULES = (
    "lamina.api.containers", "lamina.image.config", "lamina.image.descriptor",
    "lamina.image.manifest", "lamina.image.platform", "lamina.image.reference", "lamina.layer",
    "lamina.runtime.containers", "lamina.runtime.netrules", "lamina.runtime.network",
    "lamina.runtime.options", "lamina.runtime.ports", "lamina.runtime.users",
    "lamina.runtime.volumes", "lamina.store.content", "lamina.store.layout",
    "lamina.store.root", "lamina.store.roots", "lamina.store.snapshots",
    "lamina.store.unpack", "lamina.runtime.monitor", "lamina.runtime.run",
)
CACHES = {"build": None, "run": RUN_MODULES}   # None: every module of lamina
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
    known = _load(path)
    used: dict[str, CodeType] = {}
    missed = False

    def exec_(source, globals_=None, locals_=None, /):
        nonlocal missed
        if isinstance(source, str):
            code = used.get(source) or known.get(source)
            if not isinstance(code, CodeType):
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
        if write:
            if missed or used.keys() != known.keys():
                _save(path, used)
        elif write is None and missed and not sys.dont_write_bytecode:
            merged = {**known, **used}   # what other commands use stays, unless mostly stale
            _save(path, merged if len(merged) <= 2 * len(used) else used)


def _load(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            magic, codes = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return codes if magic == MAGIC and isinstance(codes, dict) else {}


def _save(path: str, codes: dict[str, CodeType]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((MAGIC, codes)))
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


def write_cache(name: str) -> None:
    """Write the cache ``name`` from its modules' dataclasses (in a fresh process: a module
    imported before makes no dataclass)."""
    with compiled_dataclasses(name, write=True):
        for module in CACHES[name] or _lamina_modules():
            try:
                importlib.import_module(module)
            except Exception:   # noqa: BLE001 - an optional extra missing: its classes wait
                continue


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
