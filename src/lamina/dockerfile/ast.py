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


def _list_field(slot: str) -> property:
    """A list attribute kept in ``slot`` as None until first used, then an empty list."""

    def get(self: Node) -> list:
        value = getattr(self, slot)
        if value is None:
            value = []
            setattr(self, slot, value)
        return value

    def set_(self: Node, value: list) -> None:
        setattr(self, slot, value)

    return property(get, set_)


class Node:
    """One instruction (a child of the root) or one argument (a link of the ``next`` chain).

    For an instruction: ``value`` is the instruction name lowercased, ``original`` the
    instruction text as written (continuations joined), ``flags`` the ``--x`` words before the
    arguments, ``next`` the first argument, ``json`` whether the arguments were a JSON array,
    ``heredocs`` the bodies it collected, ``start_line``/``end_line`` its 1-based physical line
    range (heredoc bodies included), ``prev_comment`` the comment lines right above it.
    ONBUILD's single argument node holds the trigger instruction in ``children``.

    It behaves like a (non-frozen) dataclass with those fields, in that order. It is written
    out by hand for speed: a long Dockerfile has tens of thousands of argument nodes, and their
    four lists, almost always empty, are created only when read (eager lists were 3/4 of the
    objects parsing allocated, all walked by the cyclic GC).
    """

    __slots__ = ("value", "next", "json", "original", "start_line", "end_line", "column",
                 "_children", "_heredocs", "_flags", "_prev_comment")
    __match_args__ = ("value", "next", "children", "heredocs", "json", "original", "flags",
                      "start_line", "end_line", "prev_comment", "column")
    __hash__ = None  # type: ignore[assignment]  # mutable, like an eq dataclass

    value: str
    next: Node | None
    json: bool
    original: str
    start_line: int
    end_line: int
    # Column (1-based) where the instruction keyword starts on start_line; errors point here.
    column: int

    children = _list_field("_children")
    heredocs = _list_field("_heredocs")
    flags = _list_field("_flags")
    prev_comment = _list_field("_prev_comment")

    def __init__(self, value: str = "", next: Node | None = None,
                 children: list[Node] | None = None, heredocs: list[Heredoc] | None = None,
                 json: bool = False, original: str = "", flags: list[str] | None = None,
                 start_line: int = 0, end_line: int = 0, prev_comment: list[str] | None = None,
                 column: int = 1) -> None:
        self.value = value
        self.next = next
        self._children = children
        self._heredocs = heredocs
        self.json = json
        self.original = original
        self._flags = flags
        self.start_line = start_line
        self.end_line = end_line
        self._prev_comment = prev_comment
        self.column = column

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}"
                           for name, value in zip(self.__match_args__, self._fields()))
        return f"Node({fields})"

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
