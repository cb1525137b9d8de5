"""Stages and build arguments: the typed Dockerfile as a build reads it.

``load_dockerfile`` groups the typed instructions into stages (``FROM ... AS name``), keeps the
global ARGs that come before the first FROM, and checks what can be checked without a build:
stage names unique, nothing but ARG before FROM.

Docker's ARG scoping, which :class:`StageScope` follows:
- global ARGs (before the first FROM) and the automatic platform ARGs are visible in FROM lines;
- inside a stage an ARG is visible only after it is declared there: a bare ``ARG NAME`` takes the
  ``--build-arg`` value, else the global value; ``ARG NAME=default`` takes the ``--build-arg``
  value, else its default;
- of an ENV and an ARG of the same name, the one set last wins (BuildKit keeps one list of
  variables), so ``ARG X=1`` then ``ENV X=2`` gives 2, and an ARG with a value overrides an ENV
  from before it or from the base image; the image keeps the ENV;
- both end with the stage, except that a stage built ``FROM`` an earlier stage inherits that
  stage's ARGs (and, with its image, its ENV);
- the proxy ARGs (``HTTP_PROXY`` ...) reach RUN without a declaration when given with
  ``--build-arg``, and stay out of the image.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..errors import DockerfileError
from ..image.platform import Platform, host_platform
from .ast import ParseResult
from .instructions import (Add, Arg, Copy, Env, From, Instruction, Onbuild, parse_instruction)
from .parser import parse
from .shell import ShellLex

PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)
PLATFORM_ARGS = (
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
)
# Stage names that would be read as something else in COPY --from and FROM.
RESERVED_STAGE_NAMES = ("scratch", "context")


@dataclass(frozen=True)
class Stage:
    """One stage: its FROM and the instructions after it."""

    index: int
    name: str | None
    from_: From
    instructions: tuple[Instruction, ...]   # after the FROM

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else str(self.index)


@dataclass(frozen=True)
class Dockerfile:
    """A Dockerfile as typed instructions, split into stages."""

    file: str
    tree: ParseResult
    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]

    @property
    def escape_token(self) -> str:
        return self.tree.escape_token

    def stage(self, ref: str | int) -> Stage:
        """A stage by name (case-insensitive) or by index, as ``--target`` and ``--from`` use."""
        if isinstance(ref, str):
            key = ref.lower()
            for stage in self.stages:
                if stage.name == key:
                    return stage
            if not key.isdigit():
                names = ", ".join(s.name for s in self.stages if s.name) or "none"
                raise DockerfileError(f"stage {ref!r} not found in {self.file}",
                                      file=self.file, hint=f"the named stages are: {names}")
            ref = int(key)
        if 0 <= ref < len(self.stages):
            return self.stages[ref]
        raise DockerfileError(f"stage index {ref} is out of range: {self.file} has "
                              f"{len(self.stages)} stage(s), numbered from 0", file=self.file)


def load_dockerfile(data: bytes | str, file: str = "Dockerfile",
                    errors: list[DockerfileError] | None = None) -> Dockerfile:
    """Parse a Dockerfile into typed stages; raise DockerfileError at the first problem.

    With an ``errors`` list, a bad instruction is recorded there and left out instead, so a
    linter can report every problem at once (a broken parse tree still raises).
    """
    tree = parse(data, file=file)

    def fail(err: DockerfileError) -> None:
        if errors is None:
            raise err
        errors.append(err)

    meta_args: list[Arg] = []
    stages: list[Stage] = []
    current: From | None = None
    body: list[Instruction] = []
    seen: dict[str, int] = {}
    broken_from: DockerfileError | None = None   # the first FROM that did not parse
    in_broken_stage = False

    def close() -> None:
        if current is not None:
            stages.append(Stage(len(stages), current.stage_name, current, tuple(body)))

    for node in tree.root.children:
        try:
            inst = parse_instruction(node, file=file)
        except DockerfileError as err:
            fail(err)
            if node.value.lower() == "from":
                # What follows a FROM that does not parse belongs to its (lost) stage: not to
                # the stage before, and not "before the first FROM", which would mislead.
                close()
                current, body, in_broken_stage = None, [], True
                broken_from = broken_from or err
            continue
        if isinstance(inst, From):
            close()
            current, body, in_broken_stage = inst, [], False
            if inst.stage_name is not None:
                if inst.stage_name in seen:
                    fail(inst.error(
                        f"duplicate stage name {inst.stage_name!r}: stage {seen[inst.stage_name]} "
                        "has it already", hint="give each stage its own name"))
                seen.setdefault(inst.stage_name, len(stages))
        elif in_broken_stage:
            continue
        elif current is None:
            if isinstance(inst, Arg):
                meta_args.append(inst)
            else:
                fail(inst.error(
                    f"{inst.keyword} before the first FROM: only ARG may come before FROM",
                    hint="start the build stage with FROM IMAGE (or FROM scratch)"))
        else:
            body.append(inst)
    close()
    if not stages and broken_from is not None:
        raise broken_from   # there is a FROM, it is wrong (already recorded in ``errors``)
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM, so there is no stage to build",
                              file=file, line=tree.root.end_line or None,
                              hint="add FROM IMAGE (or FROM scratch)")
    return Dockerfile(file, tree, tuple(meta_args), tuple(stages))


def platform_args(target: Platform | None = None, build: Platform | None = None) -> dict[str, str]:
    """The automatic platform ARGs, by default for this machine."""
    build = build or host_platform()
    target = target or build
    out = {}
    for prefix, p in (("TARGET", target), ("BUILD", build)):
        out[prefix + "PLATFORM"] = str(p)
        out[prefix + "OS"] = p.os
        out[prefix + "ARCH"] = p.architecture
        out[prefix + "VARIANT"] = p.variant
    return out


class Expander:
    """Expands words with one lexer and one set of variables, recording names that were unset."""

    def __init__(self, lex: ShellLex, variables: Mapping[str, str]) -> None:
        self.lex = lex
        self.variables = variables
        self.unmatched: set[str] = set()

    def __call__(self, word: str) -> str:
        result, _, unmatched = self.lex.process_word_with_matches(word, self.variables)
        self.unmatched |= unmatched
        return result


def global_args(df: Dockerfile, build_args: Mapping[str, str] | None = None,
                platform: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The global scope: platform ARGs plus the ARGs before the first FROM, in order.

    A declared ARG without a value maps to None (declared, unset).
    """
    build_args = build_args or {}
    scope: dict[str, str | None] = dict(platform if platform is not None else platform_args())
    lex = ShellLex(df.escape_token)
    for inst in df.meta_args:
        for spec in inst.args:
            expand = Expander(lex, _set_only(scope))
            key = expand(spec.key)
            if key in build_args:
                scope[key] = build_args[key]
            elif spec.default is not None:
                try:
                    scope[key] = expand(spec.default)
                except DockerfileError as err:
                    raise err.at(df.file, inst.line, inst.column)
            else:
                scope.setdefault(key, None)
    return scope


def resolve_from(df: Dockerfile, stage: Stage,
                 scope: Mapping[str, str | None]) -> tuple[From, frozenset[str]]:
    """The stage's FROM with the global scope applied, and the names it used that were unset."""
    expand = Expander(ShellLex(df.escape_token), _set_only(scope))
    try:
        expanded = stage.from_.expand(expand)
    except DockerfileError as err:
        raise err.at(df.file, stage.from_.line, stage.from_.column)
    return expanded, frozenset(expand.unmatched)


@dataclass(frozen=True)
class Step:
    """One instruction of a stage with its variables applied."""

    instruction: Instruction          # as written
    expanded: Instruction             # with Docker's expansion applied
    unset_vars: frozenset[str]        # names referenced but not set (for lint)
    env: tuple[tuple[str, str], ...]  # ENV in effect after the step
    args: tuple[tuple[str, str], ...]  # ARGs declared and set in the stage after the step


@dataclass
class StageScope:
    """The variables of one stage as its instructions run (see the module doc for the rules)."""

    lex: ShellLex
    global_scope: Mapping[str, str | None]
    build_args: Mapping[str, str]
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    # ARGs given a value after the last ENV of the same name: they win over that ENV.
    arg_wins: set[str] = field(default_factory=set)

    def variables(self) -> dict[str, str]:
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(self.env)
        out.update((k, v) for k, v in self.args.items() if k in self.arg_wins and v is not None)
        return out

    def step(self, inst: Instruction) -> Step:
        expand = Expander(self.lex, self.variables())
        try:
            if isinstance(inst, Onbuild):
                expanded = inst   # expanded when it runs, in the downstream build
            elif isinstance(inst, Arg):
                expanded = self._declare(inst, expand)
            elif isinstance(inst, (Copy, Add)):
                heredoc = Expander(_HEREDOC_LEX, expand.variables)
                expanded = inst.expand(expand, lambda body: heredoc(_quotes_as_text(body)))
                expand.unmatched |= heredoc.unmatched
            else:
                expanded = inst.expand(expand)
        except DockerfileError as err:
            raise err.at(inst.file, inst.line, inst.column)
        if isinstance(expanded, Env):
            self.env.update(expanded.pairs)
            self.arg_wins.difference_update(k for k, _ in expanded.pairs)
        return Step(inst, expanded, frozenset(expand.unmatched), tuple(self.env.items()),
                    tuple((k, v) for k, v in self.args.items() if v is not None))

    def _declare(self, inst: Arg, expand: Expander) -> Arg:
        """Declare the names of an ARG one at a time, as Docker does: a default sees the names
        declared before it in the same instruction (``ARG A=1 B=$A`` gives B=1, unlike ENV), and
        is not expanded at all when a --build-arg gives the value."""
        specs = []
        for spec in inst.args:
            expand.variables = self.variables()
            key = expand(spec.key)
            default = spec.default
            if default is not None and key not in self.build_args:
                default = expand(default)
            value = self._arg_value(key, default)
            if value is not None:
                self.args[key] = value
                self.arg_wins.add(key)
            else:
                # A bare ARG with no value to take leaves an earlier value of the name alone.
                self.args.setdefault(key, None)
            specs.append(dataclasses.replace(spec, key=key, default=default))
        return dataclasses.replace(inst, args=tuple(specs))

    def _arg_value(self, key: str, default: str | None) -> str | None:
        if key in self.build_args:
            return self.build_args[key]
        if default is not None:
            return default
        return self.global_scope.get(key)

    def run_env(self) -> dict[str, str]:
        """The environment a RUN sees: the stage's variables, over the proxy build args."""
        out = {k: v for k, v in self.build_args.items() if k in PROXY_ARGS}
        out.update(self.variables())
        return out


def walk_stage(df: Dockerfile, stage: Stage, *, build_args: Mapping[str, str] | None = None,
               scope: Mapping[str, str | None] | None = None,
               image_env: Mapping[str, str] | None = None) -> Iterator[Step]:
    """Each instruction of ``stage`` with Docker's expansion, in order.

    ``image_env`` is the base image's environment (the builder knows it; lint does not).
    """
    build_args = build_args or {}
    if scope is None:
        scope = global_args(df, build_args)
    state = _stage_scope(df, stage, build_args, scope, image_env or {})
    for inst in stage.instructions:
        yield state.step(inst)


def _stage_scope(df: Dockerfile, stage: Stage, build_args: Mapping[str, str],
                 scope: Mapping[str, str | None], image_env: Mapping[str, str]) -> StageScope:
    """The scope a stage starts with. A stage built FROM an earlier stage starts with the ARGs
    that stage has at its end (BuildKit's behaviour, in the Dockerfile reference under
    "Scope"); any other starts with none."""
    state = StageScope(ShellLex(df.escape_token), scope, build_args, dict(image_env))
    try:
        base = resolve_from(df, stage, scope)[0].base_name
    except DockerfileError:
        return state
    # FROM matches a stage name exactly (BuildKit looks the expanded name up as written); the
    # latest earlier stage of that name wins.
    parents = [s for s in df.stages[:stage.index] if s.name == base]
    if parents:
        parent = _stage_scope(df, parents[-1], build_args, scope, {})
        for inst in parents[-1].instructions:
            try:
                parent.step(inst)
            except DockerfileError:
                break   # reported where the parent stage itself is walked
        state.args, state.arg_wins = parent.args, parent.arg_wins
    return state


# BuildKit expands COPY/ADD heredoc bodies with a lexer of its own (moby/buildkit#2442): the
# escape character is always a backslash and is processed (\$ gives $), and quotes are plain
# characters, kept and not stopping expansion ('$A' expands), as in a shell here-document.
_HEREDOC_LEX = ShellLex("\\")
_QUOTE_OR_ESCAPED = re.compile(r"\\.|['\"]", re.DOTALL)


def _quotes_as_text(body: str) -> str:
    """``body`` with each quote escaped, so ``_HEREDOC_LEX`` reads it as a plain character."""
    return _QUOTE_OR_ESCAPED.sub(lambda m: m[0] if len(m[0]) == 2 else "\\" + m[0], body)


def _set_only(scope: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in scope.items() if v is not None}
