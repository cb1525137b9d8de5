"""lamina's command-line parser: the part of argparse that lamina uses, at a fraction of its
start-up cost (every command is a fresh process; argparse costs ~5 ms to import, build a
command's parser and parse, most of it gettext looking up translations).

The interface follows argparse's (``ArgumentParser``, ``add_argument``, ``add_subparsers``,
``set_defaults``, ``parse_args``, ``Namespace``); the syntax follows Docker's:

- ``--opt value``, ``--opt=value``, ``-o value``, ``-ovalue``, ``-o=value``;
- bundled short flags, the last one may take a value: ``-it``, ``-dit``, ``-itp8080:80``;
- a flag takes ``=true|false`` (``--rm=false``), an optional value only attached (``-H=false``);
- long options match exactly (no abbreviations, as Docker);
- ``--`` ends the options; a negative number or a word with a space is a value, not an option;
- a ``REMAINDER`` positional takes every argument after the positionals before it, options
  included (``run IMAGE COMMAND -x``).

A usage error prints the usage, ``PROG: error: MESSAGE`` and a pointer to ``--help`` on
stderr and exits with status 2, as argparse does. Imports nothing but os and sys.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing is not imported at run time: start-up again
    from typing import Any, Callable, NoReturn, Sequence

REMAINDER = "..."
_TRUE = ("true", "1", "t", "yes")
_FALSE = ("false", "0", "f", "no")
_ACTIONS = ("store", "store_true", "append", "version", "help")


class ArgumentTypeError(Exception):
    """Raised by a ``type=`` function: its message becomes the usage error."""


class Namespace:
    """The parsed arguments, as attributes."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    __hash__ = None  # type: ignore[assignment]


class _Argument:
    """One option or positional, as add_argument described it."""
    __slots__ = ("flags", "dest", "action", "nargs", "const", "default", "type", "choices",
                 "required", "help", "metavar", "version")

    def shown(self) -> str:
        """How an error names it: ``-e/--env``, or the positional's metavar."""
        return "/".join(self.flags) if self.flags else self.value_name()

    def value_name(self) -> str:
        if self.metavar is not None:
            return self.metavar
        if self.choices is not None:
            return "{" + ",".join(map(str, self.choices)) + "}"
        return self.dest if not self.flags else self.dest.upper()

    def takes_value(self) -> bool:
        """Whether it takes a value, attached or the next argument."""
        return self.action in ("store", "append")


class ArgumentParser:
    def __init__(self, prog: str | None = None, description: str | None = None,
                 add_help: bool = True) -> None:
        self.prog = prog if prog is not None else os.path.basename(sys.argv[0])
        self.description = description
        self._options: dict[str, _Argument] = {}    # every flag -> its argument
        self._arguments: list[_Argument] = []       # in the order added, options and positionals
        self._positionals: list[_Argument] = []
        self._defaults: dict[str, Any] = {}
        self._subcommands: _Subcommands | None = None
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help and exit")

    # -- building --------------------------------------------------------------------------

    def add_argument(self, *flags: str, action: str = "store", nargs: str | None = None,
                     const: Any = None, default: Any = None,
                     type: Callable[[str], Any] | None = None,
                     choices: Sequence[Any] | None = None, required: bool = False,
                     help: str | None = None, metavar: str | None = None,
                     dest: str | None = None, version: str | None = None) -> None:
        if action not in _ACTIONS:
            raise ValueError(f"{flags}: unsupported action {action!r}")
        arg = _Argument()
        is_option = flags[0][:1] == "-"
        if dest is None:
            if not is_option:
                dest = flags[0]
            else:
                longs = [f for f in flags if f[:2] == "--"]
                dest = (longs[0] if longs else flags[0]).lstrip("-").replace("-", "_")
        arg.flags = flags if is_option else ()
        arg.dest, arg.action, arg.nargs, arg.const = dest, action, nargs, const
        arg.type, arg.choices, arg.required = type, choices, required
        arg.help, arg.metavar, arg.version = help, metavar, version
        arg.default = False if action == "store_true" and default is None else default
        if is_option:
            for flag in flags:
                self._options[flag] = arg
        else:
            if nargs == REMAINDER and any(p.nargs is not None for p in self._positionals):
                raise ValueError(f"{dest}: REMAINDER must follow single positionals")
            arg.required = nargs in (None, "+")
            self._positionals.append(arg)
        self._arguments.append(arg)

    def add_subparsers(self, dest: str, metavar: str | None = None,
                       required: bool = False) -> "_Subcommands":
        if self._subcommands is not None or self._positionals:
            raise ValueError(f"{self.prog}: one set of subcommands, and no other positionals")
        self._subcommands = _Subcommands(self, dest, metavar or dest.upper(), required)
        return self._subcommands

    def set_defaults(self, **values: Any) -> None:
        self._defaults.update(values)

    def commands(self) -> dict[str, "ArgumentParser"]:
        """The subcommands by their names (aliases left out), in the order added."""
        if self._subcommands is None:
            return {}
        return {name: parser for name, _, _, parser in self._subcommands.listed}

    # -- parsing ---------------------------------------------------------------------------

    def parse_args(self, args: Sequence[str] | None = None,
                   namespace: Namespace | None = None) -> Namespace:
        ns = namespace if namespace is not None else Namespace()
        self._parse(list(sys.argv[1:] if args is None else args), ns)
        return ns

    def _parse(self, args: list[str], ns: Namespace) -> None:
        values = ns.__dict__
        for arg in self._arguments:
            if arg.action in ("store", "append", "store_true"):
                default = arg.default
                values[arg.dest] = list(default) if type(default) is list else default
        if self._subcommands is not None:
            values[self._subcommands.dest] = None
        values.update(self._defaults)

        # With a REMAINDER positional, the rest is taken once the ones before it are given.
        rest_after = -1
        if self._positionals and self._positionals[-1].nargs == REMAINDER:
            rest_after = len(self._positionals) - 1
        words: list[str] = []
        rest: list[str] = []
        seen: set[int] = set()
        only_words = False
        i, count = 0, len(args)
        while i < count:
            if len(words) == rest_after:
                rest = args[i:]
                break
            token = args[i]
            i += 1
            if not only_words and self._is_option(token):
                if token == "--":
                    only_words = True
                    continue
                i = self._take_option(token, args, i, ns, seen)
                continue
            if self._subcommands is not None:
                self._subcommands.enter(token, args[i:], ns)
                return
            words.append(token)
        if self._subcommands is not None and self._subcommands.required:
            self.error(f"the following arguments are required: {self._subcommands.metavar}")
        missing = [a.shown() for a in self._arguments if a.required and a.flags
                   and id(a) not in seen]
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        self._assign_words(words, rest if rest_after >= 0 else None, values)

    def _is_option(self, token: str) -> bool:
        """As argparse decides: ``-x...`` is an option unless it is ``-`` alone, a negative
        number, or has a space and does not start with a known option."""
        if token[:1] != "-" or token == "-":
            return False
        if token in self._options or token.partition("=")[0] in self._options:
            return True
        if token[1] != "-" and token[:2] in self._options:
            return True
        return not (_is_number(token) or " " in token)

    def _take_option(self, token: str, args: list[str], i: int, ns: Namespace,
                     seen: set[int]) -> int:
        """Apply the option(s) in ``token``; return the index of the next argument."""
        if token[:2] == "--":
            name, has_value, value = token.partition("=")
            arg = self._options.get(name)
            if arg is None:
                self._unknown(name)
            seen.add(id(arg))
            return self._apply(arg, name, value if has_value else None, args, i, ns)
        at = 1
        while True:    # bundled short options: -it, -dit, -itp8080:80
            name = "-" + token[at]
            arg = self._options.get(name)
            if arg is None:
                self._unknown(name, token)
            seen.add(id(arg))
            attached = token[at + 1:]
            if attached[:1] == "=":
                return self._apply(arg, name, attached[1:], args, i, ns)
            if attached and (arg.takes_value() or arg.nargs == "?"):
                return self._apply(arg, name, attached, args, i, ns)
            i = self._apply(arg, name, None, args, i, ns)
            if not attached:
                return i
            at += 1

    def _apply(self, arg: _Argument, name: str, value: str | None, args: list[str], i: int,
               ns: Namespace) -> int:
        action = arg.action
        if action == "store_true":
            if value is None:
                setattr(ns, arg.dest, True)
            elif value.lower() in _TRUE or value.lower() in _FALSE:
                setattr(ns, arg.dest, value.lower() in _TRUE)
            else:
                self.error(f"option {name} is a flag: it takes no value, or =true or =false "
                           f"(not {value!r})")
            return i
        if action == "help":
            self.print_help()
            raise SystemExit(0)
        if action == "version":
            print(arg.version)
            raise SystemExit(0)
        if arg.nargs == "?":    # an optional value comes attached (-H=false), as Docker's
            converted = arg.const if value is None else self._convert(arg, value)
        else:
            if value is None:
                if i >= len(args) or self._is_option(args[i]):
                    self.error(f"option {name} needs a value: {name} {arg.value_name()}")
                value = args[i]
                i += 1
            converted = self._convert(arg, value)
        if action == "append":
            items = getattr(ns, arg.dest)
            if items is None:
                items = []
                setattr(ns, arg.dest, items)
            items.append(converted)
        else:
            setattr(ns, arg.dest, converted)
        return i

    def _convert(self, arg: _Argument, text: str) -> Any:
        value: Any = text
        if arg.type is not None:
            try:
                value = arg.type(text)
            except ArgumentTypeError as err:
                self.error(f"argument {arg.shown()}: {err}")
            except (TypeError, ValueError):
                kind = getattr(arg.type, "__name__", "")
                self.error(f"argument {arg.shown()}: invalid {kind} value: {text!r}")
        if arg.choices is not None and value not in arg.choices:
            choices = ", ".join(map(repr, arg.choices))
            self.error(f"argument {arg.shown()}: invalid choice: {value!r} (choose from "
                       f"{choices})")
        return value

    def _assign_words(self, words: list[str], rest: list[str] | None,
                      values: dict[str, Any]) -> None:
        """Share the positional words out as a regular expression would, left to right, each
        taking as many as it can while leaving enough for those after it."""
        specs = self._positionals[:-1] if rest is not None else self._positionals
        if rest is not None:
            values[self._positionals[-1].dest] = rest
        needs = [1 if spec.nargs in (None, "+") else 0 for spec in specs]
        at, missing = 0, []
        for n, spec in enumerate(specs):
            room = len(words) - at - sum(needs[n + 1:])
            if spec.nargs in (None, "+") and room < 1:
                if at == len(words):
                    missing.append(spec.value_name())
                    continue
                room = 1    # too few words: the first ones get them, the last are missing
            if spec.nargs is None:
                values[spec.dest] = self._convert(spec, words[at])
                at += 1
            elif spec.nargs == "?":
                if room >= 1:
                    values[spec.dest] = self._convert(spec, words[at])
                    at += 1
            else:   # "*" or "+"
                taken = max(room, 0)
                if taken or spec.default is None:
                    values[spec.dest] = [self._convert(spec, w) for w in words[at:at + taken]]
                at += taken
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        if at < len(words):
            extra = " ".join(words[at:])
            self.error(f"unexpected argument{'s' if len(words) - at > 1 else ''}: {extra}")

    # -- messages --------------------------------------------------------------------------

    def _unknown(self, name: str, token: str | None = None) -> NoReturn:
        where = f" (in {token})" if token is not None and token != name else ""
        near = sorted(f for f in self._options if len(name) > 3 and f.startswith(name))
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        self.error(f"unknown option {name}{where}{hint}")

    def error(self, message: str) -> NoReturn:
        """Report a usage error as argparse does: usage, message, exit status 2."""
        sys.stderr.write(f"{self.format_usage()}{self.prog}: error: {message}\n"
                         f"See '{self.prog} --help'.\n")
        raise SystemExit(2)

    def format_usage(self) -> str:
        parts = [self.prog]
        if self._options:
            parts.append("[OPTIONS]")
        for arg in self._positionals:
            name = arg.value_name()
            parts.append({None: name, "?": f"[{name}]", "*": f"[{name}...]",
                          "+": f"{name} [{name}...]", REMAINDER: f"[{name}]"}[arg.nargs])
        if self._subcommands is not None:
            parts.append(f"{self._subcommands.metavar} ...")
        return "usage: " + " ".join(parts) + "\n"

    def format_help(self) -> str:
        width = _width()
        rows: list[tuple[str, list[tuple[str, str]]]] = []
        if self._subcommands is not None:
            rows.append(("commands", [(name + (f" ({', '.join(aliases)})" if aliases else ""),
                                       help or "")
                                      for name, aliases, help, _ in self._subcommands.listed]))
        if self._positionals:
            rows.append(("arguments", [(a.value_name(), a.help or "")
                                       for a in self._positionals]))
        options = [a for a in self._arguments if a.flags]
        if options:
            rows.append(("options", [(_invocation(a), a.help or "") for a in options]))
        names = [name for _, section in rows for name, _ in section]
        column = min(max(map(len, names), default=0) + 4, 30)
        out = [self.format_usage().rstrip("\n")]
        if self.description:
            out += ["", *_wrap(self.description, width)]
        for title, section in rows:
            out += ["", f"{title}:"]
            for name, text in section:
                lines = _wrap(text, max(width - column, 20)) if text else []
                if len(name) + 4 > column and lines:
                    out.append(f"  {name}")
                    out += [" " * column + line for line in lines]
                elif lines:
                    out.append(f"  {name}".ljust(column) + lines[0])
                    out += [" " * column + line for line in lines[1:]]
                else:
                    out.append(f"  {name}")
        return "\n".join(out) + "\n"

    def print_help(self, file: Any = None) -> None:
        (file if file is not None else sys.stdout).write(self.format_help())


class _Subcommands:
    """The commands of a parser (``lamina COMMAND``, ``lamina image COMMAND``)."""

    def __init__(self, parent: ArgumentParser, dest: str, metavar: str, required: bool):
        self.parent, self.dest, self.metavar, self.required = parent, dest, metavar, required
        self.choices: dict[str, ArgumentParser] = {}    # names and aliases
        self.listed: list[tuple[str, list[str], str | None, ArgumentParser]] = []

    def add_parser(self, name: str, help: str | None = None, description: str | None = None,
                   aliases: Sequence[str] = ()) -> ArgumentParser:
        parser = ArgumentParser(prog=f"{self.parent.prog} {name}", description=description)
        self.listed.append((name, list(aliases), help, parser))
        for word in (name, *aliases):
            self.choices[word] = parser
        return parser

    def enter(self, word: str, args: list[str], ns: Namespace) -> None:
        parser = self.choices.get(word)
        if parser is None:
            choices = ", ".join(repr(name) for name, _, _, _ in self.listed)
            self.parent.error(f"argument {self.metavar}: invalid choice: {word!r} "
                              f"(choose from {choices})")
        setattr(ns, self.dest, word)
        parser._parse(args, ns)


def _is_number(token: str) -> bool:
    """``-1``, ``-2.5``, ``-.5``: a negative number, a value rather than an option."""
    digits = token[1:].replace(".", "", 1)
    return digits.isdigit() and digits.isascii()


def _invocation(arg: _Argument) -> str:
    """``-e, --env KEY=VALUE``; ``-H, --human[=true|false]`` for an optional value."""
    flags = ", ".join(arg.flags)
    if arg.nargs == "?":
        return f"{flags}[={arg.value_name()}]"
    if arg.takes_value():
        return f"{flags} {arg.value_name()}"
    return flags


def _width() -> int:
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 80
    return max(min(columns, 100), 40) - 2


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines
