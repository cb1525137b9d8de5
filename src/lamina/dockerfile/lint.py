"""``lamina lint``: a pass over the parsed Dockerfile that reports problems with their position.

Errors are what makes a build fail (a parse error, an unknown instruction, a bad flag, an image
name Docker refuses); warnings follow BuildKit's build checks and carry their rule names
(``MaintainerDeprecated``, ``JSONArgsRecommended`` ...) so users can look them up in Docker's
documentation.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import DockerfileError, LaminaError
from ..image.reference import ImageReference
from .ast import Node
from .instructions import (Arg, Cmd, Entrypoint, Env, Expose, Healthcheck, Instruction,
                           Label, Maintainer, Shell, Workdir)
from .stages import (PLATFORM_ARGS, RESERVED_STAGE_NAMES, Dockerfile, Stage, global_args,
                     load_dockerfile, resolve_from, walk_stage)

ERROR = "error"
WARNING = "warning"

# BuildKit's SecretsUsedInArgOrEnv: names with a secret-looking word between separators.
_SECRET_WORD = re.compile(
    r"(?:^|_)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)",
    re.IGNORECASE)
# ... unless one of those words is "public" (BuildKit's allow-list is a word too).
_SECRET_ALLOWED = re.compile(r"(?:^|_)public(?:_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One error or warning about a Dockerfile, at a file, line and column."""

    severity: str          # "error" or "warning"
    message: str
    file: str
    line: int | None
    column: int | None = None
    rule: str = ""         # BuildKit's check name for warnings; "" for errors
    hint: str | None = None

    @property
    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity}: {self.message}"
        if self.rule:
            text += f" [{self.rule}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict:
        return {"severity": self.severity, "message": self.message, "file": self.file,
                "line": self.line, "column": self.column, "rule": self.rule or None,
                "hint": self.hint}


@dataclass
class LintReport:
    """What ``lamina lint`` found in one Dockerfile, with the parsed file when it parsed."""

    file: str
    dockerfile: Dockerfile | None
    problems: list[Problem] = field(default_factory=list)
    # Base image of each stage after the global ARGs are applied (None when it could not be).
    resolved_bases: list[str | None] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(p.severity == ERROR for p in self.problems)

    def to_json(self) -> dict:
        out: dict = {"file": self.file, "problems": [p.to_json() for p in self.problems]}
        df = self.dockerfile
        if df is not None:
            out["escape"] = df.escape_token
            out["directives"] = {d.name: d.value for d in df.tree.directives}
            out["global_args"] = [_instruction_json(a) for a in df.meta_args]
            out["stages"] = [
                {"index": s.index, "name": s.name, "base": s.from_.base_name,
                 "resolved_base": self.resolved_bases[s.index], "platform": s.from_.platform,
                 "start_line": s.from_.line,
                 "end_line": _node_end(s.instructions[-1] if s.instructions else s.from_),
                 "instructions": [_instruction_json(i) for i in (s.from_, *s.instructions)]}
                for s in df.stages]
        return out


def lint(data: bytes | str, file: str = "Dockerfile",
         build_args: Mapping[str, str] | None = None) -> LintReport:
    """Read a Dockerfile and report every problem found, by line, errors first."""
    errors: list[DockerfileError] = []
    try:
        df = load_dockerfile(data, file=file, errors=errors)
    except DockerfileError as err:
        # The bad instructions recorded before the fatal problem are worth reporting too.
        problems = [_error(e) for e in errors if e is not err] + [_error(err)]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        return LintReport(file, None, problems)
    report = LintReport(file, df, [_error(e) for e in errors])
    _Checks(df, build_args or {}, report).run()
    report.problems.sort(key=lambda p: (p.line or 0, p.column or 0, p.severity != ERROR))
    return report


def _error(err: LaminaError, file: str = "Dockerfile", line: int | None = None,
           column: int | None = None) -> Problem:
    if isinstance(err, DockerfileError):
        file, line, column = err.file or file, err.line or line, err.column or column
    return Problem(ERROR, err.message, file, line, column, hint=err.hint)


class _Checks:
    def __init__(self, df: Dockerfile, build_args: Mapping[str, str], report: LintReport) -> None:
        self.df = df
        self.build_args = build_args
        self.report = report

    def add(self, severity: str, message: str, at: Instruction | Node | None, rule: str = "",
            hint: str | None = None) -> None:
        if isinstance(at, Instruction):
            line, column = at.line, at.column
        elif isinstance(at, Node):
            line, column = at.start_line, at.column
        else:
            line = column = None
        self.report.problems.append(
            Problem(severity, message, self.df.file, line, column, rule, hint))

    def run(self) -> None:
        for w in self.df.tree.warnings:
            self.report.problems.append(Problem(WARNING, w.message, self.df.file, w.line,
                                                w.column, w.rule or "NoEmptyContinuation"))
        self.instruction_casing()
        try:
            scope = global_args(self.df, self.build_args)
        except DockerfileError as err:
            self.report.problems.append(_error(err, self.df.file))
            scope = {}
        declared_globals = {s.key for a in self.df.meta_args for s in a.args}
        # No secret check on global ARGs: they only reach FROM lines, and BuildKit checks the
        # stage ARG that brings one into a stage.
        stage_names = set()
        # What a stage built FROM a named stage inherits: (WORKDIR set, SHELL set).
        carried: dict[str, tuple[bool, bool]] = {}
        for stage in self.df.stages:
            base = self.from_checks(stage, scope, declared_globals, stage_names)
            self.report.resolved_bases.append(base)
            if stage.name:
                stage_names.add(stage.name)
            result = self.stage_checks(stage, scope, *carried.get(base or "", (False, False)))
            if stage.name:
                carried[stage.name] = result

    def instruction_casing(self) -> None:
        nodes = list(self.df.tree.root.children)
        words = [_keyword_as_written(n) for n in nodes]
        cases = Counter("upper" if w.isupper() else "lower" if w.islower() else "mixed"
                        for w in words)
        majority = "lower" if cases["lower"] > cases["upper"] else "upper"
        for node, word in zip(nodes, words):
            if (word.isupper() and majority == "upper") or (word.islower() and majority == "lower"):
                continue
            self.add(WARNING, f"Command '{word}' should match the case of the command majority "
                     f"({majority}case)", node, "ConsistentInstructionCasing",
                     hint=f"write {word.upper() if majority == 'upper' else word.lower()}")

    def from_checks(self, stage: Stage, scope: Mapping[str, str | None],
                    declared: set[str], earlier_stages: set[str]) -> str | None:
        inst = stage.from_
        words = inst.node.args() if inst.node else []
        if len(words) == 3:
            written_as, written_name = words[1], words[2]
            if written_name != written_name.lower():
                self.add(WARNING, f"Stage name '{written_name}' should be lowercase", inst,
                         "StageNameCasing", hint=f"use AS {written_name.lower()}")
            keyword = _keyword_as_written(inst.node)
            if (keyword.isupper() and not written_as.isupper()) or (
                    keyword.islower() and not written_as.islower()):
                self.add(WARNING, f"'{written_as}' and '{keyword}' keywords' casing do not match",
                         inst, "FromAsCasing")
        if stage.name in RESERVED_STAGE_NAMES:
            self.add(WARNING, f"'{stage.name}' is reserved and should not be used as a stage name",
                     inst, "ReservedStageName", hint="choose another stage name")
        if inst.platform and inst.platform.replace("{", "").replace("}", "") == "$TARGETPLATFORM":
            self.add(WARNING, "Setting platform to predefined $TARGETPLATFORM in FROM is redundant "
                     "as this is the default behavior", inst, "RedundantTargetPlatform")
        try:
            resolved, unset = resolve_from(self.df, stage, scope)
        except DockerfileError as err:
            self.report.problems.append(_error(err, self.df.file))
            return None
        for name in sorted(unset):
            if name not in declared and name not in PLATFORM_ARGS:
                self.add(WARNING, f"FROM argument '{name}' is not declared", inst,
                         "UndefinedArgInFrom",
                         hint=f"declare it before the first FROM: ARG {name}=<default>")
        base = resolved.base_name
        # Exact matches, as in BuildKit: "FROM Build" names an image, not the stage "build".
        if base == "scratch" or base in earlier_stages:
            return base
        try:
            ImageReference.parse(base)
        except LaminaError as err:
            if unset:
                # Only the ARG defaults are wrong; a --build-arg can still make it valid.
                names = ", ".join(sorted(unset))
                self.add(WARNING, f"Default value for ARG {names} results in empty or invalid "
                         f"base image name {base!r}", inst, "InvalidDefaultArgInFrom",
                         hint=f"give {names} a default, or pass --build-arg")
            else:
                hint = err.hint
                if base.lower() in earlier_stages:
                    hint = (f"to build on the stage, write FROM {base.lower()}: FROM matches "
                            "stage names exactly (moby/buildkit#2003)")
                self.add(ERROR, f"FROM {base}: {err.message}", inst, hint=hint)
            return None
        return base

    def arg_checks(self, arg: Arg) -> None:
        for spec in arg.args:
            self.secret_check("ARG", spec.key, arg)

    def secret_check(self, keyword: str, name: str, inst: Instruction) -> None:
        if _SECRET_WORD.search(name) and not _SECRET_ALLOWED.search(name):
            self.add(WARNING, f'Do not use ARG or ENV instructions for sensitive data '
                     f'({keyword} "{name}")', inst, "SecretsUsedInArgOrEnv",
                     hint="pass secrets with RUN --mount=type=secret; they then stay out of "
                          "the image")

    def stage_checks(self, stage: Stage, scope: Mapping[str, str | None],
                     workdir_set: bool = False, shell_set: bool = False) -> tuple[bool, bool]:
        """The checks of the stage's instructions. ``workdir_set`` and ``shell_set``: whether
        the stage it is built FROM set a WORKDIR and a SHELL; returns the same for this one."""
        last_of: dict[str, Instruction] = {}   # the CMD, ENTRYPOINT, HEALTHCHECK seen last
        declared: set[str] = set()             # ARG names declared in the stage so far
        known_env = stage.from_.base_name.lower() == "scratch"
        steps = walk_stage(self.df, stage, build_args=self.build_args, scope=scope)
        for inst in stage.instructions:
            try:
                step = next(steps)
            except DockerfileError as err:
                self.report.problems.append(_error(err, self.df.file, inst.line, inst.column))
                break
            expanded = step.expanded
            if known_env:
                # A name declared with ARG counts as defined, value or not (as in BuildKit).
                for name in sorted(step.unset_vars - declared):
                    self.add(WARNING, f"Usage of undefined variable '${name}'", inst, "UndefinedVar")
            if isinstance(expanded, Arg):
                declared.update(spec.key for spec in expanded.args)
            if isinstance(inst, (Cmd, Entrypoint, Healthcheck)):
                # Reported at the earlier one, as BuildKit does: that is the one ignored.
                if inst.keyword in last_of:
                    self.add(WARNING, f"Multiple {inst.keyword} instructions should not be used "
                             "in the same stage because only the last one will be used",
                             last_of[inst.keyword], "MultipleInstructionsDisallowed")
                last_of[inst.keyword] = inst
            if isinstance(inst, Shell):
                shell_set = True
            # After a SHELL the shell form is deliberate, and BuildKit does not warn.
            if isinstance(inst, (Cmd, Entrypoint)) and inst.prepend_shell and not shell_set:
                self.add(WARNING, f"JSON arguments recommended for {inst.keyword} to prevent "
                         "unintended behavior related to OS signals", inst, "JSONArgsRecommended",
                         hint=f'write {inst.keyword} ["executable", "arg", ...]')
            elif isinstance(inst, Maintainer):
                self.add(WARNING, "Maintainer instruction is deprecated in favor of using label",
                         inst, "MaintainerDeprecated",
                         hint=f'use LABEL org.opencontainers.image.authors="{inst.name}"')
            elif isinstance(inst, (Env, Label)):
                if inst.legacy:
                    key = inst.pairs[0][0]
                    self.add(WARNING, f'"{inst.keyword} key=value" should be used instead of '
                             f'legacy "{inst.keyword} key value" format', inst,
                             "LegacyKeyValueFormat", hint=f"write {inst.keyword} {key}=...")
                if isinstance(inst, Env):
                    for key, _ in inst.pairs:
                        self.secret_check("ENV", key, inst)
            elif isinstance(inst, Arg):
                self.arg_checks(inst)
            elif isinstance(expanded, Workdir):
                # BuildKit checks only the first WORKDIR of a stage (or of the stages it is
                # built on): the relative ones after it are fixed by fixing that one.
                if not (workdir_set or expanded.path.startswith("/") or "$" in inst.path):
                    self.add(WARNING, f"Relative workdir '{expanded.path}' can have unexpected "
                             "results if the base image changes", inst, "WorkdirRelativePath",
                             hint=f"use an absolute path, e.g. WORKDIR /{expanded.path}")
                workdir_set = True
            elif isinstance(expanded, Expose):
                self.expose_checks(inst, expanded)
        return workdir_set, shell_set

    def expose_checks(self, inst: Expose, expanded: Expose) -> None:
        for word in expanded.ports:
            if ":" in word:
                self.add(WARNING, "EXPOSE instruction should not define an IP address or "
                         f"host-port mapping, found '{word}'", inst, "ExposeInvalidFormat",
                         hint="EXPOSE declares container ports only; publish with run -p")
            proto = word.partition("/")[2]
            if proto and proto != proto.lower():
                self.add(WARNING, f"Defined protocol '{word}' in EXPOSE instruction should be "
                         "lowercase", inst, "ExposeProtoCasing")
        try:
            expanded.port_specs()
        except DockerfileError as err:
            self.report.problems.append(_error(err, self.df.file))


def _keyword_as_written(node: Node) -> str:
    return node.original.split(None, 1)[0] if node.original.strip() else node.value


def _node_end(inst: Instruction) -> int | None:
    return inst.node.end_line if inst.node else None


def _instruction_json(inst: Instruction) -> dict:
    node = inst.node
    return {"keyword": inst.keyword, "start_line": inst.line,
            "end_line": node.end_line if node else None,
            "flags": list(node.flags) if node else [],
            "args": node.args() if node else [], "json": bool(node and node.json),
            "heredocs": [h.name for h in node.heredocs] if node else [],
            "original": inst.original}


def format_report(report: LintReport) -> str:
    """The human-readable outline: directives, global ARGs, then each stage's instructions."""
    df = report.dockerfile
    if df is None:
        return f"{report.file}: could not be parsed\n"
    n = sum(1 + len(s.instructions) for s in df.stages) + len(df.meta_args)
    out = [f"{report.file}: {len(df.stages)} stage(s), {n} instruction(s)"
           f" (escape {df.escape_token!s})"]
    for d in df.tree.directives:
        out.append(f"  # {d.name}={d.value}")
    for arg in df.meta_args:
        out.append(f"  {arg.line:>5}  {_summary(arg)}")
    for stage, base in zip(df.stages, report.resolved_bases):
        label = f"stage {stage.index}" + (f" {stage.name!r}" if stage.name else "")
        base_text = stage.from_.base_name
        if base and base != base_text:
            base_text += f" -> {base}"
        out.append(f"{label}: FROM {base_text}")
        for inst in (stage.from_, *stage.instructions):
            out.append(f"  {inst.line:>5}  {_summary(inst)}")
    return "\n".join(out) + "\n"


def _summary(inst: Instruction, width: int = 100) -> str:
    text = " ".join(inst.original.split())
    return text if len(text) <= width else text[: width - 3] + "..."
