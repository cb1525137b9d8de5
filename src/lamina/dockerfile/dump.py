"""BuildKit's AST dump (``Node.Dump()``): one ``(instruction "arg" …)`` s-expression a line.

Used to compare lamina's parse tree with the upstream ``testfiles/*/result`` files, and handy for
debugging. Strings are quoted the way Go's ``strconv.Quote`` does it, which is neither JSON nor
Python ``repr``: ``\\x00`` for NUL, printable Unicode written as is.
"""
from __future__ import annotations

import re

from lamina.dockerfile.ast import Node
from lamina.dockerfile.directives import GO_SPACE

_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}
# Everything that may need escaping; printable ASCII other than " and \ never does.
_SPECIAL = r'[^\x20-\x7e]|["\\]'    # compiled on first use (re keeps it): start-up time


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    o = ord(c)
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:
        # A byte that was not valid UTF-8 (kept by the surrogateescape decoding): Go prints
        # the raw byte.
        return f"\\x{o - 0xDC00:02x}"
    if c.isprintable():  # same categories as Go's unicode.IsPrint
        return c
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def go_quote(s: str) -> str:
    """Go ``strconv.Quote``."""
    return '"' + re.sub(_SPECIAL, _escape, s) + '"'


def dump(node: Node) -> str:
    """The s-expression of ``node`` (the root gives one line per instruction, no final newline)."""
    out = [node.value.lower()]
    if node.flags:
        out.append(" [" + " ".join(go_quote(f) for f in node.flags) + "]")
    for child in node.children:
        out.append("(" + dump(child) + ")\n")
    n = node.next
    while n is not None:
        out.append(" " + (dump(n) if n.children else go_quote(n.value)))
        n = n.next
    return "".join(out).strip(GO_SPACE)
