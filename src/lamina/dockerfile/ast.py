"""The lossless parse tree: what the parser produces and what lint, dump and the typed
instructions read. Shaped like BuildKit's ``parser.Node`` so the upstream vectors apply directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heredoc:
    """One ``<<WORD`` body. ``content`` is raw and ends with its last newline."""

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True   # False when any part of the word was quoted (<<'EOF', <<"EOF", <<E'O'F)
    chomp: bool = False   # <<-: leading tabs allowed on the terminator line


@dataclass
class Node:
    """One instruction (a child of the root) or one argument (a link of the ``next`` chain).

    For an instruction: ``value`` is the instruction name lowercased, ``original`` the
    instruction text as written (continuations joined), ``flags`` the ``--x`` words before the
    arguments, ``next`` the first argument, ``json`` whether the arguments were a JSON array,
    ``heredocs`` the bodies it collected, ``start_line``/``end_line`` its 1-based physical line
    range (heredoc bodies included), ``prev_comment`` the comment lines right above it.
    ONBUILD's single argument node holds the trigger instruction in ``children``.
    """

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    json: bool = False
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)
    # Column (1-based) where the instruction keyword starts on start_line; errors point here.
    column: int = 1

    def args(self) -> list[str]:
        """The values of the ``next`` chain, in order."""
        out = []
        n = self.next
        while n is not None:
            out.append(n.value)
            n = n.next
        return out

    def arg_nodes(self) -> list[Node]:
        out = []
        n = self.next
        while n is not None:
            out.append(n)
            n = n.next
        return out


@dataclass
class Warning:
    """A problem the parser tolerates (e.g. an empty continuation line)."""

    message: str
    line: int
    column: int = 1
    rule: str = ""
    detail: str = ""  # a longer explanation, shown after the message (upstream's Detail)


@dataclass
class Directive:
    """A parser directive (``# syntax=``, ``# escape=``, ``# check=``)."""

    name: str      # lowercased: syntax, escape, check
    value: str
    line: int


@dataclass
class ParseResult:
    """The parse tree of a Dockerfile, with the parser's warnings."""

    root: Node
    warnings: list[Warning]
    escape_token: str = "\\"
    directives: list[Directive] = field(default_factory=list)
    file: str = "Dockerfile"
