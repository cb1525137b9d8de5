"""Typed Dockerfile instructions, converted from the parse tree the way BuildKit does it.

:func:`parse_instruction` turns one instruction :class:`~lamina.dockerfile.ast.Node` into a
frozen dataclass (``From``, ``Run``, ``Copy``, ...). It checks the argument count, the flags
(:data:`FLAGS` lists what each instruction accepts) and the values it can check without the
build's variables, and raises :class:`~lamina.errors.DockerfileError` at the node's position
with the message BuildKit uses, so users see the texts they know from ``docker build``.

Variables are **not** expanded here: which variables are set depends on the stage being built.
The build calls ``instruction.expand(fn)`` with ``fn`` expanding one word in the stage's
environment, and gets a new instruction back. What each instruction expands (as Docker does):

* FROM: the image name and ``--platform`` (not the stage name).
* ARG: names and default values. ENV, LABEL: keys and values.
* ADD, COPY: sources, destination, ``--chown``, ``--chmod``, ``--from`` (COPY) and
  ``--checksum`` (ADD). Heredoc bodies written ``<<EOF`` (not ``<<'EOF'``) go through the
  separate ``heredoc_fn``, which must keep quotes. Not ``--exclude``: Docker takes the patterns
  literally.
* EXPOSE: each port word; the result is split on whitespace (``EXPOSE $PORTS``).
* USER, WORKDIR, STOPSIGNAL, VOLUME: their values.
* RUN: the ``--mount`` values only (re-parsed, and only then fully validated). Never the
  command or its heredocs: the shell expands those when it runs. ``--network`` and
  ``--security`` are fixed keywords, ``--device`` is literal.
* CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD: nothing (``expand`` returns the
  instruction itself). An ONBUILD trigger is expanded when it runs, in the downstream build.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import DockerfileError
from .ast import Node
from .bflags import BFlags, Flag, new_flag
from .dump import go_quote
from .heredoc import chomp, parse_heredoc_word
from .values import (Device, Mount, PortSpec, parse_device, parse_duration, parse_mount,
                     parse_port_spec)

Expander = Callable[[str], str]
TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Self, TypeVar

    from .bflags import FlagKind
    T = TypeVar("T")

# The flags each instruction accepts (BuildKit's set). Instructions not listed take no flags.
FLAGS: dict[str, dict[str, FlagKind]] = {
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
            "checksum": "string", "unpack": "bool", "exclude": "strings"},
    "COPY": {"chown": "string", "from": "string", "chmod": "string", "link": "bool",
             "exclude": "strings", "parents": "bool"},
    "FROM": {"platform": "string"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string",
                    "start-interval": "string", "retries": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string",
            "device": "strings"},
}

NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part of every instruction: where it came from, for error messages.

    ``node`` is the parse-tree node (None only for instructions built by hand); it is left out of
    equality and repr so two instructions with the same meaning compare equal.
    """

    keyword = ""    # the instruction's name: a class attribute, not a field

    node: Node | None = field(default=None, compare=False, repr=False)
    file: str = field(default="Dockerfile", compare=False, repr=False)

    @property
    def line(self) -> int | None:
        return (self.node.start_line or None) if self.node else None

    @property
    def column(self) -> int | None:
        return self.node.column if self.node else None

    @property
    def original(self) -> str:
        """The instruction as written (continuation lines joined)."""
        return self.node.original if self.node else ""

    def error(self, message: str, hint: str | None = None) -> DockerfileError:
        """An error pointing at this instruction, for problems found after parsing."""
        return DockerfileError(message, file=self.file, line=self.line, column=self.column,
                               hint=hint)

    def expand(self, fn: Expander) -> Self:
        """A copy with the words Docker expands passed through ``fn`` (see the module doc).

        Instructions Docker does not expand return themselves.
        """
        return self


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class ArgSpec:
    """One name of an ARG: ``default`` is None for a bare ``ARG name``."""

    key: str
    default: str | None = None
    doc_comment: str = ""


@dataclass(frozen=True)
class SourceContent:
    """A COPY/ADD source given inline as a heredoc; ``data`` already has ``<<-`` tabs removed."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True)
class InlineFile:
    """A RUN heredoc. ``data`` is raw; ``chomp`` (``<<-``) is applied when the command runs."""

    name: str
    data: str
    chomp: bool = False




# --------------------------------------------------------------------------- instructions


@dataclass(frozen=True)
class From(Instruction):
    """``FROM [--platform=P] IMAGE [AS name]``; ``stage_name`` is lowercased."""

    keyword = "FROM"

    base_name: str
    stage_name: str | None = None
    platform: str | None = None
    doc_comment: str = ""   # from a "# <stage name> text" comment right above

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, base_name=fn(self.base_name),
                                   platform=_expand_opt(fn, self.platform))


@dataclass(frozen=True)
class Run(Instruction):
    """``RUN [--mount ...] [--network] [--security] [--device ...] command``.

    ``cmd_line`` is the JSON array, or for the shell form a single string (the heredoc
    markers stay in it: ``["<<EOF"]``) that the build prefixes with the SHELL when
    ``prepend_shell`` is true. ``files`` are the heredoc bodies.
    """

    keyword = "RUN"

    cmd_line: tuple[str, ...]
    prepend_shell: bool
    files: tuple[InlineFile, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    devices: tuple[Device, ...] = ()
    flags_used: tuple[str, ...] = ()

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(
            self, mounts=tuple(_at(self, lambda m=m: parse_mount(m.spec, fn)) for m in self.mounts))


@dataclass(frozen=True)
class _CopyBase(Instruction):
    """What COPY and ADD share: the sources, the destination and the common flags."""

    sources: tuple[str, ...]
    dest: str
    source_contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()

    def _expanded(self, fn: Expander, heredoc_fn: Expander | None) -> dict[str, object]:
        contents = self.source_contents
        if heredoc_fn is not None:
            contents = tuple(dataclasses.replace(c, data=heredoc_fn(c.data)) if c.expand else c
                             for c in contents)
        return {"sources": tuple(fn(s) for s in self.sources), "dest": fn(self.dest),
                "source_contents": contents, "chown": _expand_opt(fn, self.chown),
                "chmod": _expand_opt(fn, self.chmod)}


@dataclass(frozen=True)
class Copy(_CopyBase):
    """``COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude ...] SRC... DEST``.

    ``sources`` are the paths; heredoc sources are in ``source_contents`` instead.
    """

    keyword = "COPY"

    from_: str | None = None
    parents: bool = False

    def expand(self, fn: Expander, heredoc_fn: Expander | None = None) -> Self:
        return dataclasses.replace(self, from_=_expand_opt(fn, self.from_),
                                   **self._expanded(fn, heredoc_fn))


@dataclass(frozen=True)
class Add(_CopyBase):
    """``ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--unpack] [--exclude]
    SRC... DEST``. ``unpack`` is None when not given (ADD then unpacks local archives only)."""

    keyword = "ADD"

    keep_git_dir: bool = False
    checksum: str | None = None
    unpack: bool | None = None

    def expand(self, fn: Expander, heredoc_fn: Expander | None = None) -> Self:
        return dataclasses.replace(self, checksum=_expand_opt(fn, self.checksum),
                                   **self._expanded(fn, heredoc_fn))


@dataclass(frozen=True)
class Env(Instruction):
    """``ENV k=v ...`` or the legacy ``ENV k v`` (``legacy``: the value is the rest of the line).

    Values are raw (quotes included) until expanded.
    """

    keyword = "ENV"

    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, pairs=tuple((fn(k), fn(v)) for k, v in self.pairs))


@dataclass(frozen=True)
class Label(Instruction):
    """``LABEL k=v ...`` (or legacy ``LABEL k v``); values raw until expanded."""

    keyword = "LABEL"

    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, pairs=tuple((fn(k), fn(v)) for k, v in self.pairs))


@dataclass(frozen=True)
class Arg(Instruction):
    """``ARG name[=default] ...``."""

    keyword = "ARG"

    args: tuple[ArgSpec, ...]

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, args=tuple(
            dataclasses.replace(a, key=fn(a.key), default=_expand_opt(fn, a.default))
            for a in self.args))


@dataclass(frozen=True)
class Expose(Instruction):
    """``EXPOSE port[/proto] ...``: the words as written; :meth:`port_specs` validates them."""

    keyword = "EXPOSE"

    ports: tuple[str, ...]

    def expand(self, fn: Expander) -> Self:
        # Docker splits the expanded text into words, so one variable can hold several ports.
        return dataclasses.replace(self, ports=tuple(w for p in self.ports for w in fn(p).split()))

    def port_specs(self) -> list[PortSpec]:
        """The parsed ports (call after :meth:`expand`); errors point at this instruction."""
        return [_at(self, lambda p=p: parse_port_spec(p)) for p in self.ports]


@dataclass(frozen=True)
class User(Instruction):
    """USER user[:group]."""

    keyword = "USER"

    user: str

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, user=fn(self.user))


@dataclass(frozen=True)
class Workdir(Instruction):
    """WORKDIR path."""

    keyword = "WORKDIR"

    path: str

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, path=fn(self.path))


@dataclass(frozen=True)
class Volume(Instruction):
    """``VOLUME ["/a", "/b"]`` or ``VOLUME /a /b``."""

    keyword = "VOLUME"

    volumes: tuple[str, ...]

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, volumes=tuple(fn(v) for v in self.volumes))


@dataclass(frozen=True)
class Shell(Instruction):
    """``SHELL ["executable", "param", ...]`` (JSON form only)."""

    keyword = "SHELL"

    shell: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    """STOPSIGNAL signal."""

    keyword = "STOPSIGNAL"

    signal: str

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, signal=fn(self.signal))


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK [--interval ...] CMD command`` or ``HEALTHCHECK NONE``.

    ``test`` is the image-config form: ``("NONE",)``, ``("CMD-SHELL", "cmd line")`` or
    ``("CMD", arg, ...)``. Durations are nanoseconds; 0 (like ``retries`` 0) means "not set,
    use the default", as in the image config.
    """

    keyword = "HEALTHCHECK"

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Onbuild(Instruction):
    """``ONBUILD <instruction>``: ``expression`` is the trigger's Dockerfile text (with any
    heredoc bodies), parsed and run when a later build uses this image as its base."""

    keyword = "ONBUILD"

    expression: str


@dataclass(frozen=True)
class Maintainer(Instruction):
    """MAINTAINER name (deprecated; sets the author)."""

    keyword = "MAINTAINER"

    name: str


@dataclass(frozen=True)
class Cmd(Instruction):
    """``CMD``: ``cmd_line`` is the JSON array, or the shell form as one string."""

    keyword = "CMD"

    cmd_line: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True)
class Entrypoint(Instruction):
    """``ENTRYPOINT``, shaped like :class:`Cmd`; ``ENTRYPOINT []`` (empty) clears it."""

    keyword = "ENTRYPOINT"

    cmd_line: tuple[str, ...]
    prepend_shell: bool


INSTRUCTION_TYPES: dict[str, type[Instruction]] = {
    cls.keyword: cls for cls in (From, Run, Copy, Add, Env, Label, Arg, Expose, User, Workdir,
                                 Volume, Shell, StopSignal, Healthcheck, Onbuild, Maintainer,
                                 Cmd, Entrypoint)
}


# --------------------------------------------------------------------------- conversion


@dataclass
class _Request:
    """What every per-instruction parser reads from the node."""

    node: Node
    file: str
    keyword: str
    args: list[str]

    @property
    def json(self) -> bool:
        return self.node.json

    def parse_flags(self) -> dict[str, Flag]:
        """Declare this instruction's flags (:data:`FLAGS`), parse the node's flag words."""
        words = self.node.flags
        kinds = FLAGS.get(self.keyword)
        if not words:
            # Nothing to parse: every declared flag keeps its default (the common case).
            return {name: new_flag(name, kind) for name, kind in kinds.items()} if kinds else {}
        flags = BFlags(list(words))
        declared = {name: flags.add(name, kind) for name, kind in (kinds or {}).items()}
        flags.parse()
        return declared

    def common(self) -> dict[str, object]:
        return {"node": self.node, "file": self.file}


def parse_instruction(node: Node, file: str = "Dockerfile") -> Instruction:
    """Convert one instruction node; raise DockerfileError at the node's position."""
    keyword = node.value.upper()
    try:
        parser = _PARSERS.get(keyword)
        if parser is None:
            raise _unknown_instruction(node)
        return parser(_Request(node, file, keyword, _node_args(node)))
    except DockerfileError as err:
        raise err.at(file, node.start_line or None, node.column) from None


def _node_args(node: Node) -> list[str]:
    """The argument words; ONBUILD's nested trigger contributes its name and its arguments."""
    if node.value.lower() != "onbuild":
        # Only ONBUILD's argument holds a trigger; asking others for their children would
        # create an empty list in each.
        return node.args()
    out: list[str] = []
    for arg in node.arg_nodes():
        if arg.children:
            trigger = arg.children[0]
            out.append(trigger.value)
            out.extend(_node_args(trigger))
        else:
            out.append(arg.value)
    return out


def _unknown_instruction(node: Node) -> DockerfileError:
    # The message names the instruction as the user wrote it (the node's value is lowercased).
    words = node.original.split(None, 1)
    written = words[0] if words else node.value
    import difflib   # only for a suggestion: start-up time

    close = difflib.get_close_matches(written.upper(), list(INSTRUCTION_TYPES), n=1)
    return DockerfileError(f"unknown instruction: {written}",
                           hint=f"did you mean {close[0]}?" if close else None)


def _exactly_one(req: _Request) -> str:
    if len(req.args) != 1:
        raise DockerfileError(f"{req.keyword} requires exactly one argument")
    req.parse_flags()
    return req.args[0]


def _at_least_one(req: _Request) -> None:
    if not req.args:
        raise DockerfileError(f"{req.keyword} requires at least one argument")


def _parse_from(req: _Request) -> From:
    args = req.args
    stage_name = None
    if len(args) == 3 and args[1].lower() == "as":
        stage_name = args[2].lower()
        if not _STAGE_NAME.fullmatch(stage_name):
            raise DockerfileError(
                f"invalid name for build stage: {go_quote(args[2])}, "
                "name can't start with a number or contain symbols",
                hint="stage names start with a letter and use only letters, digits, -, _ and .")
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments",
                              hint="write FROM IMAGE or FROM IMAGE AS NAME")
    flags = req.parse_flags()
    return From(args[0], stage_name, _flag_str(flags["platform"]),
                _doc_comment(req.node, stage_name), **req.common())


def _parse_run(req: _Request) -> Run:
    flags = req.parse_flags()
    network = flags["network"].value if flags["network"].used else "default"
    if network not in NETWORK_MODES:
        raise DockerfileError(f"invalid network mode {go_quote(network)}",
                              hint="use one of: " + ", ".join(NETWORK_MODES))
    security = flags["security"].value if flags["security"].used else "sandbox"
    if security not in SECURITY_MODES:
        raise DockerfileError(f"security {go_quote(security)} is not valid",
                              hint="use one of: " + ", ".join(SECURITY_MODES))
    files = tuple(InlineFile(h.name, h.content, h.chomp) for h in req.node.heredocs)
    return Run(
        tuple(handle_json_args(req.args, req.json)), not req.json, files,
        mounts=tuple(parse_mount(spec) for spec in flags["mount"].value),
        network=network, security=security,
        devices=tuple(parse_device(spec) for spec in flags["device"].value),
        flags_used=tuple(name for name, flag in flags.items() if flag.used),
        **req.common())


def _copy_common(req: _Request) -> tuple[dict[str, Flag], dict[str, object]]:
    """Flags and the fields COPY and ADD share (sources, destination, common flags)."""
    if len(req.args) < 2:
        raise DockerfileError(
            f"{req.keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
            hint=f"write {req.keyword} SOURCE... DESTINATION")
    flags = req.parse_flags()
    *srcs, dest = req.args
    if _heredoc_name(dest) is not None:
        raise DockerfileError(f"{req.keyword} cannot accept a heredoc as a destination")
    bodies = {h.name: h for h in req.node.heredocs}
    sources: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        heredoc = bodies.get(_heredoc_name(src) or "")
        if heredoc is None:
            # Also a "<<name" word in JSON form: the parser collected no body for it there,
            # so it names a file.
            sources.append(src)
        else:
            data = chomp(heredoc.content) if heredoc.chomp else heredoc.content
            contents.append(SourceContent(heredoc.name, data, heredoc.expand))
    return flags, {
        "sources": tuple(sources), "dest": dest, "source_contents": tuple(contents),
        "chown": _flag_str(flags["chown"]), "chmod": _flag_str(flags["chmod"]),
        "link": flags["link"].value, "exclude": tuple(flags["exclude"].value), **req.common(),
    }


def _parse_copy(req: _Request) -> Copy:
    flags, common = _copy_common(req)
    return Copy(from_=_flag_str(flags["from"]), parents=flags["parents"].value, **common)


def _parse_add(req: _Request) -> Add:
    flags, common = _copy_common(req)
    unpack = flags["unpack"]
    return Add(keep_git_dir=flags["keep-git-dir"].value, checksum=_flag_str(flags["checksum"]),
               unpack=unpack.value if unpack.used else None, **common)


def _key_value_pairs(req: _Request) -> tuple[tuple[tuple[str, str], ...], bool]:
    """ENV/LABEL arguments: the parser gives (key, value, separator) triples, separator "" for
    the legacy ``KEY value`` form."""
    _at_least_one(req)
    if len(req.args) % 3:
        raise DockerfileError(f"Bad input to {req.keyword}, too many arguments")
    req.parse_flags()
    keys, values, separators = req.args[0::3], req.args[1::3], req.args[2::3]
    if "" in keys:
        raise DockerfileError(f"{req.keyword} names can not be blank")
    return tuple(zip(keys, values)), "" in separators


def _parse_env(req: _Request) -> Env:
    pairs, legacy = _key_value_pairs(req)
    return Env(pairs, legacy, **req.common())


def _parse_label(req: _Request) -> Label:
    pairs, legacy = _key_value_pairs(req)
    return Label(pairs, legacy, **req.common())


def _parse_arg(req: _Request) -> Arg:
    _at_least_one(req)
    req.parse_flags()
    specs = []
    for word in req.args:
        key, has_default, default = word.partition("=")
        if has_default and not key:
            raise DockerfileError("ARG names can not be blank")
        specs.append(ArgSpec(key, default if has_default else None,
                             _doc_comment(req.node, key)))
    return Arg(tuple(specs), **req.common())


def _parse_expose(req: _Request) -> Expose:
    _at_least_one(req)
    req.parse_flags()
    return Expose(tuple(req.args), **req.common())


def _parse_user(req: _Request) -> User:
    return User(_exactly_one(req), **req.common())


def _parse_workdir(req: _Request) -> Workdir:
    return Workdir(_exactly_one(req), **req.common())


def _parse_stopsignal(req: _Request) -> StopSignal:
    return StopSignal(_exactly_one(req), **req.common())


def _parse_maintainer(req: _Request) -> Maintainer:
    return Maintainer(_exactly_one(req), **req.common())


def _parse_volume(req: _Request) -> Volume:
    _at_least_one(req)
    req.parse_flags()
    volumes = tuple(v.strip() for v in req.args)
    if "" in volumes:
        raise DockerfileError("VOLUME specified can not be an empty string")
    return Volume(volumes, **req.common())


def _parse_shell(req: _Request) -> Shell:
    req.parse_flags()
    if not req.args:
        raise DockerfileError("SHELL requires at least one argument")
    if not req.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form",
                              hint='write it as a JSON array: SHELL ["/bin/bash", "-c"]')
    return Shell(tuple(req.args), **req.common())


def _parse_cmd(req: _Request) -> Cmd:
    req.parse_flags()
    return Cmd(tuple(handle_json_args(req.args, req.json)), not req.json, **req.common())


def _parse_entrypoint(req: _Request) -> Entrypoint:
    req.parse_flags()
    return Entrypoint(tuple(handle_json_args(req.args, req.json)), not req.json,
                      **req.common())


def _parse_healthcheck(req: _Request) -> Healthcheck:
    _at_least_one(req)
    kind, args = req.args[0].upper(), req.args[1:]
    if kind == "NONE":
        # Like Docker, flags given with NONE are not even looked at.
        if args:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(("NONE",), **req.common())
    flags = req.parse_flags()
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)",
                              hint="write HEALTHCHECK CMD command, or HEALTHCHECK NONE")
    command = handle_json_args(args, req.json)
    if not command:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if req.json else "CMD-SHELL", *command)
    retries = 0
    if flags["retries"].value:
        text = flags["retries"].value
        if not re.fullmatch(r"[-+]?\d+", text) or not -2**31 <= int(text) < 2**31:
            raise DockerfileError(f"invalid value for --retries: {go_quote(text)}",
                                  hint="give a whole number, like --retries=3")
        retries = int(text)
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
    durations = {name: _interval(flags[name]) for name in
                 ("interval", "timeout", "start-period", "start-interval")}
    return Healthcheck(test, durations["interval"], durations["timeout"],
                       durations["start-period"], durations["start-interval"], retries,
                       **req.common())


def _interval(flag: Flag) -> int:
    """A HEALTHCHECK duration flag in nanoseconds: unset and 0 mean "default" (0)."""
    if not flag.value:
        return 0
    nanos = parse_duration(flag.value, f"--{flag.name}")
    if nanos < 1_000_000 and nanos != 0:
        raise DockerfileError(f"Interval {go_quote(flag.name)} cannot be less than 1ms")
    return nanos


def _parse_onbuild(req: _Request) -> Onbuild:
    _at_least_one(req)
    req.parse_flags()
    trigger = req.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    # The trigger is kept as text and parsed again when it fires; heredoc bodies go with it.
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", req.node.original)
    for heredoc in req.node.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return Onbuild(expression, **req.common())


_PARSERS: dict[str, Callable[[_Request], Instruction]] = {
    "FROM": _parse_from, "RUN": _parse_run, "COPY": _parse_copy, "ADD": _parse_add,
    "ENV": _parse_env, "LABEL": _parse_label, "ARG": _parse_arg, "EXPOSE": _parse_expose,
    "USER": _parse_user, "WORKDIR": _parse_workdir, "VOLUME": _parse_volume,
    "SHELL": _parse_shell, "STOPSIGNAL": _parse_stopsignal, "HEALTHCHECK": _parse_healthcheck,
    "ONBUILD": _parse_onbuild, "MAINTAINER": _parse_maintainer, "CMD": _parse_cmd,
    "ENTRYPOINT": _parse_entrypoint,
}


# --------------------------------------------------------------------------- helpers


def handle_json_args(args: list[str], json: bool) -> list[str]:
    """The command line of RUN/CMD/ENTRYPOINT/HEALTHCHECK: the JSON array as is, or the shell
    form's words joined by one space into a single string."""
    if json or not args:
        return list(args)
    return [" ".join(args)]


def _heredoc_name(word: str) -> str | None:
    """The terminator name if ``word`` starts a heredoc (``<<EOF``, ``<<-'EOF'``), else None.

    A marker the lexer cannot read (``<<'EOF``) is no heredoc here: it is a plain path, as
    in BuildKit.
    """
    try:
        heredoc = parse_heredoc_word(word)
    except DockerfileError:
        return None
    return heredoc.name if heredoc is not None else None


def _doc_comment(node: Node, name: str | None) -> str:
    """BuildKit's doc comment: the rest of the first comment line above that starts "name "."""
    if not name:
        return ""
    prefix = name + " "
    return next((line[len(prefix):] for line in node.prev_comment if line.startswith(prefix)), "")


def _flag_str(flag: Flag) -> str | None:
    """A string flag's value; None when not given or given empty (Docker treats both alike)."""
    assert isinstance(flag.value, str)
    return flag.value or None


def _expand_opt(fn: Expander, value: str | None) -> str | None:
    return None if value is None else fn(value)


def _at(instruction: Instruction, compute: Callable[[], T]) -> T:
    """Run ``compute``; a DockerfileError it raises gets the instruction's position."""
    try:
        return compute()
    except DockerfileError as err:
        raise err.at(instruction.file, instruction.line, instruction.column) from None


# --------------------------------------------------------------------------- flag values
