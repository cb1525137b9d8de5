"""``--format``: the subset of Go templates that Docker users write.

Supported: literal text (with ``\\t`` and ``\\n`` written as two characters turned into a tab and a
newline, as Docker does), ``{{.Field}}`` and ``{{.A.B}}``, ``{{.}}``, and the functions Docker
adds: ``json``, ``upper``, ``lower``, ``title``, ``join LIST SEP``, ``split STR SEP``,
``index MAP KEY``, ``truncate STR N``, ``pad STR L R``, ``println``. A leading ``table`` prints
the rows as aligned columns under a header; ``json`` alone prints one JSON object per line.
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence

from ..errors import UsageError
from .format import table

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


class Template:
    def __init__(self, text: str) -> None:
        self.text = text.replace("\\t", "\t").replace("\\n", "\n")
        self.parts: list[str | list[str]] = []
        pos = 0
        for m in _ACTION.finditer(self.text):
            self.parts.append(self.text[pos:m.start()])
            try:
                words = shlex.split(m.group(1), posix=True)
            except ValueError as err:
                raise UsageError(f"--format {text!r}: {err}") from None
            if not words:
                raise UsageError(f"--format {text!r}: empty action {m.group(0)}")
            self.parts.append(words)
            pos = m.end()
        rest = self.text[pos:]
        if "{{" in rest:
            raise UsageError(f"--format {text!r}: unclosed action", hint="close it with }}")
        self.parts.append(rest)

    def render(self, data: Any) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_text(self._call(part, data)))
        return "".join(out)

    def _call(self, words: list[str], data: Any) -> Any:
        head, args = words[0], [self._value(w, data) for w in words[1:]]
        if head.startswith(".") or head == "." or not args and head not in _FUNCS:
            if args:
                raise UsageError(f"--format: {head} is a field, not a function")
            return self._value(head, data)
        fn = _FUNCS.get(head)
        if fn is None:
            raise UsageError(f"--format: function {head!r} not defined",
                             hint="available: " + ", ".join(sorted(_FUNCS)))
        try:
            return fn(*args)
        except (TypeError, ValueError, KeyError, IndexError) as err:
            raise UsageError(f"--format: error calling {head}: {err}") from None

    def _value(self, word: str, data: Any) -> Any:
        if word == ".":
            return data
        if word.startswith("."):
            value = data
            for name in word[1:].split("."):
                if isinstance(value, Mapping) and name in value:
                    value = value[name]
                else:
                    raise UsageError(f"--format: can't evaluate field {name}",
                                     hint=_fields_hint(value))
            return value
        if word.lstrip("-").isdigit():
            return int(word)
        return word   # a quoted string literal (shlex removed the quotes)


def _fields_hint(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "fields here: " + ", ".join("." + k for k in value)
    return None


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: json.dumps(v, separators=(",", ":")),
    "upper": lambda v: _text(v).upper(),
    "lower": lambda v: _text(v).lower(),
    "title": lambda v: _text(v).title(),
    "join": lambda v, sep: sep.join(_text(x) for x in v),
    "split": lambda v, sep: _text(v).split(sep),
    "index": lambda v, key: v[key],
    "truncate": lambda v, n: _text(v)[:n],
    "pad": lambda v, left, right: " " * left + _text(v) + " " * right,
    "println": lambda *v: " ".join(_text(x) for x in v) + "\n",
}


def render_rows(fmt: str | None, rows: Sequence[Mapping[str, Any]], default: str,
                headers: Mapping[str, str]) -> str:
    """Print ``rows`` the way ``docker <cmd> --format`` does.

    ``default`` is the command's own table format, used when ``fmt`` is empty or a bare
    ``table``; ``headers`` names each field's column title.
    """
    fmt = fmt if fmt and fmt.strip() != "table" else default
    if fmt.strip() == "json":
        return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    if fmt.startswith("table"):
        tpl = Template(fmt[len("table"):].strip())
        header = tpl.render(_HeaderContext(headers)).split("\t")
        lines = [tpl.render(r).split("\t") for r in rows]
        return table(lines, header)
    tpl = Template(fmt)
    return "".join(tpl.render(r) + "\n" for r in rows)


class _HeaderContext(dict):
    """Every field renders as its column title (Docker derives titles the same way)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(headers)

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).upper()
