"""Properties of .dockerignore reading and matching, on random input.

Bad pattern text must be reported as IgnoreFileError (the CLI prints those); anything else
escaping would be a traceback in front of a user.
"""
from __future__ import annotations

import re

from hypothesis import assume, event, given, settings, strategies as st

from lamina.dockerfile.ignore import (
    BAD_PATTERN, PatternMatcher, go_clean, matches, read_ignore,
)
from lamina.errors import IgnoreFileError

# Pattern text leaning on the characters that mean something, plus anything at all.
SYNTAX = st.sampled_from(list("ab/*?[]^-!\\. \t#") + ["**", "**/", "[a-", "\udc80", "\u2028"])
PATTERN = st.lists(SYNTAX | st.characters(), max_size=10).map("".join)
PATH = st.lists(st.sampled_from(["a", "b", "ab", ".", "..", "/", "*", "-", "]", "\\", "é", "\n"]),
                max_size=8).map("".join)

KNOWN_ERRORS = (BAD_PATTERN, 'illegal exclusion pattern: "!"')


def build(patterns: list[str]) -> PatternMatcher | None:
    try:
        return PatternMatcher(patterns)
    except IgnoreFileError as err:
        assert err.message.startswith(KNOWN_ERRORS)
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERN, max_size=4), st.lists(PATH, max_size=4))
def test_patterns_build_or_fail_cleanly_and_matching_never_crashes(patterns, paths):
    pm = build(patterns)
    if pm is None:
        return
    for path in paths:
        for match in (pm.matches_or_parent_matches, pm.matches_using_parent_results,
                      pm.matches, lambda p: matches(p, patterns)):
            try:
                result = match(path)
            except IgnoreFileError as err:  # a reversed range, found on first use
                assert err.message.startswith(BAD_PATTERN)
                continue
            assert isinstance(result[0] if isinstance(result, tuple) else result, bool)


@given(st.text() | st.binary())
def test_read_ignore_never_fails_and_yields_clean_patterns(data):
    patterns = read_ignore(data)
    assert len(patterns.lines) == len(patterns)
    assert patterns.lines == sorted(set(patterns.lines))
    for pattern in patterns:
        # Trimmed before cleaning, not after (as upstream): "./ a" gives " a".
        assert pattern
        body = pattern[1:] if pattern.startswith("!") else pattern
        if body and body != "/":
            assert not body.startswith("/") and go_clean(body) == body
    build(list(patterns))  # and the result builds or fails cleanly


def glob(pattern: str, name: str) -> bool:
    """An independent filepath.Match: ``*`` and ``?`` stay within one path element."""
    if not pattern:
        return name == ""
    head = pattern[0]
    if head == "*":
        for cut in range(len(name) + 1):
            if glob(pattern[1:], name[cut:]):
                return True
            if cut < len(name) and name[cut] == "/":
                return False
        return False
    if not name:
        return False
    if head == "?":
        return name[0] != "/" and glob(pattern[1:], name[1:])
    if head == "\\":
        return name[0] == pattern[1] and glob(pattern[2:], name[1:])
    if head != "[":
        return name[0] == head and glob(pattern[1:], name[1:])
    i = 1
    negated = pattern[i] == "^"
    i += negated
    hit, first = False, True
    while first or pattern[i] != "]":
        first = False
        bounds = []
        for _ in range(2):
            if pattern[i] == "\\":
                i += 1
            bounds.append(pattern[i])
            i += 1
            if pattern[i] != "-" or len(bounds) == 2:
                break
            i += 1
        lo, hi = bounds[0], bounds[-1]
        hit = hit or lo <= name[0] <= hi
    return hit != negated and glob(pattern[i + 1:], name[1:])


def near(pattern: str, data: st.DataObject) -> str:
    """A path built from the pattern (star and "?" filled in, a class member picked), so that
    matches are common; the random fillers may also make it miss."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c in "*?":
            out.append(data.draw(st.sampled_from(["", "x", "/", "a"]) if c == "*"
                                 else st.sampled_from(["x", "/", "é"])))
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(pattern[i])
        elif c == "[":
            end = pattern.find("]", i + 2)
            members = pattern[i + 1:end] if end > 0 else "a"
            out.append(data.draw(st.sampled_from(list(members) + ["z"])))
            i = end if end > 0 else i
        else:
            out.append(c)
        i += 1
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(PATTERN, PATH | st.none(), st.data())
def test_single_star_patterns_match_like_filepath_match(pattern, path, data):
    """Without ``**`` a pattern means what Go's filepath.Match says, on the path itself."""
    pm = build([pattern])
    assume(pm is not None and len(pm.patterns) == 1 and not pm.patterns[0].exclusion)
    (compiled,) = pm.patterns
    assume("**" not in re.sub(r"\\.", "", compiled.text))  # escapes aside
    if path is None:
        path = near(compiled.text, data)
    try:
        got = compiled.matches(path)
    except IgnoreFileError:
        return  # reversed range: no filepath.Match answer to compare with
    event(f"matched={got}")
    assert got == glob(compiled.text, path)


@given(PATTERN, PATH)
def test_a_later_exception_undoes_a_pattern(pattern, path):
    pm = build([pattern])
    assume(pm is not None and len(pm.patterns) == 1)
    (compiled,) = pm.patterns
    assume(not compiled.exclusion and not compiled.text.startswith("/"))
    try:
        assert PatternMatcher([compiled.text, "!" + compiled.text]) \
            .matches_or_parent_matches(path) is False
    except IgnoreFileError as err:
        assert err.message.startswith(BAD_PATTERN)
