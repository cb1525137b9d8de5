"""Heredocs: finding ``<<WORD`` in an instruction line, and collecting the bodies.

``RUN <<EOF`` (also ``<<-EOF``, ``3<<EOF``, ``<<'EOF'``, ``<< EOF``) starts a body that runs
to a line equal to the terminator word. Only ADD, COPY and RUN in shell form collect bodies
(the parser decides that); this module does the word-level work. Like BuildKit, the line is
split into words by the shell lexer with quotes and escapes kept raw, always with ``\\`` as
the escape character whatever ``# escape=`` says, and each word is checked on its own.
"""
from __future__ import annotations

import re

from lamina.dockerfile.ast import Heredoc
from lamina.dockerfile.shell import ShellLex, heredoc_name
from lamina.errors import DockerfileError, ShellWordError

# fd digits, "-" for chomp, blanks the lexer kept after "<<", then the terminator word.
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)

# For finding the words of a line: nothing may be lost, so quotes, escapes and unset
# variables all stay as written.
_LINE_LEXER = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc that ``word`` starts, or None when it is not one (``<<``, ``<<EOF sh``).

    Raises DockerfileError when the terminator word cannot be lexed (``<<'EOF``).
    """
    m = _HEREDOC_WORD.fullmatch(word)
    if m is None or not m.group(3):
        return None
    fd, chomp, rest = m.groups()
    try:
        name, expand = heredoc_name(rest)
    except ShellWordError as e:
        # Its column is inside the word; the caller places the error on the instruction.
        raise DockerfileError(e.message, hint=e.hint) from None
    if not name:
        return None  # not exactly one word: "<<EOF sh" is a redirection, not a terminator
    return Heredoc(name=name, file_descriptor=int(fd or 0), expand=expand, chomp=chomp == "-")


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line starts, in order (their bodies still empty)."""
    if "<<" not in line:
        return []
    try:
        words = _LINE_LEXER.process_words(line, {})
    except DockerfileError:
        return []  # upstream ignores a line it cannot lex here (it fails later, if at all)
    docs = []
    for word in words:
        doc = parse_heredoc_word(word) if "<<" in word else None
        if doc is not None:
            docs.append(doc)
    return docs


def read_body(doc: Heredoc, lines: list[str], pos: int) -> int | None:
    """Fill ``doc.content`` from ``lines[pos:]`` up to its terminator line.

    ``lines`` are physical lines without their ``\\n``. Returns the index after the
    terminator, or None when the input ends first. The content is kept raw (CRs, tabs);
    ``<<-`` only lets the terminator line start with tabs.
    """
    body = []
    for j in range(pos, len(lines)):
        raw = lines[j]
        candidate = raw.rstrip("\r")
        if doc.chomp:
            candidate = candidate.lstrip("\t")
        if candidate == doc.name:
            doc.content = "".join(body)
            return j + 1
        # Every body line is followed by at least the terminator, so it had a newline.
        body.append(raw + "\n")
    return None


def chomp(content: str) -> str:
    """Strip the leading tabs of every line (what ``<<-`` does to the data of a COPY)."""
    return _LEADING_TABS.sub("", content)
