"""The build plan: which stages a build runs, in which order, and what each one needs.

A stage needs the stage it is built ``FROM`` (when its base name, after the global ARGs,
names an earlier stage), and the stages its ``COPY --from`` and ``RUN --mount=from=`` name
(by name, or by index). Only the stages the target reaches are built: ``--target`` picks the
target, else the last stage. Any other ``--from`` value is an image.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..dockerfile.instructions import Copy, From, Run
from ..dockerfile.stages import Dockerfile, Stage, resolve_from
from ..errors import DockerfileError


@dataclass(frozen=True)
class StagePlan:
    """One stage to build, and what it is built on and needs."""

    stage: Stage
    from_: From                      # the FROM line with the global ARGs applied
    base_stage: int | None           # the stage it is built on, or None for an image/scratch
    needs: frozenset[int]            # stages it copies or mounts from


@dataclass(frozen=True)
class BuildPlan:
    """The stages a build makes, for its target."""

    dockerfile: Dockerfile
    target: int
    stages: tuple[StagePlan, ...]    # those the target needs, dependencies first

    def stage(self, index: int) -> StagePlan:
        return next(p for p in self.stages if p.stage.index == index)


def plan_build(df: Dockerfile, target: str | None,
               global_scope: Mapping[str, str | None]) -> BuildPlan:
    """The stages to build for ``target`` (a stage name or index; None: the last stage)."""
    target_stage = df.stage(target) if target is not None else df.stages[-1]
    plans = {s.index: _plan_stage(df, s, global_scope) for s in df.stages[:target_stage.index + 1]}
    wanted: set[int] = set()
    pending = [target_stage.index]
    while pending:
        index = pending.pop()
        if index in wanted:
            continue
        wanted.add(index)
        plan = plans[index]
        if plan.base_stage is not None:
            pending.append(plan.base_stage)
        pending.extend(plan.needs)
    return BuildPlan(df, target_stage.index, tuple(plans[i] for i in sorted(wanted)))


def stage_ref(df: Dockerfile, ref: str, user: Stage | None) -> Stage | None:
    """The stage ``--from=ref`` names, or None when ``ref`` is an image.

    A stage must be defined before the one that uses it (``user``; None for a trigger of a
    base image's ONBUILD, which may use any stage).
    """
    limit = user.index if user is not None else len(df.stages)
    if ref.isdigit():
        index = int(ref)
        if index >= len(df.stages):
            raise DockerfileError(f"invalid stage index {index}: the Dockerfile has "
                                  f"{len(df.stages)} stage(s), numbered from 0", file=df.file)
        found: Stage | None = df.stages[index]
    else:
        found = next((s for s in reversed(df.stages) if s.name == ref.lower()), None)
    if found is not None and found.index >= limit:
        raise DockerfileError(
            f"cannot copy from stage {ref!r}, it needs to be defined before the current stage",
            file=df.file, hint="move the stage it uses above this one")
    return found


def _plan_stage(df: Dockerfile, stage: Stage, scope: Mapping[str, str | None]) -> StagePlan:
    from_, _ = resolve_from(df, stage, scope)
    # FROM names a stage exactly as written (BuildKit looks the name up as is); the latest
    # earlier stage of that name wins.
    bases = [s for s in df.stages[:stage.index] if s.name == from_.base_name]
    needs: set[int] = set()
    for inst in stage.instructions:
        refs: list[str] = []
        if isinstance(inst, Copy) and inst.from_:
            refs.append(inst.from_)
        elif isinstance(inst, Run):
            refs.extend(m.from_ for m in inst.mounts if m.from_)
        for ref in refs:
            if "$" in ref:
                raise inst.error("variable expansion is not supported for --from",
                                 hint="define a stage with FROM using a global ARG, "
                                      "and copy from that stage")
            try:
                found = stage_ref(df, ref, stage)
            except DockerfileError as err:
                raise err.at(inst.file, inst.line, inst.column)
            if found is not None:
                needs.add(found.index)
    return StagePlan(stage, from_, bases[-1].index if bases else None, frozenset(needs))
