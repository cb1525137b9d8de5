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

import csv
import dataclasses
import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from ..errors import DockerfileError
from .ast import Node
from .bflags import BFlags, Flag, FlagKind
from .dump import go_quote
from .heredoc import chomp, parse_heredoc_word

Expander = Callable[[str], str]
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
MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part of every instruction: where it came from, for error messages.

    ``node`` is the parse-tree node (None only for instructions built by hand); it is left out of
    equality and repr so two instructions with the same meaning compare equal.
    """

    keyword: ClassVar[str] = ""

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


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount``. Sizes are bytes; ``mode`` is the octal value read as an int.

    ``read_only`` defaults by type: cache and tmpfs mounts are writable, the others read-only.
    ``id`` is the cache id for cache mounts and the secret/ssh id for those types.
    ``spec`` is the flag value as written, kept so the build can re-parse it after expansion.
    """

    type: str = "bind"
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    read_only: bool = True
    id: str | None = None
    sharing: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    required: bool = False
    env: str | None = None
    spec: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Device:
    """One ``RUN --device``: a CDI device name, and whether the build must fail without it."""

    name: str
    required: bool = False


@dataclass(frozen=True)
class PortSpec:
    """A container port or port range with its protocol, from an EXPOSE word."""

    start: int
    end: int
    protocol: str = "tcp"

    def ports(self) -> list[str]:
        """The image-config keys this spec exposes, one per port: ``["80/tcp"]``."""
        return [f"{port}/{self.protocol}" for port in range(self.start, self.end + 1)]

    def __str__(self) -> str:
        ports = str(self.start) if self.start == self.end else f"{self.start}-{self.end}"
        return f"{ports}/{self.protocol}"


# --------------------------------------------------------------------------- instructions


@dataclass(frozen=True)
class From(Instruction):
    """``FROM [--platform=P] IMAGE [AS name]``; ``stage_name`` is lowercased."""

    keyword: ClassVar[str] = "FROM"

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

    keyword: ClassVar[str] = "RUN"

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

    keyword: ClassVar[str] = "COPY"

    from_: str | None = None
    parents: bool = False

    def expand(self, fn: Expander, heredoc_fn: Expander | None = None) -> Self:
        return dataclasses.replace(self, from_=_expand_opt(fn, self.from_),
                                   **self._expanded(fn, heredoc_fn))


@dataclass(frozen=True)
class Add(_CopyBase):
    """``ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--unpack] [--exclude]
    SRC... DEST``. ``unpack`` is None when not given (ADD then unpacks local archives only)."""

    keyword: ClassVar[str] = "ADD"

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

    keyword: ClassVar[str] = "ENV"

    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, pairs=tuple((fn(k), fn(v)) for k, v in self.pairs))


@dataclass(frozen=True)
class Label(Instruction):
    """``LABEL k=v ...`` (or legacy ``LABEL k v``); values raw until expanded."""

    keyword: ClassVar[str] = "LABEL"

    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, pairs=tuple((fn(k), fn(v)) for k, v in self.pairs))


@dataclass(frozen=True)
class Arg(Instruction):
    """``ARG name[=default] ...``."""

    keyword: ClassVar[str] = "ARG"

    args: tuple[ArgSpec, ...]

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, args=tuple(
            dataclasses.replace(a, key=fn(a.key), default=_expand_opt(fn, a.default))
            for a in self.args))


@dataclass(frozen=True)
class Expose(Instruction):
    """``EXPOSE port[/proto] ...``: the words as written; :meth:`port_specs` validates them."""

    keyword: ClassVar[str] = "EXPOSE"

    ports: tuple[str, ...]

    def expand(self, fn: Expander) -> Self:
        # Docker splits the expanded text into words, so one variable can hold several ports.
        return dataclasses.replace(self, ports=tuple(w for p in self.ports for w in fn(p).split()))

    def port_specs(self) -> list[PortSpec]:
        """The parsed ports (call after :meth:`expand`); errors point at this instruction."""
        return [_at(self, lambda p=p: parse_port_spec(p)) for p in self.ports]


@dataclass(frozen=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"

    user: str

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, user=fn(self.user))


@dataclass(frozen=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"

    path: str

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, path=fn(self.path))


@dataclass(frozen=True)
class Volume(Instruction):
    """``VOLUME ["/a", "/b"]`` or ``VOLUME /a /b``."""

    keyword: ClassVar[str] = "VOLUME"

    volumes: tuple[str, ...]

    def expand(self, fn: Expander) -> Self:
        return dataclasses.replace(self, volumes=tuple(fn(v) for v in self.volumes))


@dataclass(frozen=True)
class Shell(Instruction):
    """``SHELL ["executable", "param", ...]`` (JSON form only)."""

    keyword: ClassVar[str] = "SHELL"

    shell: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"

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

    keyword: ClassVar[str] = "HEALTHCHECK"

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

    keyword: ClassVar[str] = "ONBUILD"

    expression: str


@dataclass(frozen=True)
class Maintainer(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"

    name: str


@dataclass(frozen=True)
class Cmd(Instruction):
    """``CMD``: ``cmd_line`` is the JSON array, or the shell form as one string."""

    keyword: ClassVar[str] = "CMD"

    cmd_line: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True)
class Entrypoint(Instruction):
    """``ENTRYPOINT``, shaped like :class:`Cmd`; ``ENTRYPOINT []`` (empty) clears it."""

    keyword: ClassVar[str] = "ENTRYPOINT"

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
        flags = BFlags(list(self.node.flags))
        adders = {"bool": flags.add_bool, "string": flags.add_string,
                  "strings": flags.add_strings}
        declared = {name: adders[kind](name) for name, kind in FLAGS.get(self.keyword, {}).items()}
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
    triples = [req.args[i:i + 3] for i in range(0, len(req.args), 3)]
    if any(key == "" for key, _, _ in triples):
        raise DockerfileError(f"{req.keyword} names can not be blank")
    return tuple((key, value) for key, value, _ in triples), any(sep == "" for *_, sep in triples)


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


def _csv_fields(spec: str, what: str) -> list[str]:
    """The comma-separated fields of a --mount/--device value (CSV quoting allowed)."""
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as err:
        raise DockerfileError(f"failed to parse csv {what}: {err}") from None
    if not rows or not rows[0]:
        raise DockerfileError(f"failed to parse csv {what}: empty value")
    return rows[0]


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(key: str, value: str) -> bool:
    """A boolean option value, spelled any way Go's strconv.ParseBool accepts."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise DockerfileError(f"invalid value for {key}: {value}")


def _go_uint32(text: str, base: int) -> int | None:
    digits = "01234567" if base == 8 else "0123456789"
    if not text or any(c not in digits for c in text) or int(text, base) >= 2**32:
        return None
    return int(text, base)


_MOUNT_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly",
               "ro", "readwrite", "rw", "required", "size", "id", "sharing", "mode", "uid",
               "gid", "env")
# Keys whose values are plain text: kept as written at parse time even when they hold variables.
_MOUNT_TEXT_KEYS = ("from", "source", "src", "target", "dst", "destination", "id", "env")


def parse_mount(spec: str, expand: Expander | None = None) -> Mount:
    """Parse one ``--mount`` value, e.g. ``type=cache,target=/root/.cache,sharing=locked``.

    Without ``expand`` (at parse time) values are taken as written. A value holding a
    variable, quote or backslash cannot be checked yet: a text value (``target=$HOME/x``) is
    kept as written, a typed one (``uid=$UID``) is skipped, and the cross-field checks are
    left out. Such a mount is provisional; the build calls this again with ``expand``.
    ``from`` may never hold a variable: it names a stage, and the stage graph is fixed before
    anything is expanded.
    """
    m: dict[str, object] = {"type": "bind", "spec": spec}
    read_only: bool | None = None     # None: the type's default
    deferred = False
    for item in _csv_fields(spec, "mounts"):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                read_only = True
            elif key in ("readwrite", "rw"):
                read_only = False
            elif key == "required":
                m["required"] = True
            else:
                raise DockerfileError(f"invalid field '{item}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        elif key == "from" and "$" in value[:-1]:
            raise DockerfileError("'from' doesn't support variable expansion, "
                                  "define alias stage instead",
                                  hint="add a stage: FROM image AS name, and mount from=name")
        elif any(c in value for c in "$'\"\\"):
            # Expansion may change it (even empty it): no cross-field checks before the build.
            deferred = True
            if key not in _MOUNT_TEXT_KEYS:
                continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise DockerfileError(f"unsupported mount type {go_quote(value)}",
                                      hint=_did_you_mean(value.lower(), MOUNT_TYPES))
            m["type"] = value.lower()
        elif key == "from":
            m["from_"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro"):
            read_only = _go_bool(key, value)
        elif key in ("readwrite", "rw"):
            read_only = not _go_bool(key, value)
        elif key == "required":
            m["required"] = _go_bool(key, value)
        elif key == "size":
            m["size"] = _ram_in_bytes(key, value)
        elif key == "id":
            m["id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES:
                raise DockerfileError(f"unsupported sharing value {go_quote(value)}",
                                      hint="use one of: " + ", ".join(SHARING_MODES))
            m["sharing"] = value.lower()
        elif key in ("mode", "uid", "gid"):
            number = _go_uint32(value, 8 if key == "mode" else 10)
            if number is None:
                raise DockerfileError(f"invalid value {value} for {key}")
            m[key] = number
        elif key == "env":
            m["env"] = value
        else:
            raise DockerfileError(f"unexpected key '{key}' in '{item}'",
                                  hint=_did_you_mean(key, _MOUNT_KEYS))
    kind = m["type"]
    if read_only is None:
        read_only = kind not in ("cache", "tmpfs")
    if kind == "cache" and "sharing" not in m:
        m["sharing"] = "shared"
    mount = Mount(read_only=read_only, **m)  # type: ignore[arg-type]
    if not deferred:
        _check_mount(mount, given=m.keys())
    return mount


def _check_mount(m: Mount, given: Collection[str]) -> None:
    """The checks that need the whole mount (the type may come after the option).
    ``given``: the Mount fields the spec set."""
    if "required" in given and m.type not in ("secret", "ssh"):
        raise DockerfileError(f"unexpected key 'required' for mount type '{m.type}'")
    if "size" in given and m.type != "tmpfs":
        raise DockerfileError(f"unexpected key 'size' for mount type '{m.type}'")
    if m.type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if getattr(m, key) is not None:
                raise DockerfileError(f"{key} not allowed for {go_quote(m.type)} type mounts")
    if m.sharing is not None and m.type != "cache":
        if m.type == "secret":
            raise DockerfileError("secret mount should not define sharing")
        raise DockerfileError(f"invalid cache sharing set for {m.type} mount")
    if m.type == "secret":
        if m.from_:
            raise DockerfileError("secret mount should not have a from")
        if not (m.source or m.target or m.id):
            raise DockerfileError("invalid secret mount. one of source, target required",
                                  hint="name the secret: --mount=type=secret,id=NAME")
        if m.source and m.id:
            raise DockerfileError("both source and id can't be set")


_RAM_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)


def _ram_in_bytes(key: str, text: str) -> int:
    """A size like ``512m``, ``1g``, ``100`` (bytes): binary multiples, as Docker reads them."""
    match = _RAM_SIZE.fullmatch(text)
    if match is None:
        raise DockerfileError(f"invalid value for {key}: {text}",
                              hint="give a size like 64m or 1g")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * 1024 ** ("kmgtp".index(unit) + 1 if unit else 0))


def parse_device(spec: str) -> Device:
    """Parse one ``--device`` value: ``vendor.com/class=name[,required[=bool]]``.

    The first bare field names the device, and so does a first ``key=value`` field with an
    unknown key, since CDI names themselves contain ``=``.
    """
    name = ""
    required = False
    for item in _csv_fields(spec, "devices"):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value and key == "required":
            required = True
        elif not has_value or key not in ("name", "required"):
            if name:
                if not has_value:
                    raise DockerfileError(f"invalid field '{item}' must be a key=value pair")
                raise DockerfileError(f"unexpected key '{key}' in '{item}'",
                                      hint=_did_you_mean(key, ("name", "required")))
            name = item
        elif key == "name":
            if name:
                raise DockerfileError(f"device name already set to {name}")
            name = value
        else:
            required = _go_bool(key, value)
    return Device(name, required)


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]}?" if close else None


# --------------------------------------------------------------------------- durations, ports

_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str, what: str = "duration") -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``, ``250ms``, ``0``) in nanoseconds."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    total, pos = 0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        # Each part needs digits before or after the point ("." alone is not a number).
        if match is None or not (match.group(1) or match.group(2)):
            break
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale + int(fraction or "0") * scale // 10 ** len(fraction)
        pos = match.end()
    if not body or pos < len(body) or total >= 2**63:
        raise DockerfileError(f"invalid duration {go_quote(text)} for {what}",
                              hint="write a number with a unit (ns, us, ms, s, m, h), "
                                   "like 30s or 1m30s")
    return sign * total


_PORT_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
PROTOCOLS = ("tcp", "udp", "sctp")


def parse_port_spec(text: str) -> PortSpec:
    """Parse one EXPOSE word: ``80``, ``53/udp``, ``8000-8010/tcp``.

    As in Docker, an ``[ip:][host-port:]`` prefix is accepted and ignored (EXPOSE only
    declares container ports); the protocol is case-insensitive and defaults to tcp.
    """
    container = text.rsplit(":", 1)[-1]
    ports, _, protocol = container.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in PROTOCOLS:
        raise DockerfileError(f"invalid protocol {go_quote(protocol)} in port {go_quote(text)}",
                              hint="use tcp, udp or sctp, like 53/udp")
    match = _PORT_RANGE.fullmatch(ports)
    if match is None:
        raise DockerfileError(f"invalid port {go_quote(text)}",
                              hint="write a port or range with an optional protocol: "
                                   "80, 53/udp, 8000-8010/tcp")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if max(start, end) > 65535:
        raise DockerfileError(f"invalid port {go_quote(text)}: ports go up to 65535")
    if end < start:
        raise DockerfileError(f"invalid port range {go_quote(text)}: "
                              "the end is lower than the start")
    return PortSpec(start, end, protocol)
