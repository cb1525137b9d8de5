"""Dockerfile text -> parse tree, read exactly the way BuildKit's Dockerfile parser reads it.

The result is lossless enough for lint, the upstream AST dump and the typed instructions: every
instruction keeps its original (joined) text, flags, arguments, heredoc bodies, line range and
the comments right above it. The parser does not check what an instruction means (unknown
names, missing arguments): the typed-instruction layer does.

How a file becomes instructions:

* physical lines split at ``\\n``; trailing ``\\r`` dropped; a UTF-8 BOM dropped from line 1;
* parser directives are read only in the leading comment block (see directives.py);
* ``#`` lines are comments, everywhere (also inside a continuation), except in heredoc bodies;
* a line ending in the escape token (then optional blanks) continues on the next non-comment,
  non-blank line, with no separator; only the first line loses its leading whitespace;
* the instruction's arguments are split per instruction (``_ARGUMENTS``), then ADD/COPY/RUN in
  shell form collect the heredoc bodies their line starts.

A few corner cases differ from upstream on purpose, for non-ASCII text only: upstream reads
flags and the HEALTHCHECK type byte by byte (so ``--chown=jérôme`` comes out garbled, and bytes
0x85/0xA0 inside a UTF-8 character count as spaces); lamina reads characters. Bytes that are not
valid UTF-8 are kept as they are (they dump as ``\\xNN``), where upstream's ARG/ENV/LABEL word
splitter turns them into U+FFFD.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable

from lamina.dockerfile import heredoc
from lamina.dockerfile.ast import Node, ParseResult, Warning
from lamina.dockerfile.directives import BOM, GO_SPACE, DirectiveParser
from lamina.dockerfile.dump import go_quote
from lamina.errors import DockerfileError

# bufio.MaxScanTokenSize - 1: upstream's scanner cannot hold a longer line plus its newline.
MAX_LINE_BYTES = 65535

# Upstream's separator between the instruction word and its arguments, and between the
# arguments of FROM/EXPOSE and the legacy ENV/LABEL form. ASCII blanks only, unlike GO_SPACE.
_BLANKS = re.compile(r"[\t\v\f\r ]+")
_GO_SPACES = re.compile(f"[{GO_SPACE}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_QUOTES_OR_ESCAPES = re.compile(r"""['"`\\]""")


def _runs(escape: str, in_single: str) -> tuple[re.Pattern[str], ...]:
    """Text a word loop copies in one go: outside quotes, inside "…", inside '…'."""
    e = re.escape(escape)
    return (re.compile(f"[^{GO_SPACE}'\"{e}]+"), re.compile(f'[^"{e}]+'),
            re.compile(f"[^'{in_single}]+"))


# Flags: a backslash escapes inside any quotes.
_FLAG_RUNS = _runs("\\", r"\\")
# A flag word without quotes or backslashes, up to a blank or the end.
_PLAIN_FLAG = re.compile(f"--[^{GO_SPACE}'\"\\\\]*(?![^{GO_SPACE}])")


def _word(escape: str) -> re.Pattern[str]:
    """One word of parse_words: plain text, escape pairs, "…" (escapes inside), '…' (none).

    A quote may be left open (it runs to the end). A lone escape token at the very end
    matches nothing, so it is dropped.
    """
    e = re.escape(escape)
    pair = f"{e}[\\s\\S]"
    return re.compile(f"(?:[^{GO_SPACE}'\"{e}]+|{pair}|\"(?:[^\"{e}]+|{pair})*\"?|'[^']*'?)+")


_WORDS = {"\\": _word("\\"), "`": _word("`")}

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"
EMPTY_CONTINUATION_DETAIL = "Empty continuation lines will become errors in a future release"
HEREDOC_INSTRUCTIONS = ("add", "copy", "run")


def parse(data: bytes | str, file: str = "Dockerfile") -> ParseResult:
    """Parse a whole Dockerfile. Raises DockerfileError (with file and line) when it cannot."""
    lines = _decode(data).split("\n")
    if lines[-1] == "":
        lines.pop()  # the empty remainder after a final newline is not a line
    too_long = _first_too_long(lines)
    if too_long is not None:
        # Upstream's scanner stops at an over-long line: everything before it is parsed (and
        # its errors win), then the scanner error is reported.
        del lines[too_long:]
    if lines and lines[0].startswith(BOM):
        lines[0] = lines[0][1:]

    escape = "\\"
    directive_parser = DirectiveParser("#", file=file)
    directives = []
    root = Node()
    children = root.children
    warnings: list[Warning] = []
    comments: list[str] = []
    continues = (escape, " ", "\t")   # what a continued line ends with, blanks before trimming
    i, count = 0, len(lines)
    while i < count:
        raw = lines[i]
        i += 1
        tok = raw.rstrip("\r")
        body = tok.lstrip(GO_SPACE)
        if body.startswith("#"):
            # Upstream drops the first byte (not the "#") before trimming, so an indented
            # comment keeps its "#" here; an empty comment clears the list.
            note = raw[1:].strip(GO_SPACE)
            if note:
                comments.append(note)
            else:
                comments = []
        if not directive_parser.done:
            d = directive_parser.parse_line(body)
            if d is not None:
                comments.pop()  # a directive is not a comment of the first instruction
                if d.name == "escape":
                    escape = _escape_token(d.value, file, i)
                    continues = (escape, " ", "\t")
                directives.append(d)
        if not body or body[0] == "#":
            continue

        start, column = i, len(tok) - len(body) + 1
        line, more = _trim_continuation(body, escape) if body.endswith(continues) else (body, False)
        if more:
            line, i, had_empty = _join_continuation(line, lines, i, escape)
            if had_empty:
                warnings.append(Warning(
                    message="Empty continuation line found in: " + line, line=i,
                    rule="NoEmptyContinuation", detail=EMPTY_CONTINUATION_DETAIL))

        try:
            # No comments: the node makes its (empty) list only if asked.
            node = node_from_line(line, escape, comments or None)
            docs = (heredoc.heredocs_from_line(line)
                    if "<<" in line and _collects_heredocs(node) else None)
        except DockerfileError as e:
            raise e.at(file, start, column) from None
        if docs:
            node.heredocs = docs
            for doc in docs:
                end = heredoc.read_body(doc, lines, i)
                if end is None:
                    raise DockerfileError(
                        "unterminated heredoc", file=file, line=start, column=column,
                        hint=f"end the heredoc with a line containing only {doc.name}")
                i = end
        _place(node, start, i, column)
        children.append(node)
        if comments:
            comments = []   # the node holds the old list

    if not children:
        raise DockerfileError("file with no instructions", file=file, line=1,
                              hint="a Dockerfile needs at least a FROM instruction")
    if too_long is not None:
        raise DockerfileError(
            f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", file=file,
            line=too_long + 1, hint="split the line with line continuations")
    root.start_line = children[0].start_line
    root.end_line = children[-1].end_line
    return ParseResult(root=root, warnings=warnings, escape_token=escape,
                       directives=directives, file=file)


def _decode(data: bytes | str) -> str:
    """The text. Bytes that are not UTF-8 survive as lone surrogates (``surrogateescape``), so
    nothing is lost and a byte round-trips.
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = data.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "surrogateescape")


def _first_too_long(lines: list[str]) -> int | None:
    """The index of the first line too long for upstream's scanner, or None."""
    # A character is at most 4 bytes of UTF-8 (an undecodable byte, kept as a surrogate, is
    # 1), so only lines longer than a quarter of the limit need encoding to be measured.
    quarter = MAX_LINE_BYTES // 4
    if not lines or max(map(len, lines)) <= quarter:
        return None
    for index, line in enumerate(lines):
        if len(line) > quarter and len(line.encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
            return index
    return None


def _escape_token(value: str, file: str, line: int) -> str:
    if value not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\",
                              file=file, line=line, column=1,
                              hint="use '# escape=\\' (the default) or '# escape=`'")
    return value


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """``(line without the continuation token, True)`` when the line continues.

    It continues when it ends in the escape token plus optional blanks, unless that token is
    itself escaped (``\\\\`` at the end ends the instruction).
    """
    if not line.endswith((escape, " ", "\t")):
        return line, False
    t = line.rstrip(" \t")
    if t.endswith(escape) and (len(t) == 1 or t[-2] != escape):
        return t[:-1], True
    return line, False


def _join_continuation(first: str, lines: list[str], i: int,
                       escape: str) -> tuple[str, int, bool]:
    """Append ``lines[i:]`` to ``first`` until a line does not continue.

    Returns the logical line, the index after its last line, and whether a blank line was
    skipped (upstream warns about those; comment lines are skipped silently).
    """
    parts = [first]
    had_empty = False
    more = True
    while more and i < len(lines):
        tok = lines[i].rstrip("\r")
        i += 1
        lead = tok.lstrip(GO_SPACE)
        if lead.startswith("#"):
            continue
        if not lead:
            had_empty = True
            continue
        piece, more = _trim_continuation(tok, escape)
        parts.append(piece)  # continuation lines keep their leading whitespace
    return "".join(parts), i, had_empty


def _collects_heredocs(node: Node) -> bool:
    """ADD, COPY and RUN in shell form, also as an ONBUILD trigger."""
    if node.value == "onbuild" and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value in HEREDOC_INSTRUCTIONS and not node.json


def _place(node: Node, start: int, end: int, column: int) -> None:
    node.start_line, node.end_line, node.column = start, end, column
    # An ONBUILD trigger has no lines of its own; give it its instruction's, for error messages.
    # (Only ONBUILD's argument has children: asking any other would create its empty list.)
    if node.value == "onbuild" and node.next is not None:
        for child in node.next.children:
            _place(child, start, end, column)


# -- one logical line -> one instruction node -------------------------------------------------

def node_from_line(line: str, escape: str = "\\", comments: list[str] | None = None) -> Node:
    """The instruction node of a logical line (continuations already joined).

    Raises DockerfileError without a position; the caller knows where the line is.
    """
    name, flags, rest = split_command(line)
    value = name.lower()
    parse_args = _ARGUMENTS.get(value, _args_ignored)
    args, is_json = parse_args(rest, escape)
    # Positional (value, next, children, heredocs, json, original, flags, start_line, end_line,
    # prev_comment): this runs once per instruction. None gives an empty list.
    return Node(value, args, None, None, is_json, line, flags, 0, 0, comments)


def split_command(line: str) -> tuple[str, list[str], str]:
    """``(instruction word as written, flags, trimmed rest)``."""
    words = _BLANKS.split(line.strip(GO_SPACE), maxsplit=1)
    if len(words) < 2:
        return words[0], [], ""
    rest = words[1].lstrip(GO_SPACE)
    if not rest.startswith("--"):
        # No flags (most instructions); the check extract_flags would start with. Trailing
        # blanks are trimmed only now: inside a flag, a quote or backslash can keep them.
        return words[0], [], rest.rstrip(GO_SPACE)
    rest, flags = extract_flags(rest)
    return words[0], flags, rest.strip(GO_SPACE)


def extract_flags(text: str) -> tuple[str, list[str]]:
    """``(rest, flags)``: the leading ``--x`` words of ``text`` and what follows them.

    Inside a flag quotes are removed and a backslash escapes the next character (always a
    backslash: upstream does not apply ``# escape=`` here). A bare ``--`` ends the flags and
    is dropped.
    """
    flags = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in GO_SPACE:
            pos += 1
        if not text.startswith("--", pos):
            return text[pos:], flags
        plain = _PLAIN_FLAG.match(text, pos)
        if plain is not None:   # the usual flag: nothing to unquote, it is what is written
            pos = plain.end()
            if plain.group() == "--":
                return text[pos:], flags
            flags.append(plain.group())
            continue
        word = []
        quote = ""
        runs = _FLAG_RUNS
        while pos < n:
            run = (runs[2] if quote == "'" else runs[1] if quote else runs[0]).match(text, pos)
            if run:
                word.append(run.group())
                pos = run.end()
                continue
            c = text[pos]
            pos += 1
            if quote:
                if c == quote:
                    quote = ""
                    continue
            elif c in GO_SPACE:
                pos -= 1
                break
            elif c in "'\"":
                quote = c
                continue
            if c == "\\":
                if pos == n:
                    break  # a trailing backslash is dropped
                c = text[pos]
                pos += 1
            word.append(c)
        flag = "".join(word)
        if flag == "--":
            return text[pos:], flags
        flags.append(flag)


def parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when ``rest`` is not valid JSON starting with ``[``.

    Raises DockerfileError for a valid array with a non-string element (``["a", 42]``).
    """
    s = rest.lstrip(GO_SPACE)
    if not s.startswith("["):
        return None
    try:
        value = _JSON.decode(s)
    except (ValueError, RecursionError):
        return None  # any other malformed JSON means the shell form
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileError(NOT_STRING_ARRAY,
                              hint='quote every element, e.g. ["sleep", "10"]')
    # Go turns invalid UTF-8 and lone \ud800-style escapes into U+FFFD.
    if "\\u" in s or _SURROGATE.search(s):
        return [_SURROGATE.sub("\ufffd", v) for v in value]
    return value


def _not_json(name: str) -> None:
    raise ValueError(name)


# One decoder for every JSON form (json.loads with options builds a new one per call).
# NaN/Infinity are Python extensions, not JSON; Go rejects them.
_JSON = json.JSONDecoder(parse_constant=_not_json)


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on whitespace outside quotes; quotes and escapes stay in the words (ARG/ENV/LABEL).

    The escape token keeps the next character in the word (``a\\ b`` is one word) except
    inside single quotes; an escape token at the very end is dropped.
    """
    if not _QUOTES_OR_ESCAPES.search(rest):
        trimmed = rest.strip(GO_SPACE)
        return _GO_SPACES.split(trimmed) if trimmed else []
    # Nothing inside a word is changed, so each word is a piece of ``rest``, as matched.
    return _WORDS[escape].findall(rest)


def parse_name_val(rest: str, key: str, escape: str = "\\") -> list[str]:
    """ENV/LABEL arguments as flat ``key, value, separator`` triples.

    ``k=v`` words give ``[k, v, "="]`` each; the legacy ``KEY name value…`` form gives
    ``[name, "value…", ""]`` (everything after the first blank run, raw).
    """
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _BLANKS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{key} must have two arguments",
                                  hint=f"write {key} name=value (or {key} name value)")
        return [parts[0], parts[1], ""]
    out = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value",
                hint="give every word a value (name=value); quote values that contain spaces")
        k, v = word.split("=", 1)
        out += [k, v, "="]
    return out


# -- per-instruction argument parsers: (rest, escape) -> (first argument node, is JSON) --------

ArgParser = Callable[[str, str], tuple["Node | None", bool]]


def _chain(values: list[str]) -> Node | None:
    head = None
    for v in reversed(values):
        head = Node(v, head)
    return head


def _args_ignored(rest: str, escape: str) -> tuple[Node | None, bool]:
    return Node(), False  # unknown instruction: one empty argument, like upstream


def _args_blank_separated(rest: str, escape: str) -> tuple[Node | None, bool]:
    return _chain(_BLANKS.split(rest) if rest else []), False


def _args_string(rest: str, escape: str) -> tuple[Node | None, bool]:
    return _chain([rest] if rest else []), False


def _args_json_or_string(rest: str, escape: str) -> tuple[Node | None, bool]:
    if not rest:
        return None, False
    values = parse_json_array(rest)
    if values is not None:
        return _chain(values), True
    return _chain([rest]), False


def _args_json_or_list(rest: str, escape: str) -> tuple[Node | None, bool]:
    values = parse_json_array(rest)
    if values is not None:
        return _chain(values), True
    return _args_blank_separated(rest, escape)


def _args_healthcheck(rest: str, escape: str) -> tuple[Node | None, bool]:
    if not rest:
        return None, False
    m = _GO_SPACES.search(rest)
    kind, tail = (rest[:m.start()], rest[m.end():]) if m else (rest, "")
    cmd, is_json = _args_json_or_string(tail, escape)
    return Node(value=kind, next=cmd), is_json


def _args_env(rest: str, escape: str) -> tuple[Node | None, bool]:
    return _chain(parse_name_val(rest, "ENV", escape)), False


def _args_label(rest: str, escape: str) -> tuple[Node | None, bool]:
    return _chain(parse_name_val(rest, "LABEL", escape)), False


def _args_words(rest: str, escape: str) -> tuple[Node | None, bool]:
    return _chain(parse_words(rest, escape)), False


def _args_onbuild(rest: str, escape: str) -> tuple[Node | None, bool]:
    if not rest:
        return None, False
    return Node(children=[node_from_line(rest, escape)]), False


_ARGUMENTS: dict[str, ArgParser] = {
    "add": _args_json_or_list,
    "arg": _args_words,
    "cmd": _args_json_or_string,
    "copy": _args_json_or_list,
    "entrypoint": _args_json_or_string,
    "env": _args_env,
    "expose": _args_blank_separated,
    "from": _args_blank_separated,
    "healthcheck": _args_healthcheck,
    "label": _args_label,
    "maintainer": _args_string,
    "onbuild": _args_onbuild,
    "run": _args_json_or_string,
    "shell": _args_json_or_string,
    "stopsignal": _args_string,
    "user": _args_string,
    "volume": _args_json_or_list,
    "workdir": _args_string,
}
