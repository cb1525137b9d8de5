"""Upstream .dockerignore vectors (shared/conformance/dockerignore, README section 3) and the
real-world ignore files (shared/realworld/dockerignore), read and matched by lamina.

Every vector file is loaded here; each case is its own test id. A case that does not apply
to lamina is skipped by name with its reason, never dropped.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from lamina.build.context import ignore_file_for, list_context, load_ignore
from lamina.dockerfile.ignore import (
    PatternMatcher, go_dir, matches, read_ignore,
)
from lamina.errors import IgnoreFileError
from tests.conftest import CONFORMANCE, REALWORLD

VECTORS = CONFORMANCE / "dockerignore"
CORPUS = REALWORLD / "dockerignore"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_every_vector_file_is_covered():
    """A new vector file upstream must get tests here, not be ignored."""
    covered = {"ignorefile_readall.json", "patternmatcher_matches.json",
               "patternmatcher_filepath_match.json", "patternmatcher_misc.json",
               "patternmatcher_compile.json", "build_scenarios.json"}
    assert {p.name for p in VECTORS.iterdir()} == covered


def unix_only(platform: str):
    """Rows upstream runs only where "\\" is an escape, not a path separator."""
    return pytest.mark.skipif(
        platform == "unix" and sys.platform == "win32",
        reason="unix-only row: on Windows '\\' is the path separator, not an escape")


def expect_error(expected: str):
    """Lamina's message starts with upstream's error text, then says more."""
    return pytest.raises(IgnoreFileError, match="^" + re.escape(expected))


# --- 3.1 ignorefile_readall.json --------------------------------------------------------------

READALL = load("ignorefile_readall.json")


@pytest.mark.parametrize("case", READALL["cases"], ids=[c["name"] for c in READALL["cases"]])
def test_readall(case):
    data = bytes.fromhex(case.get("input_hex_prefix", "")) + case["input"].encode("utf-8")
    assert read_ignore(data) == case["expected"]
    if "input_hex_prefix" not in case:
        assert read_ignore(case["input"]) == case["expected"]  # str input reads the same


def test_readall_nil_reader():
    assert read_ignore(None) == READALL["nil_reader"]["expected"]


def test_readall_knows_lines():
    """Not upstream: lamina records each pattern's line for error messages."""
    patterns = read_ignore(READALL["cases"][0]["input"], "ctx/.dockerignore")
    assert patterns.lines == [1, 2, 3, 5, 7, 8, 9]
    assert patterns.path == "ctx/.dockerignore"


# --- 3.2 patternmatcher_matches.json ----------------------------------------------------------

MATCHES = load("patternmatcher_matches.json")


def _case_id(patterns, path) -> str:
    return f"{'|'.join(patterns)} ~ {path!r}"


def _ancestor_prefixes(path: str) -> list[str]:
    """What upstream's test feeds MatchesUsingParentResults before the path itself."""
    parent = go_dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[:i + 1]) for i in range(len(dirs))]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=unix_only(c["platform"]), id=_case_id(c["patterns"], c["path"]))
     for c in MATCHES["cases"]])
def test_matches(case):
    pm = PatternMatcher(case["patterns"])
    path, expected = case["path"], case["match"]

    assert pm.matches_or_parent_matches(path) is expected

    info: tuple[bool, ...] = ()
    for prefix in _ancestor_prefixes(path):
        _, info = pm.matches_using_parent_results(prefix, info)
    assert pm.matches_using_parent_results(path, info)[0] is expected

    assert pm.matches_using_parent_results(path, ())[0] is expected

    if not case.get("multi_pattern"):
        parent = False
        for prefix in _ancestor_prefixes(path):
            parent = pm.matches_using_parent_result(prefix, parent)
        assert pm.matches_using_parent_result(path, parent) is expected


# --- 3.3 patternmatcher_filepath_match.json ---------------------------------------------------

FILEPATH = load("patternmatcher_filepath_match.json")


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=unix_only(c["platform"]), id=_case_id([c["pattern"]], c["path"]))
     for c in FILEPATH["cases"]])
def test_filepath_match(case):
    if case["error"]:
        with expect_error(case["error"]):
            matches(case["path"], [case["pattern"]])
        with expect_error(case["error"]):  # New() rejects it, whatever the path
            PatternMatcher([case["pattern"]])
    else:
        assert matches(case["path"], [case["pattern"]]) is case["match"]


# --- 3.4 patternmatcher_misc.json -------------------------------------------------------------

MISC = load("patternmatcher_misc.json")


@pytest.mark.parametrize("case", MISC["matches_function"]["cases"],
                         ids=[c["name"] for c in MISC["matches_function"]["cases"]])
def test_misc_matches_function(case):
    if case.get("error"):
        with expect_error(case.get("error_equals", "")):
            matches(case["path"], case["patterns"])
    else:
        assert matches(case["path"], case["patterns"]) is case["match"]


@pytest.mark.parametrize("case", MISC["new_patterns"]["cases"],
                         ids=[c["name"] for c in MISC["new_patterns"]["cases"]])
def test_misc_new_patterns(case):
    if case.get("error"):
        with expect_error(case["error_equals"]):
            PatternMatcher(case["patterns"])
        return
    pm = PatternMatcher(case["patterns"])
    if "pattern_count" in case:
        assert len(pm.patterns) == case["pattern_count"]
    if "exclusions" in case:
        assert pm.exclusions is case["exclusions"]


def test_misc_lazy_compile_error():
    lazy = MISC["lazy_compile_error"]
    pm = PatternMatcher(lazy["patterns"])  # new_error is false: New() accepts it
    assert lazy["new_error"] is False
    for call in lazy["calls"]:  # every call fails, the second one the same way
        with expect_error(call["error_equals"]):
            pm.matches_or_parent_matches(call["path"])
        with expect_error(call["error_equals"]):
            pm.matches_using_parent_results(call["path"])


def test_lone_exclamation_names_file_and_line():
    with pytest.raises(IgnoreFileError) as err:
        PatternMatcher(read_ignore("a\n# c\n!\n", "ctx/.dockerignore"))
    assert (err.value.path, err.value.line) == ("ctx/.dockerignore", 3)
    assert str(err.value).startswith('ctx/.dockerignore:3: illegal exclusion pattern: "!"')


# --- 3.5 patternmatcher_compile.json ----------------------------------------------------------

COMPILE = load("patternmatcher_compile.json")


@pytest.mark.parametrize("case", COMPILE["cases"], ids=[c["pattern"] for c in COMPILE["cases"]])
def test_compile(case):
    """Lamina classifies like upstream, and builds the same regex for the '/' separator."""
    (pattern,) = PatternMatcher([case["pattern"]]).patterns
    assert pattern.kind == case["match_type"]
    assert pattern.regex_source == case["regexp_slash"]


@pytest.mark.skip(reason="regexp_backslash (all 21 compile cases): upstream's regex for the "
                         "Windows path separator '\\'; lamina matches Linux '/' paths only")
def test_compile_regexp_backslash():
    pass


# --- 3.6 build_scenarios.json -----------------------------------------------------------------

SCENARIOS = load("build_scenarios.json")["scenarios"]


def _with_context(scenarios: list[dict]) -> list[dict]:
    """Resolve "context": "same as previous scenario"."""
    out, previous = [], None
    for s in scenarios:
        if isinstance(s["context"], str):
            assert s["context"] == "same as previous scenario"
            s = {**s, "context": previous}
        previous = s["context"]
        out.append(s)
    return out


@pytest.mark.parametrize("scenario", _with_context(SCENARIOS), ids=[s["name"] for s in SCENARIOS])
def test_build_scenario(scenario, tmp_path: Path):
    for name, content in scenario["context"].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content.encode("utf-8"))
    dockerfile = tmp_path / scenario.get("dockerfile", "Dockerfile")
    ignore = ignore_file_for(tmp_path, dockerfile)

    if not scenario["expect_success"]:
        with pytest.raises(IgnoreFileError) as err:
            list_context(tmp_path, load_ignore(ignore) if ignore else None)
        assert err.value.path == str(ignore) and err.value.line is not None
        return

    sent = set(list_context(tmp_path, load_ignore(ignore) if ignore else None))
    # After `COPY . .` the image holds exactly what was sent.
    for name, content in scenario.get("expect_files", {}).items():
        assert name in sent
        assert (tmp_path / name).read_text(encoding="utf-8") == content
    for name in scenario.get("expect_present", []):
        assert name in sent
    for name in scenario.get("expect_absent", []):
        assert name not in sent


# --- real-world ignore files ------------------------------------------------------------------

MANIFEST = {Path(e["file"]).name: e for e in
            json.loads((REALWORLD / "MANIFEST.json").read_text(encoding="utf-8"))["dockerignores"]}


def test_corpus_matches_manifest():
    assert {p.name for p in CORPUS.iterdir()} == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_realworld_reads_and_compiles(name):
    """No expected results exist for these; they must read, build and match without error,
    with the pattern and negation counts the manifest gives."""
    path = CORPUS / name
    patterns = read_ignore(path.read_bytes(), str(path))
    pm = PatternMatcher(patterns)
    entry = MANIFEST[name]
    assert len(pm.patterns) == entry["pattern_lines"]
    assert sum(p.exclusion for p in pm.patterns) == entry["negations"]
    for pattern in pm.patterns:
        assert pattern.kind in ("exact", "prefix", "suffix", "regexp")  # compiles
    for probe in ("Dockerfile", "bin/x", "node_modules/a/b", ".git/HEAD", "dist/traefik"):
        assert pm.matches_or_parent_matches(probe) in (True, False)


# --- lamina's context walk: Docker's behaviour, not upstream vectors --------------------------

def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


def test_ignore_file_for_precedence(tmp_path: Path):
    assert ignore_file_for(tmp_path, None) is None
    _tree(tmp_path, [".dockerignore"])
    assert ignore_file_for(tmp_path, None) == tmp_path / ".dockerignore"
    _tree(tmp_path, ["build/app.Dockerfile", "build/app.Dockerfile.dockerignore"])
    assert ignore_file_for(tmp_path, tmp_path / "build/app.Dockerfile") == \
        tmp_path / "build/app.Dockerfile.dockerignore"
    assert ignore_file_for(tmp_path, tmp_path / "build/other.Dockerfile") == \
        tmp_path / ".dockerignore"


@pytest.mark.parametrize("patterns, sent", [
    # A wildcard exception can match at any depth: every ignored directory is walked, and
    # one is sent when something below it is.
    (["dist/", "!dist/**/traefik"],
     ["dist", "dist/traefik", "dist/x", "dist/x/traefik", "keep"]),
    # A plain-path exception re-includes only below the directories it starts with.
    (["dist", "!dist/traefik"], ["dist", "dist/traefik", "keep"]),
    (["*", "!dist/x/traefik"], ["dist", "dist/x", "dist/x/traefik"]),
    (["**", "!keep"], ["keep"]),
    ([], ["dist", "dist/other", "dist/traefik", "dist/x", "dist/x/traefik", "keep"]),
], ids=["wildcard-exception", "prefix-exception", "deep-exception", "all-but-one", "none"])
def test_list_context(tmp_path: Path, patterns, sent):
    _tree(tmp_path, ["dist/traefik", "dist/other", "dist/x/traefik", "keep"])
    assert list_context(tmp_path, PatternMatcher(patterns)) == sent


def test_list_context_symlinks_are_not_followed(tmp_path: Path):
    _tree(tmp_path, ["dir/file"])
    (tmp_path / "link").symlink_to("dir")
    (tmp_path / "dangling").symlink_to("nowhere")
    assert list_context(tmp_path, None) == ["dangling", "dir", "dir/file", "link"]


def test_list_context_pattern_error_names_line(tmp_path: Path):
    _tree(tmp_path, ["a"])
    (tmp_path / ".dockerignore").write_text("a\n[z-a]\n")
    with pytest.raises(IgnoreFileError) as err:
        list_context(tmp_path, load_ignore(tmp_path / ".dockerignore"))
    assert (err.value.path, err.value.line) == (str(tmp_path / ".dockerignore"), 2)
    assert err.value.message.startswith('syntax error in pattern "[z-a]"')


def test_load_ignore_unreadable(tmp_path: Path):
    (tmp_path / ".dockerignore").mkdir()
    with pytest.raises(IgnoreFileError) as err:
        load_ignore(tmp_path / ".dockerignore")
    assert err.value.path == str(tmp_path / ".dockerignore")
