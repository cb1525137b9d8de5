"""The dataclass method cache of lamina's commands (lamina/dataclass_cache.py): the
classes made with them behave exactly as without, methods come from the file without compiling,
a cache is kept only where bytecode may be written, and a damaged file is ignored."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import types

import pytest

from lamina import dataclass_cache

SOURCE = textwrap.dedent("""
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: tuple = field(default=(), compare=False)

    @dataclass
    class Box:
        corner: Point
        label: str = "box"
""")


def _define(name: str) -> dict:
    module = types.ModuleType(name)
    sys.modules[name] = module   # dataclasses looks its module up
    try:
        exec(compile(SOURCE, name, "exec", dont_inherit=True), vars(module))
    finally:
        del sys.modules[name]
    return vars(module)


def _behaviour(ns: dict) -> tuple:
    Point, Box = ns["Point"], ns["Box"]
    p = Point(1, tags=("a",))
    try:
        p.x = 5   # type: ignore[misc]
        frozen = False
    except dataclasses.FrozenInstanceError:
        frozen = True
    box = Box(p)
    box.label = "renamed"
    return (repr(p), repr(box), p == Point(1), hash(p) == hash(Point(1)), frozen,
            Point.__init__.__annotations__, Box.__init__.__defaults__)


@pytest.fixture
def cache_file(tmp_path, monkeypatch):
    path = tmp_path / "__pycache__" / "dataclasses-test.bin"
    monkeypatch.setattr(dataclass_cache, "cache_path", lambda name: str(path))
    return path


def test_classes_made_with_the_cache_behave_as_without(cache_file):
    plain = _behaviour(_define("plain"))
    with dataclass_cache.compiled_dataclasses("test", write=True):
        first = _behaviour(_define("first"))     # compiled, then kept
    kept = cache_file.stat().st_mtime_ns
    with dataclass_cache.compiled_dataclasses("test", write=True):
        second = _behaviour(_define("second"))   # from the cache: nothing new to keep
    assert cache_file.stat().st_mtime_ns == kept
    assert plain == first == second
    assert "exec" not in vars(dataclasses)      # the dataclasses module is as it was


def test_the_cache_is_written_only_where_bytecode_may_be(cache_file, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with dataclass_cache.compiled_dataclasses("test"):
        _define("no_write")
    assert not cache_file.exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    with dataclass_cache.compiled_dataclasses("test"):
        _define("write")
    assert cache_file.exists()


def test_a_damaged_or_unwritable_cache_changes_nothing(cache_file):
    cache_file.parent.mkdir()
    cache_file.write_bytes(b"not marshal data")
    with dataclass_cache.compiled_dataclasses("test", write=False):
        assert _behaviour(_define("damaged")) == _behaviour(_define("plain"))
    cache_file.parent.chmod(0o555)   # root ignores it; the write must not fail either way
    try:
        with dataclass_cache.compiled_dataclasses("test", write=True):
            _define("read_only")
    finally:
        cache_file.parent.chmod(0o755)


def test_lamina_dataclasses_are_the_same_with_the_cache(tmp_path):
    """Every dataclass of lamina, compiled through the cache, has the methods it has
    without it (code, constants, annotations, defaults)."""
    code = textwrap.dedent(f"""
        import dataclasses, importlib, pkgutil, sys, lamina
        from lamina import dataclass_cache
        dataclass_cache.cache_path = lambda name: {str(tmp_path / "c.bin")!r}
        def methods():
            out = {{}}
            for info in pkgutil.walk_packages(lamina.__path__, "lamina."):
                if info.name.endswith("__main__"):
                    continue
                try:
                    module = importlib.import_module(info.name)
                except Exception:
                    continue
                for name, obj in sorted(vars(module).items()):
                    if isinstance(obj, type) and dataclasses.is_dataclass(obj) \\
                            and obj.__module__ == module.__name__:
                        for fn in ("__init__", "__eq__", "__hash__", "__setattr__"):
                            f = obj.__dict__.get(fn)
                            if f is not None and hasattr(f, "__code__"):
                                c = f.__code__
                                out[f"{{info.name}}.{{name}}.{{fn}}"] = (
                                    c.co_code, repr(c.co_consts), c.co_names,
                                    repr(f.__annotations__), repr(f.__defaults__))
            return out
        if sys.argv[1] == "cache":
            with dataclass_cache.compiled_dataclasses("test", write=True):
                found = methods()
        else:
            found = methods()
        import hashlib
        print(len(found), hashlib.sha256(repr(sorted(found.items())).encode()).hexdigest())
    """)
    runs = [subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                           text=True, check=True).stdout for mode in ("plain", "cache", "cache")]
    assert int(runs[0].split()[0]) > 50
    assert runs[0] == runs[1] == runs[2]   # compiled, then read back from the cache


def test_kept_methods_are_not_compiled_again(cache_file, monkeypatch):
    with dataclass_cache.compiled_dataclasses("test", write=True):
        _define("kept")
    compiled: list[str] = []
    real_compile = compile
    monkeypatch.setattr(dataclass_cache, "compile", lambda *a, **k: compiled.append(a[0])
                        or real_compile(*a, **k), raising=False)
    with dataclass_cache.compiled_dataclasses("test", write=False):
        again = _behaviour(_define("again"))
    assert compiled == []           # every method came from the file
    assert again == _behaviour(_define("plain"))


def test_the_cache_is_written_by_the_module_command(tmp_path):
    """``python -m lamina.dataclass_cache`` (scripts/setup.sh) writes the cache of every
    lamina class from a fresh process, and refuses an unknown name."""
    code = textwrap.dedent(f"""
        import sys
        from lamina import dataclass_cache
        dataclass_cache.CACHE_DIR = {str(tmp_path)!r}
        sys.exit(dataclass_cache.main(sys.argv[1:]))
    """)
    subprocess.run([sys.executable, "-c", code, "lamina"], check=True)
    written = list(tmp_path.glob("dataclasses-*.bin"))
    assert [p.name.split(".")[0] for p in written] == ["dataclasses-lamina"]
    entries = dataclass_cache._load(str(written[0]))
    assert len(entries) > 300      # every class's methods, each entry on its own
    bad = subprocess.run([sys.executable, "-c", code, "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown cache 'nope'" in bad.stderr


def test_an_entry_is_used_only_for_its_exact_source_text(cache_file):
    """Entries are found by their exact text; a damaged one is compiled afresh, never used."""
    import marshal

    source = "def f():\n    return 1\n"
    good = compile(source, "<string>", "exec")
    entries = {source: marshal.dumps(good)}
    assert dataclass_cache._lookup(entries, source) == good
    assert dataclass_cache._lookup(entries, source + " ") is None
    assert dataclass_cache._lookup({source: b"garbage"}, source) is None
    assert dataclass_cache._lookup({source: marshal.dumps("not code")}, source) is None
