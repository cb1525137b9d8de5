"""Start-up time of the ``lamina`` command: its modules' bytecode from one file.

A ``lamina`` command imports some 140 modules, lamina's and the standard library's. For each,
Python's path-based import runs (in Python) a search of every ``sys.path`` entry, stats and
reads the .pyc file and checks its header: about 9 ms of a 50 ms no-op build here, beside the
unmarshalling and running that any import needs. The launcher (scripts/write_launcher.py)
calls ``install()`` before it imports lamina: a finder placed first on ``sys.meta_path``
answers for the modules of the bundle, a file holding the code of every module lamina imports
(``python -m lamina_startup`` writes it, as scripts/setup.sh does, beside lamina's .pyc files).

The bundle is only a faster way to the same code: each entry keeps its source file's path,
size and modification time, and a module whose source no longer matches (edited since) is
left to Python's own import, as a stale .pyc would be. Extension and frozen modules are never
in it. Nothing here imports anything that is not loaded already when Python starts.

The same goes for the regular expressions those modules compile as they load (about 40, 2 ms of
pure-Python parsing a command): the bundle keeps the program re's compiler made for each
pattern, and ``install()`` has re take it from there, for the Python that wrote it only (the
same version and regex engine); any other pattern is compiled as usual.
"""
from __future__ import annotations

import marshal
import os
import sys

from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

BUNDLE_NAME = f"bundle.{sys.implementation.cache_tag}.bin"
_LAMINA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lamina")
DEFAULT_PATH = os.path.join(_LAMINA_DIR, "__pycache__", BUNDLE_NAME)
_HEADER = len(MAGIC_NUMBER) + 8   # the magic number, then the index's length
_REGEX_KEY = "\0re"                # the index entry of the regex programs (no module's name)


class BundleFinder:
    """Finds and loads the modules of one bundle (a meta path finder and its loader)."""

    def __init__(self, fd: int, index: dict, base: int) -> None:
        self._fd = fd
        self._index = index       # name -> (path, mtime_ns, size, is_package, offset, length)
        self._base = base         # where the code starts: offsets count from there

    def find_spec(self, name: str, path=None, target=None) -> ModuleSpec | None:
        entry = self._index.get(name)
        if entry is None:
            return None
        origin, mtime_ns, size, is_package = entry[:4]
        try:
            st = os.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None     # edited since the bundle was written: Python's own import
        spec = ModuleSpec(name, self, origin=origin, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True      # sets __file__
        return spec

    def create_module(self, spec: ModuleSpec) -> None:
        return None         # the default module object

    def exec_module(self, module) -> None:
        offset, length = self._index[module.__spec__.name][4:]
        code = marshal.loads(os.pread(self._fd, length, self._base + offset))
        exec(code, module.__dict__)


def install(path: str = DEFAULT_PATH) -> BundleFinder | None:
    """Put the bundle at ``path`` first on ``sys.meta_path``; None (and nothing changed) when
    there is no bundle, or one written by another Python."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, _HEADER, 0)
        if head[:len(MAGIC_NUMBER)] != MAGIC_NUMBER or len(head) != _HEADER:
            raise ValueError("another Python's bundle")
        size = int.from_bytes(head[len(MAGIC_NUMBER):], "little")
        index = marshal.loads(os.pread(fd, size, _HEADER))
        if not isinstance(index, dict):
            raise ValueError("not an index")
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return None
    finder = BundleFinder(fd, index, _HEADER + size)
    sys.meta_path.insert(0, finder)
    regexes = index.get(_REGEX_KEY)
    if isinstance(regexes, tuple) and regexes[:2] == _regex_engine():
        _use_regex_programs(regexes[2])
    return finder


def _regex_engine() -> tuple:
    import _sre
    return (_sre.MAGIC, sys.version)


def _use_regex_programs(programs: dict) -> None:
    """Have re build the patterns of ``programs`` from their programs instead of compiling
    them (re's own cache works as ever above this)."""
    import _sre
    from re import _compiler

    compile_ = _compiler.compile

    def compile(p, flags=0):
        entry = programs.get((p, flags)) if type(p) is str else None
        if entry is None:
            return compile_(p, flags)
        all_flags, code, groups, groupindex, indexgroup = entry
        return _sre.compile(p, all_flags, code, groups, dict(groupindex), indexgroup)
    _compiler.compile = compile


def _recording_regexes() -> dict:
    """Record the program of every str pattern re compiles from now on, as re makes it."""
    import re
    from re import _compiler, _parser

    programs: dict = {}
    compile_ = _compiler.compile

    def compile(p, flags=0):
        pattern = compile_(p, flags)
        if type(p) is str and not flags & re.DEBUG:
            parsed = _parser.parse(p, flags)
            groupindex = dict(parsed.state.groupdict)
            indexgroup = [None] * parsed.state.groups
            for name, i in groupindex.items():
                indexgroup[i] = name
            programs[(p, int(flags))] = (int(flags | parsed.state.flags),
                                         [int(c) for c in _compiler._code(parsed, flags)],
                                         parsed.state.groups - 1, groupindex, tuple(indexgroup))
        return pattern
    _compiler.compile = compile
    re.purge()      # what was compiled before is compiled again, and recorded
    return programs


def write(path: str = DEFAULT_PATH, modules: list[str] | None = None) -> int:
    """Write the bundle of ``modules`` (default: every lamina module and every source module of
    the standard library or site-packages they import); the number of modules in it. Run it in
    a fresh process: the modules are imported to find what they import."""
    import importlib

    regexes = _recording_regexes()
    if modules is None:
        from lamina.dataclass_cache import import_modules
        import_modules()
        modules = sorted(sys.modules)
    index, chunks, offset = {}, [], 0
    for name in modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        spec = getattr(module, "__spec__", None)
        loader = getattr(spec, "loader", None)
        if spec is None or not spec.has_location or not (spec.origin or "").endswith(".py") \
                or not hasattr(loader, "get_code"):
            continue        # built-in, frozen, extension or namespace: Python finds those
        try:
            code = loader.get_code(name)
            st = os.stat(spec.origin)
        except (ImportError, OSError, SyntaxError):
            continue
        data = marshal.dumps(code)
        index[name] = (spec.origin, st.st_mtime_ns, st.st_size,
                       spec.submodule_search_locations is not None, offset, len(data))
        chunks.append(data)
        offset += len(data)
    count = len(index)
    index[_REGEX_KEY] = (*_regex_engine(), regexes)
    raw_index = marshal.dumps(index)
    header = MAGIC_NUMBER + len(raw_index).to_bytes(8, "little")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(raw_index)
        for data in chunks:
            f.write(data)
    os.replace(tmp, path)
    return count


if __name__ == "__main__":
    count = write()
    print(f"lamina_startup: {count} modules bundled in {DEFAULT_PATH}")
