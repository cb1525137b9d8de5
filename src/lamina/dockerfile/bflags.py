"""Flags of a Dockerfile instruction: the ``--name[=value]`` words before its arguments.

An instruction declares the flags it accepts (``add_bool``/``add_string``/``add_strings``), then
calls :meth:`BFlags.parse` once over the words the parser collected in ``Node.flags``. The rules
and error messages follow BuildKit so that users see the texts they know from ``docker build``:

* bool: ``--link``, ``--link=true``, ``--link=FALSE``; ``--link=`` is an error;
* string: ``--chown=user`` (the ``=`` is required, the value may be empty); given once;
* strings: like string, but may be repeated and the values accumulate in order (``--mount``).

A bare ``--`` ends the flags (the parser normally drops it already).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DockerfileError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Literal
    FlagKind = Literal["bool", "string", "strings"]


@dataclass
class Flag:
    """One declared flag. ``value`` holds the default until :meth:`BFlags.parse` sets it:
    a ``bool`` for bool flags, a ``str`` for string flags, a ``list[str]`` for strings flags."""

    name: str
    kind: FlagKind
    value: bool | str | list[str]
    used: bool = False


@dataclass
class BFlags:
    """The flag words of one instruction and the flags it declares."""

    args: list[str]
    _flags: dict[str, Flag] = field(default_factory=dict, init=False, repr=False)
    _used: list[str] = field(default_factory=list, init=False, repr=False)

    def add_bool(self, name: str, default: bool = False) -> Flag:
        return self._add(Flag(name, "bool", default))

    def add_string(self, name: str, default: str = "") -> Flag:
        return self._add(Flag(name, "string", default))

    def add_strings(self, name: str) -> Flag:
        return self._add(Flag(name, "strings", []))

    def add(self, name: str, kind: FlagKind) -> Flag:
        """Declare a flag of ``kind`` with that kind's default."""
        return self._add(new_flag(name, kind))

    def _add(self, flag: Flag) -> Flag:
        if flag.name in self._flags:
            raise ValueError(f"flag --{flag.name} declared twice")
        self._flags[flag.name] = flag
        return flag

    def used(self) -> list[str]:
        """Names of the flags that were given, in the order they first appeared."""
        return list(self._used)

    def parse(self) -> None:
        """Set every given flag's value; raise DockerfileError (without a position) on bad input."""
        for word in self.args:
            if not word.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {word}")
            if word == "--":
                return
            name, has_value, value = word[2:].partition("=")
            flag = self._flags.get(name)
            if flag is None:
                raise DockerfileError(f"unknown flag: --{name}", hint=self._suggest(name))
            if flag.used and flag.kind != "strings":
                raise DockerfileError(f"duplicate flag specified: --{name}")
            if not flag.used:
                flag.used = True
                self._used.append(name)
            if flag.kind == "bool":
                flag.value = _parse_bool(name, value, has_value)
            elif not has_value:
                raise DockerfileError(f"missing a value on flag: --{name}")
            elif flag.kind == "string":
                flag.value = value
            else:
                assert isinstance(flag.value, list)
                flag.value.append(value)

    def _suggest(self, name: str) -> str | None:
        import difflib   # only for a suggestion: start-up time

        close = difflib.get_close_matches(name, list(self._flags), n=1)
        return f"did you mean --{close[0]}?" if close else None


def new_flag(name: str, kind: FlagKind) -> Flag:
    """A flag of ``kind``, not given: False, "" or an empty list."""
    return Flag(name, kind, [] if kind == "strings" else False if kind == "bool" else "")


def _parse_bool(name: str, value: str, has_value: bool) -> bool:
    # A bare --flag means true; "--flag=" (an explicit empty value) is refused.
    if not has_value:
        return True
    if value == "":
        raise DockerfileError(f"missing a value on flag: --{name}")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise DockerfileError(f"expecting boolean value for flag --{name}, not: {value}")
