"""Every real-world Dockerfile parses, into the instructions and line ranges MANIFEST.json lists.

MANIFEST.json is derived data (an independent re-implementation, hand-checked on a sample),
not BuildKit output; see shared/realworld/README.md.
"""
from __future__ import annotations

import json

import pytest

from lamina.dockerfile.parser import parse
from tests.conftest import REALWORLD

MANIFEST = json.loads((REALWORLD / "MANIFEST.json").read_bytes())
ENTRIES = [pytest.param(e, id=e["file"].removeprefix("dockerfiles/"))
           for e in MANIFEST["dockerfiles"]]


def test_every_corpus_file_is_listed():
    on_disk = {p.name for p in (REALWORLD / "dockerfiles").iterdir()}
    listed = {e["file"].removeprefix("dockerfiles/") for e in MANIFEST["dockerfiles"]}
    assert on_disk == listed


@pytest.mark.parametrize("entry", ENTRIES)
def test_realworld_dockerfile(entry):
    result = parse((REALWORLD / entry["file"]).read_bytes(), file=entry["file"])
    children = result.root.children
    assert len(children) == entry["instruction_count"]
    assert [c.value.upper() for c in children] == entry["instructions"]
    assert [[c.start_line, c.end_line] for c in children] == entry["instruction_lines"]
    assert sum(len(c.heredocs) for c in children) == entry["heredoc_count"]
    assert result.escape_token == entry["escape_token"]
    assert {d.name: d.value for d in result.directives} == entry["parser_directives"]
