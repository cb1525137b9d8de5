"""The Python API's documentation runs: every ```python block of docs/api.md and of the README's
"Python API" section runs as a script, each in a state root of its own
(lamina.testing.temporary_store) that holds busybox:latest, in a folder of its own, with the
credentials isolated. A block fenced ```python no-run is shown, not run (it needs the network).

A block passes when it exits 0: its asserts are what the reader is told to expect."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.testing import temporary_store

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("docs/api.md", "README.md")
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```$", re.M | re.S)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("crun") or not Path("/bin/busybox").exists(),
    reason="the examples run containers: needs root, crun and busybox-static")


def _examples() -> list:
    found = []
    for name in SOURCES:
        text = (REPO / name).read_text()
        start, end = _span(name, text)
        for match in FENCE.finditer(text, start, end):
            line = text.count("\n", 0, match.start()) + 2     # the block's first code line
            section = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)
            label = f"{name}:{line} ({section[-1] if section else 'top'})"
            marks = [pytest.mark.skip("no-run: needs the network")] \
                if "no-run" in match["info"] else []
            found.append(pytest.param(name, line, match["code"], id=label, marks=marks))
    return found


def _span(name: str, text: str) -> tuple[int, int]:
    """Where the examples are: all of docs/api.md, the README's "## Python API" section."""
    if name != "README.md":
        return 0, len(text)
    start = text.index("\n## Python API\n")
    end = text.find("\n## ", start + 1)
    return start, end if end != -1 else len(text)


def test_the_documents_have_examples():
    ran = [p for p in _examples() if not p.marks]
    assert {p.values[0] for p in ran} == set(SOURCES)
    assert len(ran) >= 50


@pytest.mark.parametrize("source, line, code", _examples())
def test_example_runs(source, line, code, tmp_path):
    from lamina.api import bootstrap_busybox

    work = tmp_path / "work"
    work.mkdir()
    script = work / "example.py"
    # Padding puts the code at its line of the document: a traceback names that line.
    script.write_text("\n" * (line - 1) + code)
    with temporary_store() as store:
        bootstrap_busybox(store=store)
        done = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True,
                              text=True, timeout=300, env=dict(os.environ))
        leftover = [c.id[:12] for c in _containers(store) if c.status == "running"]
    assert done.returncode == 0, (f"{source}:{line}: the example failed "
                                  f"({done.returncode}):\n{done.stdout}\n{done.stderr}")
    assert leftover == [], f"{source}:{line}: the example left containers running"


def _containers(store):
    from lamina.api import list_containers

    return list_containers(all=True, store=store)
