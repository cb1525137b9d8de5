"""Parser directives (``# syntax=``, ``# escape=``, ``# check=``) and syntax detection.

A directive is a comment of the form ``#name=value`` in the leading comment block of a
Dockerfile. The block ends at the first line that is not such a comment with a known name:
an instruction, a blank line, an ordinary comment, or an unknown ``#key=value``. Names are
case-insensitive and each may appear once. This module also holds the whitespace set Go's
``unicode.IsSpace`` uses, which the rest of the parser shares.
"""
from __future__ import annotations

import json
import re
from collections import namedtuple

from lamina.dockerfile.ast import Directive
from lamina.errors import DockerfileError

# Go's unicode.IsSpace. Python's str.isspace() also counts \x1c-\x1f, which Go does not.
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
            "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

KNOWN = ("syntax", "escape", "check")
BOM = "\ufeff"

# After the comment prefix and any leading whitespace. Go's \s is [\t\n\f\r ] (no \v).
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


class DirectiveParser:
    """Feeds on physical lines one at a time until the directive block ends.

    ``comment`` is the comment prefix: ``#`` for Dockerfiles; ``//`` is only tried by
    :func:`detect_syntax`. ``line`` counts the lines fed so far (a skipped shebang counts).
    """

    def __init__(self, comment: str = "#", line: int = 0, file: str | None = None) -> None:
        self.comment = comment
        self.line = line
        self.file = file
        self.done = False
        self.seen: set[str] = set()

    def parse_line(self, text: str) -> Directive | None:
        """The directive on this line, or None (after which the block is over).

        ``text`` must have no line ending. Raises DockerfileError for a repeated directive.
        """
        self.line += 1
        if self.done:
            return None
        if not text.startswith(self.comment):
            self.done = True
            return None
        m = _DIRECTIVE.fullmatch(text[len(self.comment):].lstrip(GO_SPACE))
        name = m.group(1).lower() if m else ""
        if name not in KNOWN:
            self.done = True
            return None
        if name in self.seen:
            raise DockerfileError(
                f"only one {name} parser directive can be used", file=self.file,
                line=self.line, column=1, hint=f"remove the repeated '# {name}=' line")
        self.seen.add(name)
        return Directive(name=name, value=m.group(2), line=self.line)

    def parse_all(self, text: str, *, strict: bool = True) -> list[Directive]:
        """All directives at the start of ``text`` (lines split the way Go's ScanLines does).

        A repeated directive raises, unless ``strict`` is False: then the directives before it
        are returned (what syntax detection uses).
        """
        found = []
        for raw in _scan_lines(text):
            if self.done:
                break
            try:
                d = self.parse_line(raw)
            except DockerfileError:
                if strict:
                    raise
                break
            if d is not None:
                found.append(d)
        return found


class DirectiveValue(namedtuple("DirectiveValue", "ref cmdline line")):
    """A directive's value: ``ref`` up to its first space (the frontend image for `syntax`),
    ``cmdline`` the whole of it, ``line`` the directive's 1-based line (0 for the JSON form
    without a shebang). (collections' namedtuple: typing's costs every command ~2 ms.)"""

    __slots__ = ()


def detect_syntax(data: bytes | str) -> DirectiveValue | None:
    """The ``syntax`` directive: ``# syntax=``, else ``// syntax=``, else JSON ``{"syntax": …}``.

    A leading ``#!`` line is skipped (but counted) and a UTF-8 BOM is ignored.
    """
    return _find_directive("syntax", data, any_format=True)


def parse_directive(key: str, data: bytes | str) -> DirectiveValue | None:
    """The ``# key=`` directive of a Dockerfile (``#`` comments only)."""
    return _find_directive(key, data, any_format=False)


def _find_directive(key: str, data: bytes | str, any_format: bool) -> DirectiveValue | None:
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    text = text.removeprefix(BOM)
    first, nl, rest = text.partition("\n")
    start = 0
    if first.startswith("#!"):
        text, start = rest, 1
    prefixes = ("#", "//") if any_format else ("#",)
    for prefix in prefixes:
        for d in DirectiveParser(prefix, line=start).parse_all(text, strict=False):
            if d.name == key:
                return DirectiveValue(d.value.partition(" ")[0], d.value, d.line)
    if any_format:
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return None
        value = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(value, str):
            return DirectiveValue(value, value, start)
    return None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity, Go does not


def _scan_lines(text: str) -> list[str]:
    """Go bufio.ScanLines: split at \\n, drop one trailing \\r, no empty token after a final \\n."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
