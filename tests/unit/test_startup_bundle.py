"""lamina_startup: the launcher's bundle of bytecode gives the modules Python's own import would,
and steps aside for a module edited since it was written."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-S", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": ":".join(str(p) for p in (*paths, REPO / "src"))})


def _package(root: Path) -> None:
    pkg = root / "demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 'package'\n")
    (pkg / "leaf.py").write_text("def answer():\n    return 41 + 1\n")


WRITE = """
    import sys, lamina_startup
    import demo_pkg, demo_pkg.leaf
    print(lamina_startup.write({bundle!r}, ["demo_pkg", "demo_pkg.leaf", "json"]))
"""
READ = """
    import sys, lamina_startup
    finder = lamina_startup.install({bundle!r})
    import demo_pkg, demo_pkg.leaf, json
    from_bundle = [m for m in ("demo_pkg", "demo_pkg.leaf", "json")
                   if sys.modules[m].__spec__.loader is finder]
    print(from_bundle, demo_pkg.VALUE, demo_pkg.leaf.answer(), demo_pkg.leaf.__file__,
          demo_pkg.__path__, json.dumps([1]))
"""


def test_modules_come_from_the_bundle_and_work_as_imported(tmp_path):
    _package(tmp_path)
    bundle = tmp_path / "bundle.bin"
    wrote = _python(WRITE.format(bundle=str(bundle)), tmp_path)
    assert (wrote.returncode, wrote.stdout.strip()) == (0, "3"), wrote.stderr
    out = _python(READ.format(bundle=str(bundle)), tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "['demo_pkg',", "'demo_pkg.leaf',", "'json']", "package", "42",
        str(tmp_path / "demo_pkg" / "leaf.py"), f"['{tmp_path / 'demo_pkg'}']", "[1]"]


def test_a_module_edited_since_is_imported_from_its_source(tmp_path):
    _package(tmp_path)
    bundle = tmp_path / "bundle.bin"
    assert _python(WRITE.format(bundle=str(bundle)), tmp_path).returncode == 0
    (tmp_path / "demo_pkg" / "leaf.py").write_text("def answer():\n    return 'edited'\n")
    out = _python(READ.format(bundle=str(bundle)), tmp_path)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:2] == ["['demo_pkg',", "'json']"]     # the edited leaf is not from the bundle
    assert words[3] == "edited"


def test_a_damaged_or_missing_bundle_changes_nothing(tmp_path):
    _package(tmp_path)
    for content in (None, b"", b"garbage" * 10, b"\0" * 64):
        bundle = tmp_path / "bundle.bin"
        bundle.unlink(missing_ok=True)
        if content is not None:
            bundle.write_bytes(content)
        out = _python("""
            import sys, lamina_startup
            before = list(sys.meta_path)
            print(lamina_startup.install(%r), sys.meta_path == before)
            import demo_pkg.leaf
            print(demo_pkg.leaf.answer())
        """ % str(bundle), tmp_path)
        assert (out.returncode, out.stdout.split()) == (0, ["None", "True", "42"]), out.stderr


def test_the_bundle_setup_writes_serves_the_lamina_command(tmp_path):
    """The real thing: every lamina module and the standard library modules they import."""
    bundle = tmp_path / "bundle.bin"
    written = subprocess.run([sys.executable, "-S", "-c",
                              f"import lamina_startup; print(lamina_startup.write({str(bundle)!r}))"],
                             capture_output=True, text=True, timeout=120,
                             env={"PYTHONPATH": str(REPO / "src")})
    assert written.returncode == 0, written.stderr
    assert int(written.stdout) > 150
    out = _python(f"""
        import sys, lamina_startup
        finder = lamina_startup.install({str(bundle)!r})
        from lamina.cli.main import build_parser
        import lamina.api.containers, re, json, pathlib
        mods = ("lamina", "lamina.cli.main", "lamina.api.containers", "re", "json", "pathlib")
        print(all(sys.modules[m].__spec__.loader is finder for m in mods))
        build_parser("run").parse_args(["run", "--rm", "busybox", "true"])
    """)
    assert (out.returncode, out.stdout.strip()) == (0, "True"), out.stderr


PATTERNS = """
import re
PATTERNS = [
    re.compile(r"(?P<name>[a-z0-9]+)(?::(?P<tag>[\\w.-]{1,128}))?"),
    re.compile(r"(\\d+(?:\\.\\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE),
    re.compile("[\\u3000\\t ]+|\\\\\\n"),
    re.compile(r"^\\s*#\\s*(\\w+)\\s*=\\s*(.*?)\\s*$", re.MULTILINE),
]
"""
SAMPLES = ["busybox:1.36", "512 MiB", "a\\u3000b \\\\\\n", "# syntax = docker/dockerfile:1",
           "x" * 300, "", "GB"]
SHOW = """
    import re, sys
    {install}
    import demo_patterns
    out = []
    for p in demo_patterns.PATTERNS:
        out.append((p.pattern, int(p.flags), p.groups, dict(p.groupindex)))
        for s in {samples!r}:
            out.append([(m.span(), m.groups()) for m in p.finditer(s)])
    print(repr(out))
    print(getattr(re._compiler.compile, "__qualname__", ""))
"""


def test_patterns_built_from_the_bundle_s_programs_are_the_compiled_ones(tmp_path):
    (tmp_path / "demo_patterns.py").write_text(PATTERNS)
    bundle = tmp_path / "bundle.bin"
    # write() imports the module itself, and records the patterns it compiles
    wrote = _python(f"""
        import lamina_startup
        print(lamina_startup.write({str(bundle)!r}, ["demo_patterns"]))
    """, tmp_path)
    assert (wrote.returncode, wrote.stdout.strip()) == (0, "1"), wrote.stderr
    plain = _python(SHOW.format(install="", samples=SAMPLES), tmp_path)
    bundled = _python(SHOW.format(
        install=f"import lamina_startup; lamina_startup.install({str(bundle)!r})",
        samples=SAMPLES), tmp_path)
    assert plain.returncode == bundled.returncode == 0, plain.stderr + bundled.stderr
    assert plain.stdout.splitlines()[0] == bundled.stdout.splitlines()[0]
    assert bundled.stdout.splitlines()[1] == "_use_regex_programs.<locals>.compile"
    assert plain.stdout.splitlines()[1] == "compile"


def test_programs_of_another_python_are_not_used(tmp_path):
    (tmp_path / "demo_patterns.py").write_text(PATTERNS)
    bundle = tmp_path / "bundle.bin"
    assert _python(f"""
        import lamina_startup
        lamina_startup._regex_engine = lambda: (0, "another Python")
        lamina_startup.write({str(bundle)!r}, ["demo_patterns"])
    """, tmp_path).returncode == 0
    out = _python(SHOW.format(
        install=f"import lamina_startup; lamina_startup.install({str(bundle)!r})",
        samples=SAMPLES), tmp_path)
    assert (out.returncode, out.stdout.splitlines()[1]) == (0, "compile"), out.stderr
