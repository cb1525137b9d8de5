""".dockerignore reading and matching, with Docker's semantics (moby/patternmatcher).

Pure: no file system access here (see ``lamina.build.context`` for the walk).

Reading (``read_ignore``): a line is a comment only when its *first* character is ``#``; lines
are trimmed (Go's notion of white space) and blank ones dropped; a leading ``!`` is split off
and the rest trimmed again; the pattern is cleaned like Go's ``filepath.Clean`` and loses one
leading ``/``. A lone ``!`` is kept: it fails when the matcher is built.

Matching (``PatternMatcher``): each pattern is Go ``filepath.Match`` syntax (``*`` and ``?``
never cross ``/``, ``[...]``, ``[^...]``, ``\\`` escapes) plus ``**``, which crosses
directories. Patterns apply in order and the last one that matches decides, so ``!p``
re-includes what an earlier pattern excluded. A path also matches when one of its ancestor
directories does. Like upstream, each pattern is classified once (exact string, prefix,
suffix or regex) on first use; only the regex kind is compiled.

Where upstream's hand-written regex translation disagrees with ``filepath.Match`` (it passes
``\\d``, ``\\n`` ... and ``[[:alpha:]]`` to RE2 as regex syntax, and turns ``*``/``?`` inside
``[...]`` or a bare ``^`` into regex syntax too) lamina follows ``filepath.Match``: an escaped
character is that character, and ``[...]`` holds only characters and ranges. Those quirks
are unlikely in real files, and the ``filepath.Match`` reading is the documented one.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lamina.errors import IgnoreFileError

__all__ = [
    "BAD_PATTERN", "IgnorePatterns", "MatchInfo", "Pattern", "PatternMatcher",
    "go_clean", "go_dir", "go_trim", "matches", "read_ignore",
]

# Go's unicode.IsSpace: what strings.TrimSpace strips. Not str.strip(): Python also strips
# \x1c-\x1f, which Go keeps.
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
             "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

BAD_PATTERN = "syntax error in pattern"  # Go's filepath.ErrBadPattern text


def go_trim(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return s.strip(_GO_SPACE)


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on Unix (``posixpath.normpath`` keeps a leading ``//``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for elem in path.split("/"):
        if elem in ("", "."):
            continue
        if elem == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")  # ".." above the root of a rooted path is dropped
            continue
        parts.append(elem)
    body = "/".join(parts)
    if rooted:
        return "/" + body
    return body or "."


def go_dir(path: str) -> str:
    """Go's ``filepath.Dir``: everything before the last ``/``, cleaned (``"."`` if none)."""
    return go_clean(path[:path.rfind("/") + 1])


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

class IgnorePatterns(list[str]):
    """The patterns of one ignore file; compares equal to a plain list.

    ``lines[i]`` is the 1-based line of ``self[i]`` and ``path`` the file's name, so that
    ``PatternMatcher(read_ignore(...))`` reports errors as ``path:line``.
    """

    def __init__(self, patterns: Iterable[str] = (), *, path: str | None = None,
                 lines: Iterable[int] = ()) -> None:
        super().__init__(patterns)
        self.path = path
        self.lines = list(lines)


def read_ignore(text: str | bytes | None, path: str = ".dockerignore") -> IgnorePatterns:
    """The patterns of a .dockerignore file, as Docker's ``ignorefile.ReadAll`` returns them.

    Bytes are decoded as UTF-8; bytes that are not UTF-8 survive as surrogate escapes, as
    file names from ``os`` do, so they still compare equal. ``None`` (no file) gives no
    patterns.
    """
    result = IgnorePatterns(path=path)
    if text is None:
        return result
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # text ended with a newline (or was empty): no last line to read
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]  # Go's line scanner drops one CR before the LF
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):  # column 0 only: "  # x" is a pattern
            continue
        pattern = go_trim(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = go_trim(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]  # absolute means relative to the context
        result.append("!" + pattern if invert else pattern)
        result.lines.append(number)
    return result


# --------------------------------------------------------------------------------------------
# Pattern syntax
# --------------------------------------------------------------------------------------------

class _BadPattern(Exception):
    """A pattern ``filepath.Match`` would reject (or, for reversed ranges, RE2 would)."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


# Tokens of a pattern: ("lit", c) a plain character, ("esc", c) an escaped one, ("star",),
# ("any",) for "?", ("class", negated, ((lo, hi), ...)) for [...].
_Token = tuple


def _tokenize(pattern: str) -> list[_Token]:
    """Split a pattern with ``filepath.Match``'s grammar, rejecting what it rejects."""
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            tokens.append(("star",))
        elif c == "?":
            tokens.append(("any",))
        elif c == "\\":
            i += 1
            if i == n:
                raise _BadPattern('it ends with an unescaped "\\"',
                                  'write "\\\\" to match a backslash')
            tokens.append(("esc", pattern[i]))
        elif c == "[":
            i, token = _class(pattern, i)
            tokens.append(token)
            continue
        else:
            tokens.append(("lit", c))
        i += 1
    return tokens


def _class(pattern: str, start: int) -> tuple[int, _Token]:
    """Parse ``[...]`` at ``start``; return the index after it and the token."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        # "]" closes the class, except right after "[" (or "[^"), where it is an error.
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return i + 1, ("class", negated, tuple(ranges))
        lo, i = _class_char(pattern, i, start)
        hi = lo
        if pattern[i] == "-":  # _class_char leaves at least one character after it
            hi, i = _class_char(pattern, i + 1, start)
        ranges.append((lo, hi))


def _class_char(pattern: str, i: int, start: int) -> tuple[str, int]:
    """One character of a class (after an optional ``\\``); the class must go on after it."""
    unclosed = _BadPattern(f'the "[" at offset {start} is never closed by "]"',
                           'close the class with "]", or write "\\[" to match a "["')
    if i >= len(pattern):
        raise unclosed
    c = pattern[i]
    if c in "-]":
        raise _BadPattern(f'"{c}" cannot stand here in the character class at offset {start}',
                          f'escape it as "\\{c}" to match a "{c}" '
                          '(a range is written like "a-z")')
    if c == "\\":
        i += 1
        if i >= len(pattern):
            raise unclosed
        c = pattern[i]
    if "\udc80" <= c <= "\udcff":  # a byte that is not UTF-8 (surrogate-escaped)
        raise _BadPattern(f"the character class at offset {start} holds a byte that is "
                          "not UTF-8", "save the ignore file as UTF-8")
    i += 1
    if i >= len(pattern):
        raise unclosed
    return c, i


# Characters that mean something in a Python regex outside a class, and inside one.
_RE_SPECIAL = frozenset(".^$*+?{}[]\\|()")
_CLASS_SPECIAL = frozenset("\\]^-[&~|")


def _lit(c: str) -> str:
    return "\\" + c if c in _RE_SPECIAL else c


def _class_lit(c: str) -> str:
    return "\\" + c if c in _CLASS_SPECIAL else c


TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Literal
    Kind = Literal["exact", "prefix", "suffix", "regexp"]


def _classify(tokens: list[_Token]) -> tuple[Kind, str]:
    """How to match a pattern, and the regex source when that is ``regexp``.

    Follows upstream's classification, which decides observable behaviour: a pattern that
    starts with ``**`` and is literal after it is a *suffix* test (``**file`` matches
    ``myfile``), literal text ending in ``**`` is a *prefix* test, pure literal text is an
    exact comparison. The source is shaped like upstream's (``^...$``), so the vectors of
    patternmatcher_compile.json apply.
    """
    kind: Kind = "exact"
    out = ["^"]
    i, n = 0, len(tokens)
    while i < n:
        first = i == 0
        tag = tokens[i][0]
        if tag == "star" and i + 1 < n and tokens[i + 1][0] == "star":
            i += 2
            if i < n and tokens[i] == ("lit", "/"):
                i += 1  # "**/" is "**": the slash is optional, "(.*/)?" below
            if i == n:
                if kind == "exact":
                    kind = "prefix"
                else:
                    out.append(".*")
                    kind = "regexp"
            else:
                out.append("(.*/)?")
                kind = "regexp"
            if first:
                kind = "suffix"
            continue
        if tag == "star":
            out.append("[^/]*")
            kind = "regexp"
        elif tag == "any":
            out.append("[^/]")
            kind = "regexp"
        elif tag == "class":
            _, negated, ranges = tokens[i]
            for lo, hi in ranges:
                if lo > hi:
                    raise _BadPattern(
                        f'the range "{lo}-{hi}" in a character class is reversed',
                        f'write it low to high ("{hi}-{lo}"), or escape the "-" as "\\-" '
                        "to match a dash")
            body = "".join(_class_lit(lo) if lo == hi else f"{_class_lit(lo)}-{_class_lit(hi)}"
                           for lo, hi in ranges)
            out.append(f"[{'^' if negated else ''}{body}]")
            kind = "regexp"
        else:
            c = tokens[i][1]
            out.append(_lit(c))
            if tag == "esc" or c == "]":  # upstream treats these as regex syntax
                kind = "regexp"
        i += 1
    out.append("$")
    return kind, "".join(out) if kind == "regexp" else ""


# --------------------------------------------------------------------------------------------
# Patterns and the matcher
# --------------------------------------------------------------------------------------------

def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Pattern:
    """One cleaned pattern: ``text`` without its ``!``, ``exclusion`` for ``!`` lines."""

    __slots__ = ("text", "exclusion", "path", "line", "dirs", "_tokens", "_kind", "_regex")

    def __init__(self, text: str, exclusion: bool, path: str | None, line: int | None) -> None:
        self.text = text
        self.exclusion = exclusion
        self.path = path
        self.line = line
        self.dirs = text.split("/")  # only for the deprecated one-parent matching
        try:
            self._tokens = _tokenize(text)
        except _BadPattern as bad:
            raise self._error(bad) from None
        self._kind: Kind | None = None
        self._regex: re.Pattern[str] | None = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Pattern({_quote(('!' if self.exclusion else '') + self.text)})"

    def _error(self, bad: _BadPattern) -> IgnoreFileError:
        written = ("!" if self.exclusion else "") + self.text
        return IgnoreFileError(f"{BAD_PATTERN} {_quote(written)}: {bad.reason}",
                               path=self.path, line=self.line, hint=bad.hint)

    def _compile(self) -> Kind:
        # Compiled on first use and kept only on success, so a pattern that cannot be
        # compiled fails every match call the same way (as upstream does).
        if self._kind is None:
            try:
                kind, source = _classify(self._tokens)
                if kind == "regexp":
                    try:
                        self._regex = re.compile(source)
                    except re.error as err:  # not expected: _classify escapes what it emits
                        raise _BadPattern(f"it cannot be compiled ({err})",
                                          "escape special characters with \\") from None
            except _BadPattern as bad:
                raise self._error(bad) from None
            self._kind = kind
        return self._kind

    @property
    def kind(self) -> Kind:
        """``exact``, ``prefix``, ``suffix`` or ``regexp``; raises IgnoreFileError if bad."""
        return self._compile()

    @property
    def regex_source(self) -> str:
        """The regex (upstream's ``^...$`` shape) for the ``regexp`` kind, else ``""``."""
        return self._regex.pattern if self._compile() == "regexp" else ""

    def matches(self, path: str) -> bool:
        """Whether this pattern alone matches ``path`` (no ancestor rule)."""
        kind = self._compile()
        if kind == "exact":
            return path == self.text
        if kind == "prefix":
            return path.startswith(self.text[:-2])
        if kind == "suffix":
            suffix = self.text[2:]
            # "**/foo" also matches "foo" itself.
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        return self._regex.fullmatch(path) is not None


# Per-pattern results for a directory, handed to its children by
# PatternMatcher.matches_using_parent_results. () means "nothing known".
MatchInfo = tuple[bool, ...]


class PatternMatcher:
    """The patterns of an ignore file, in order.

    ``PatternMatcher(read_ignore(data, path))`` knows the file and line of each pattern;
    pass ``path``/``lines`` to say so for other lists. Blank entries are dropped, each one
    is trimmed and cleaned, and each is checked like Go's ``filepath.Match``: a bad one
    raises IgnoreFileError here. A reversed range such as ``[z-a]`` passes that check and
    fails on every match call instead, as upstream.
    """

    def __init__(self, patterns: Iterable[str], *, path: str | None = None,
                 lines: Sequence[int] | None = None) -> None:
        if isinstance(patterns, IgnorePatterns):
            path = patterns.path if path is None else path
            lines = patterns.lines if lines is None else lines
        patterns = list(patterns)
        if lines is not None and len(lines) != len(patterns):
            raise ValueError("lines must give one line number per pattern")
        self._patterns: list[Pattern] = []
        self._exclusions = False
        for index, raw in enumerate(patterns):
            line = lines[index] if lines is not None else None
            text = go_trim(raw)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if text == "!":
                    raise IgnoreFileError(
                        'illegal exclusion pattern: "!"', path=path, line=line,
                        hint='"!" must be followed by the pattern it re-includes, '
                             'e.g. "!docs/README.md"; delete the line if it has none')
                text = text[1:]
                self._exclusions = True
            self._patterns.append(Pattern(text, exclusion, path, line))

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        return tuple(self._patterns)

    @property
    def exclusions(self) -> bool:
        """Whether any pattern is a ``!`` exception."""
        return self._exclusions

    def matches_or_parent_matches(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated, taken as given) is ignored.

        A pattern that matches any ancestor directory of ``path`` matches ``path`` too.
        """
        parents = _ancestors(path)
        matched = False
        for pattern in self._patterns:
            # Only a pattern that could change the verdict is evaluated: an exception when
            # the path is ignored so far, an exclusion when it is not.
            if pattern.exclusion != matched:
                continue
            if pattern.matches(path) or any(pattern.matches(p) for p in parents):
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(self, path: str, parent_info: MatchInfo = ()
                                     ) -> tuple[bool, MatchInfo]:
        """Like ``matches_or_parent_matches``, reusing the parent directory's results.

        For a walk: pass each directory's returned info to its children. With ``()``
        (nothing known, e.g. at the top) the ancestors are tested one by one.
        """
        if parent_info and len(parent_info) != len(self._patterns):
            raise ValueError("parent_info holds results of a different PatternMatcher")
        matched = False
        info: list[bool] = []
        for index, pattern in enumerate(self._patterns):
            hit = bool(parent_info) and parent_info[index]
            if not hit:
                if pattern.exclusion != matched:
                    info.append(False)
                    continue
                hit = pattern.matches(path)
                if not hit and not parent_info:
                    hit = any(pattern.matches(p) for p in _ancestors(path))
            info.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(info)

    def matches_using_parent_result(self, path: str, parent_matched: bool) -> bool:
        """Deprecated upstream: the parent's verdict alone stands for all ancestors."""
        matched = parent_matched
        for pattern in self._patterns:
            if pattern.exclusion == matched and pattern.matches(path):
                matched = not pattern.exclusion
        return matched

    def matches(self, path: str) -> bool:
        """Deprecated upstream: tests only the one ancestor as deep as each pattern."""
        parent = go_dir(path)
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path)
            if not hit and parent != "." and len(pattern.dirs) <= len(parent_dirs):
                hit = pattern.matches("/".join(parent_dirs[:len(pattern.dirs)]))
            if hit:
                matched = not pattern.exclusion
        return matched


def _ancestors(path: str) -> list[str]:
    """The ancestor directories of ``path``, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parent = go_dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[:i]) for i in range(1, len(dirs) + 1)]


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Deprecated upstream ``Matches``: cleans ``path``; ``.`` never matches."""
    matcher = PatternMatcher(patterns)
    path = go_clean(path)
    if path == ".":
        return False
    return matcher.matches(path)
