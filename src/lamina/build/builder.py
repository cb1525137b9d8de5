"""The build: a Dockerfile and its context become an image in the store.

``run_build`` reads the Dockerfile, plans the stages the target needs (plan.py) and builds
them, each once the stages it uses are built: independent stages build at the same time, in
threads (a step whose key another thread is making waits for it, then takes it from the
cache). A stage starts from a local image (its ONBUILD triggers run first), from
``scratch``, or from an earlier stage; then each instruction is a step (steps.py) whose
result comes from the build cache when its key is known, and is recorded there otherwise,
as soon as it is made: a build that fails keeps the steps before, and the next one resumes
at the failed step. The target's image is committed last and named with every tag
(``squash``: its layers over the base image merged into one first, build/squash.py).

A step that runs says why (``StepReport.reason``, and ``cache miss: ...`` in the progress):
compared with the closest record on the same parent (cachekey.explain_miss), or, when an
earlier step of this build ran, that step and its reason; or a base nothing was built on.
With ``source_date_epoch``, history and config times are that time, new layers' file times
are clamped to it, and the epoch is part of every step's key (through the stage's base key).

``cache_from`` directories (``--cache-from type=local,src=DIR``) or registry caches
(``type=registry,ref=REF``, registrycache.py) are imported into the build cache first;
``cache_to`` (a folder or a ``RegistryCache``) receives the records of the steps of this
build at the end: every stage's with ``mode=max``, else (``min``, the default as
in BuildKit) those of the target stage and the stages it is built FROM. See store/cache.py for
the format.

Everything the build writes is held by a lease until it is named or recorded in the cache,
so a garbage collection running meanwhile keeps it. Containers and scratch files live in
``<root>/builds/<id>/``, removed at the end whatever happens.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.stages import (PROXY_ARGS, Dockerfile, StageScope, global_args,
                                 load_dockerfile, platform_args)
from ..dockerfile.shell import ShellLex
from ..errors import DockerfileError, LaminaError, UsageError
from ..image.config import ContainerConfig, ImageConfig, format_unix_time
from ..image.platform import Platform, host_platform
from ..runtime.builddirs import remove_abandoned_builds, remove_build_dir as _remove_build_dir
from ..store.cache import BuildCache, CacheRecord
from ..store.root import Store
from .cachekey import base_key, explain_miss
from .context import BuildContext, load_ignore, remembered_name
from .plan import BuildPlan, StagePlan, plan_build, stage_ref
from .progress import Progress
from .steps import ImageState, StepContext, StepFailed, prepare

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:   # registry caches are rare: their module loads when one is given
    from .registrycache import RegistryCache

# Build args Docker accepts without an ARG and does not warn about.
BUILTIN_ARGS = frozenset({*PROXY_ARGS, "SOURCE_DATE_EPOCH"})
NETWORKS = {"default": "bridge", "bridge": "bridge", "host": "host", "none": "none"}
LAYER_STEPS = (ins.Run, ins.Copy, ins.Add)


class BuildError(DockerfileError):
    """A build that failed at a Dockerfile instruction; ``tail`` is the output's end."""

    exit_code = 1    # as docker build

    def __init__(self, message: str, *, file: str | None, line: int | None,
                 column: int | None = None, hint: str | None = None,
                 tail: tuple[str, ...] = ()) -> None:
        super().__init__(message, file=file, line=line, column=column, hint=hint)
        self.tail = tail


@dataclass(frozen=True)
class BuildRequest:
    """What to build, and how."""

    dockerfile: bytes
    dockerfile_name: str = "Dockerfile"
    context: Path | None = None               # None: no context (a Dockerfile alone)
    ignore_file: Path | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    network: str = "default"                  # default (bridge), host, none
    secrets: Mapping[str, Path] = field(default_factory=dict)
    source_date_epoch: int | None = None
    remember_hashes: bool = True              # keep file hashes for the next build
    # Fetches a base image into the store (api/build.py gives the registry client's pull);
    # None: a missing base image is an error. always_pull: fetch FROM images every time.
    pull: Callable[[str], None] | None = None
    always_pull: bool = False
    cache_from: tuple[Path | RegistryCache, ...] = ()   # exported caches to import first
    cache_to: Path | RegistryCache | None = None       # where to export this build's cache
    cache_mode: str = "min"                   # min: the target's stages; max: every stage
    squash: bool = False                      # one layer over the base image (build/squash.py)
    reasons: bool = True                      # work out why each step missed the cache


@dataclass(frozen=True)
class StepReport:
    """One step of a build, as the progress shows it."""

    stage: str                 # the stage's name, or its index
    instruction: str           # as written
    cached: bool
    seconds: float
    layer: bool                # RUN, COPY, ADD: the step made a layer
    position: str = ""         # "[2/5]" ("[builder 2/5]"): a layer step's place in the stage
    reason: str | None = None  # why the step ran (not cached): see cachekey.explain_miss


@dataclass(frozen=True)
class BuildResult:
    """What a build made."""

    image_id: str              # sha256:<hex> of the config
    digest: str                # the manifest digest
    tags: tuple[str, ...]      # as given, normalized (docker.io/library/app:latest)
    steps: tuple[StepReport, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _StageResult:
    """A built stage."""

    state: ImageState
    scope: StageScope
    base: "_Base"


@dataclass(frozen=True)
class _Base:
    """Where a stage's chain of FROMs starts: what ``--squash`` keeps as it is."""

    layers: int                # the base image's layers (0: scratch)
    history: int               # and its history entries


def run_build(store: Store, request: BuildRequest, progress: Progress) -> BuildResult:
    """Build ``request``; raise BuildError (or another LaminaError) when it cannot be done."""
    from ..image.reference import parse_normalized

    tags = tuple(str(parse_normalized(t)) for t in request.tags)
    network = NETWORKS.get(request.network)
    if network is None:
        raise UsageError(f"network mode {request.network!r} is not supported",
                         hint="use default, host or none")
    platform = host_platform()
    if request.platform and Platform.parse(request.platform) != platform:
        raise UsageError(f"lamina builds for this machine's platform only ({platform}), "
                         f"not {request.platform}", hint="leave --platform out")
    vertex = progress.start(f"[internal] load build definition from {request.dockerfile_name}")
    progress.log(vertex, f"transferring dockerfile: {len(request.dockerfile)}B done")
    df = load_dockerfile(request.dockerfile, request.dockerfile_name)
    progress.done(vertex)
    context = _load_context(store, request, progress)
    scope = global_args(df, request.build_args, platform_args())
    plan = plan_build(df, request.target, scope)
    remove_abandoned_builds(store)
    build_dir, lock_fd = _new_build_dir(store)
    import_warnings: list[str] = []
    try:
        with store.roots.lease() as lease_:
            lease = _SharedLease(lease_)
            for src in request.cache_from:
                import_warnings += _import_cache(store, src, lease, progress)
            builder = _Builder(store, request, df, plan, scope, progress, platform)
            builder.ctx = StepContext(
                store=store, lease=lease, progress=progress, context=context,  # type: ignore
                state_root=store.root, state_dir=build_dir, network=network,
                secrets=request.secrets, now=_clock(request.source_date_epoch),
                source_date_epoch=request.source_date_epoch,
                # the executors find other stages and images through the builder
                stage_state=builder.stage_state, image_state=builder.image_state)
            builder.build_stages()
            image_id, digest = builder.export(tags)
            if request.cache_to is not None:
                export_warning = builder.export_cache(request.cache_to, image_id)
                if export_warning:
                    import_warnings.append(export_warning)
    finally:
        _remove_build_dir(build_dir)
        os.close(lock_fd)
    if context is not None and request.remember_hashes and context.remembered_changed:
        BuildCache(store).save_file_hashes(remembered_name(context.root),
                                           context.remembered_in_use())
    warnings = _unused_args(df, plan, request.build_args)
    for warning in warnings:
        progress.warning(warning)
    warnings = (*import_warnings, *warnings)
    return BuildResult(image_id, digest, tags, tuple(builder.reports), warnings)


class _SharedLease:
    """The build's lease, shared by the threads of parallel stages."""

    def __init__(self, lease) -> None:
        self._lease = lease
        self._lock = threading.Lock()

    def add(self, **kwargs) -> None:
        with self._lock:
            self._lease.add(**kwargs)


def _import_cache(store: Store, src: Path | RegistryCache, lease, progress: Progress
                  ) -> list[str]:
    """Import an exported cache; the warnings (shown) about what could not be trusted."""
    from .cachekey import parts_digest

    if not isinstance(src, Path):   # a RegistryCache
        from .registrycache import import_registry_cache

        return import_registry_cache(store, src, lease, progress)
    vertex = progress.start(f"importing cache manifest from local:{src}")
    if not (src / "index.json").exists():
        warnings = [f"cache import from {src} ignored: no index.json there"]
    else:
        count, warnings = BuildCache(store).import_from(src, lease, key_of=parts_digest)
        progress.log(vertex, f"{count} cache records imported")
    progress.done(vertex)
    for warning in warnings:
        progress.warning(warning)
    return warnings


def _load_context(store: Store, request: BuildRequest, progress: Progress
                  ) -> BuildContext | None:
    if request.context is None:
        return None
    vertex = progress.start("[internal] load .dockerignore")
    matcher = None
    if request.ignore_file is not None:
        matcher = load_ignore(request.ignore_file)
        progress.log(vertex, f"transferring context: {request.ignore_file.stat().st_size}B done")
    progress.done(vertex)
    remembered = (BuildCache(store).load_file_hashes(remembered_name(request.context))
                  if request.remember_hashes else {})
    return BuildContext(request.context, matcher, remembered=remembered)


class _Builder:
    """The stages of one build, built in order; the results of the stages done so far."""

    ctx: StepContext   # set right after construction: it refers back to the builder

    def __init__(self, store: Store, request: BuildRequest, df: Dockerfile, plan: BuildPlan,
                 scope: Mapping[str, str | None], progress: Progress,
                 platform: Platform) -> None:
        self.store = store
        self.request = request
        self.df = df
        self.plan = plan
        self.global_scope = scope
        self.progress = progress
        self.platform = platform
        self.cache = BuildCache(store)
        self.results: dict[int, _StageResult] = {}
        self.reports: list[StepReport] = []
        self.context_loaded = False
        # The keys of the steps this build ran (missed) -> the first step that missed on the
        # way there and its reason: a later miss names it ("parent changed").
        self._ran: dict[str, tuple[str, str]] = {}
        self._bases: dict[str, str] = {}    # a stage's starting key -> how to name the base
        self.stage_keys: dict[int, list[str]] = {}         # the keys of each stage's steps
        self._records: dict[str, CacheRecord] = {}   # each step's record, for export_cache
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._cancelled = threading.Event()

    # ------------------------------------------------------------------ stages

    def build_stages(self) -> None:
        """Build the planned stages, each once those it uses are built; independent stages
        at the same time. The first failure stops the build: the stages running finish
        their current step, no other starts, and the error is raised."""
        plans = {p.stage.index: p for p in self.plan.stages}
        deps = {i: ({p.base_stage} if p.base_stage is not None else set()) | set(p.needs)
                for i, p in plans.items()}
        done: set[int] = set()
        running: dict = {}    # future -> stage index
        failure: BaseException | None = None
        pool = None           # made when two stages can run at once (imports cost time)
        try:
            while len(done) < len(plans) and failure is None:
                ready = [i for i in plans if i not in done and i not in running.values()
                         and deps[i] & plans.keys() <= done]
                if not ready and not running:   # the plan orders stages: cannot happen
                    raise LaminaError("the build's stages depend on each other in a cycle")
                if len(ready) == 1 and not running:
                    self.build_stage(plans[ready[0]])   # nothing else to do: in this thread
                    done.add(ready[0])
                    continue
                from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=len(plans),
                                              thread_name_prefix="stage")
                for index in ready:
                    running[pool.submit(self.build_stage, plans[index])] = index
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = running.pop(future)
                    error = future.exception()
                    if error is None:
                        done.add(index)
                    elif failure is None:
                        failure = error
                    elif not getattr(error, "stopped", False):   # say it, not only the first
                        self.progress.warning(f"stage {plans[index].stage.display_name} "
                                              f"failed too: {error}")
        except BaseException:
            self._cancelled.set()
            raise
        finally:
            if failure is not None:
                self._cancelled.set()
            if pool is not None:
                pool.shutdown(wait=True)   # the running stages end at their current step
        if failure is not None:
            raise failure

    def build_stage(self, plan: StagePlan) -> None:
        stage, from_ = plan.stage, plan.from_
        label = (f"{stage.name or f'stage-{stage.index}'} " if len(self.df.stages) > 1 else "")
        if from_.platform and Platform.parse(from_.platform) != self.platform:
            raise BuildError(f"FROM --platform={from_.platform}: lamina builds for this "
                             f"machine's platform only ({self.platform})",
                             file=self.df.file, line=from_.line)
        instructions = stage.instructions
        total = 1 + sum(isinstance(i, LAYER_STEPS) for i in instructions)
        if plan.base_stage is not None:
            parent = self.results[plan.base_stage]
            state = self._fresh(parent.state, self._base_key(f"stage:{parent.state.key}"))
            scope = self._scope(state)
            scope.args, scope.arg_wins = dict(parent.scope.args), set(parent.scope.arg_wins)
            base = parent.base
            if parent.state.key in self._ran:   # the stage it is built on changed
                self._ran[state.key] = self._ran[parent.state.key]
            self._bases[state.key] = f"the stage {from_.base_name}"
        elif from_.base_name == "scratch":
            state = self._scratch()
            scope = self._scope(state)
            base = _Base(0, 0)
            self._bases[state.key] = "scratch"
        else:
            try:
                state, triggers = self._base_image(from_)
            except LaminaError as err:
                raise self._positioned(err, from_) from None
            scope = self._scope(state)
            base = _Base(len(state.layers), len(state.config.history))
            self._bases[state.key] = f"the base image {_full_name(from_.base_name)}"
            instructions = triggers + instructions
            total += sum(isinstance(i, LAYER_STEPS) for i in triggers)
            vertex = self.progress.start(f"[{label}1/{total}] FROM {_full_name(from_.base_name)}")
            self.progress.done(vertex)
        number = 1
        keys = self.stage_keys.setdefault(stage.index, [])
        for inst in instructions:
            if self._cancelled.is_set():
                stopped = BuildError("the build was stopped: another stage failed",
                                     file=self.df.file, line=inst.line)
                stopped.stopped = True   # type: ignore[attr-defined]
                raise stopped
            if isinstance(inst, LAYER_STEPS):
                number += 1
            state = self._step(stage.index, f"[{label}{number}/{total}]", state, scope,
                               inst)
            keys.append(state.key)
        self.results[stage.index] = _StageResult(state, scope, base)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _step(self, stage_index: int, position: str, state: ImageState, scope: StageScope,
              inst: ins.Instruction) -> ImageState:
        stage = self.df.stages[stage_index].display_name
        shown = _shown(inst)
        layer = isinstance(inst, LAYER_STEPS)
        if isinstance(inst, (ins.Copy, ins.Add)) and not getattr(inst, "from_", None) \
                and self.ctx.context is not None:
            self._load_build_context()
        vertex = self.progress.start(f"{position} {shown}") if layer else 0
        started = time.monotonic()
        try:
            step = scope.step(inst)
            prepared = prepare(self.ctx, state, step, scope, vertex)
            key = prepared.key.digest
            reason = None
            # Another stage making the same step: wait for it, then take its record.
            with self._key_lock(key):
                record = None if self.request.no_cache else self.cache.get(key)
                if record is not None:
                    # The record's GC roots keep its layers and snapshot: no lease needed.
                    new = ImageState(ImageConfig.parse(record.config), record.layers, key)
                else:
                    if self.request.reasons:
                        reason = self._miss_reason(prepared, state, shown)
                        if layer:
                            self.progress.log(vertex, f"cache miss: {reason}")
                    new = prepared.run(key)
                    self._ran[key] = self._ran.get(state.key) or (
                        f"{position} {shown}" if layer else shown, reason)
                    chain = new.chain_ids
                    extra: dict = {"step": shown}   # to name it when a later build misses
                    if prepared.files:
                        extra["files"] = dict(prepared.files)
                    made = CacheRecord(
                        key, prepared.key.parts(), new.config.to_json(), new.layers,
                        chain[-1] if chain else None, extra)
                    self.cache.put(made, snapshots=chain[-1:])
                self._records[key] = record if record is not None else made
        except (LaminaError, OSError) as err:
            if isinstance(err, OSError):   # a file the step reads or writes: say which
                err = StepFailed(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
            if layer:
                self.progress.error(vertex, err.message)
            raise self._positioned(err, inst) from None
        if layer:
            (self.progress.cached if record is not None else self.progress.done)(vertex)
        self.reports.append(StepReport(stage, shown, record is not None,
                                       time.monotonic() - started, layer,
                                       position if layer else "", reason))
        return dataclasses.replace(new, cmd_set=state.cmd_set or isinstance(inst, ins.Cmd))

    def _miss_reason(self, prepared, state: ImageState, shown: str) -> str:
        """Why a step missed the cache: against the closest record made on the same parent;
        or the earlier step of this build that missed first (the parent changed); or a base
        nothing was built on yet."""
        if self.request.no_cache:
            return "--no-cache"
        root = self._ran.get(state.key)
        if root is not None:
            step, reason = root
            return f"{reason} (at the earlier step {step})"
        reason = explain_miss(prepared.key, prepared.files, self.cache.children(state.key),
                              shown)
        if reason is not None:
            return reason
        base = self._bases.get(state.key)
        if base is not None:
            epoch = self.request.source_date_epoch
            with_epoch = f" with SOURCE_DATE_EPOCH={epoch}" if epoch is not None else ""
            return f"nothing cached on {base}{with_epoch} yet (a new or changed base)"
        return "nothing cached after the previous step yet (a new step)"

    def _load_build_context(self) -> None:
        """List the context once, the first time a step reads it."""
        with self._lock:
            if self.context_loaded:
                return
            self.context_loaded = True
            vertex = self.progress.start("[internal] load build context")
            assert self.ctx.context is not None
            self.progress.log(vertex, f"transferring context: {len(self.ctx.context.paths)} "
                                      "paths done")
            self.progress.done(vertex)

    # ------------------------------------------------------------------ bases

    def _scope(self, state: ImageState) -> StageScope:
        env = dict(e.partition("=")[::2] for e in state.container.env or ())
        return StageScope(ShellLex(self.df.escape_token), self.global_scope,
                          self.request.build_args, env)

    def _fresh(self, state: ImageState, key: str) -> ImageState:
        """A stage's starting state: the base's ONBUILD triggers do not carry over."""
        container = dataclasses.replace(state.container, on_build=None)
        return ImageState(dataclasses.replace(state.config, config=container), state.layers,
                          key)

    def _scratch(self) -> ImageState:
        """``FROM scratch``: no layers; the default PATH in the config, as BuildKit."""
        from ..runtime.spec import DEFAULT_PATH

        p = self.platform
        config = ImageConfig(architecture=p.architecture, os=p.os, variant=p.variant or None,
                             config=ContainerConfig(env=(f"PATH={DEFAULT_PATH}",)))
        return ImageState(config, (), self._base_key("scratch"))

    def _base_key(self, source: str) -> str:
        """The key a stage starts from. SOURCE_DATE_EPOCH is part of it, so that every step
        key holds it: a cached step keeps the times it was made with."""
        epoch = self.request.source_date_epoch
        return base_key(source if epoch is None else f"{source} epoch={epoch}",
                        str(self.platform))

    def _base_image(self, from_: ins.From) -> tuple[ImageState, tuple[ins.Instruction, ...]]:
        if self.request.always_pull:
            self._pull(from_.base_name)
        state = self.image_state(from_.base_name)
        triggers = tuple(self._trigger(text, from_) for text in state.container.on_build or ())
        return self._fresh(state, state.key), triggers

    def _trigger(self, text: str, from_: ins.From) -> ins.Instruction:
        """An ONBUILD trigger of the base image, parsed; errors point at the FROM line."""
        from ..dockerfile.parser import parse

        try:
            node = parse(text, file=self.df.file).root.children[0]
            node.start_line = node.end_line = from_.line or 0
            return ins.parse_instruction(node, file=self.df.file)
        except (DockerfileError, IndexError) as err:
            raise BuildError(f"the base image's ONBUILD trigger {text!r} is invalid: {err}",
                             file=self.df.file, line=from_.line) from None

    def image_state(self, name: str) -> ImageState:
        """A local image as a build state (FROM, COPY --from=IMAGE), pulled if missing."""
        from ..image.reference import ReferenceError
        from ..store.layout import ImageNotFoundError

        try:
            try:
                image = self.store.image(name, self.platform)
            except ImageNotFoundError:
                if self.request.pull is None:
                    raise
                self._pull(name)
                image = self.store.image(name, self.platform)
            # Not leased here: its blobs are leased when a step uses them (ensure_lowers).
            manifest_digest = image.digest()
            config = image.config()
            layers = image.layers()
        except ImageNotFoundError:
            raise StepFailed(f"{name}: image not found in the local store",
                             hint=f"pull it, or load it: lamina load -i IMAGE.tar (or "
                                  f"lamina import ROOTFS.tar {name})") from None
        except ReferenceError as err:
            raise StepFailed(err.message, hint=err.hint) from None
        return ImageState(config, layers, self._base_key(f"image:{manifest_digest}"))

    def _pull(self, name: str) -> None:
        if self.request.pull is None:
            raise StepFailed("lamina was asked to pull, but cannot here")
        vertex = self.progress.start(f"[internal] load metadata for {_full_name(name)}")
        try:
            self.request.pull(name)
        except LaminaError as err:
            self.progress.error(vertex, err.message)
            raise StepFailed(f"{name}: not in the local store, and pulling it failed: "
                             f"{err.message}", hint=err.hint or "check the name, or load the "
                             "image: lamina load -i IMAGE.tar") from None
        self.progress.done(vertex)

    def stage_state(self, ref: str) -> ImageState | None:
        """The built state of the stage ``ref`` names, or None when ``ref`` is an image."""
        stage = stage_ref(self.df, ref, None)
        if stage is None:
            return None
        if stage.index not in self.results:
            raise StepFailed(f"stage {ref!r} is not built before it is used",
                             hint="a stage can only use stages defined above it")
        return self.results[stage.index].state

    # ------------------------------------------------------------------ export

    def export(self, tags: tuple[str, ...]) -> tuple[str, str]:
        """Commit the target's image and name it; (image ID, manifest digest).

        An image the store has already, under every tag asked for, is left as it is: a
        rebuild from the cache writes nothing.
        """
        from ..image.digest import sha256_digest
        from ..image.mutate import assemble

        target = self.results[self.plan.target]
        state = target.state
        vertex = self.progress.start("exporting to image")
        if self.request.squash:
            from .squash import squash_state

            count = len(state.layers) - target.base.layers
            if count > 1:
                self.progress.log(vertex, f"squashing {count} layers into one")
            try:
                state = squash_state(self.ctx, state, target.base.layers,
                                     target.base.history)
            except LaminaError as err:
                self.progress.error(vertex, err.message)
                raise
        config = state.config
        if self.request.labels:
            container = state.container
            labels = {**(container.labels or {}), **self.request.labels}
            config = dataclasses.replace(config, config=dataclasses.replace(
                container, labels=labels))
        self.progress.log(vertex, "exporting layers done")
        raw, manifest = assemble(config, state.layers)
        if not self._named_already(manifest.digest, tags):
            from ..store.commit import commit_image
            commit_image(self.store, raw, state.layers, tags=tags, lease=self.ctx.lease)
        image_id = sha256_digest(raw)
        self.progress.log(vertex, f"writing image {image_id} done")
        for tag in tags:
            self.progress.log(vertex, f"naming to {tag} done")
        self.progress.done(vertex)
        return image_id, manifest.digest

    def export_cache(self, dest: Path | RegistryCache, image_id: str) -> str | None:
        """Export the records of this build's steps to ``dest`` (see the module doc); a
        warning when a registry export failed with ``ignore-error=true``."""
        if self.request.cache_mode == "max":
            stages = list(self.stage_keys)
        else:   # the target and the stages it is built on
            stages, index = [], self.plan.target
            while index is not None:
                stages.append(index)
                index = self.plan.stage(index).base_stage
        records = []
        for index in sorted(stages):
            records += [self._records[key] for key in self.stage_keys.get(index, ())]
        if not isinstance(dest, Path):   # a RegistryCache
            from .registrycache import export_registry_cache

            return export_registry_cache(self.store, records, dest, image_id, self.progress)
        vertex = self.progress.start("exporting cache to client directory")
        self.progress.log(vertex, "preparing build cache for export")
        try:
            count = self.cache.export(records, dest)
        except OSError as err:
            self.progress.error(vertex, str(err))
            raise LaminaError(f"cannot export the build cache to {dest}: "
                              f"{err.strerror or err}",
                              hint="give a folder lamina can write: "
                                   "--cache-to type=local,dest=DIR") from None
        self.progress.log(vertex, f"writing {count} cache records done")
        self.progress.done(vertex)
        return None

    def _named_already(self, digest: str, tags: tuple[str, ...]) -> bool:
        from ..store.layout import ImageNotFoundError

        if not tags:
            return any(e.descriptor.digest == digest for e in self.store.index.list())
        try:
            return all(self.store.index.get(tag).digest == digest for tag in tags)
        except ImageNotFoundError:
            return False

    def _positioned(self, err: LaminaError, inst: ins.Instruction) -> BuildError:
        """``err`` as a BuildError at ``inst``, with the Dockerfile lines around it."""
        if isinstance(err, BuildError):
            return err
        line = getattr(err, "line", None) or inst.line
        file = getattr(err, "file", None) or self.df.file
        tail = getattr(err, "tail", ())
        message = err.message + _excerpt(self.request.dockerfile, file, line)
        if tail:
            message += "\n  the command's last output:\n" + "".join(
                f"    {line_}\n" for line_ in tail).rstrip("\n")
        return BuildError(message, file=file, line=line, column=getattr(err, "column", None),
                          hint=err.hint, tail=tail)


def _full_name(name: str) -> str:
    """An image name as BuildKit shows it: docker.io/library/busybox:latest."""
    from ..image.reference import ReferenceError, parse_normalized

    try:
        return str(parse_normalized(name))
    except ReferenceError:
        return name


def _shown(inst: ins.Instruction) -> str:
    """The instruction as the progress shows it: as written, keyword in capitals."""
    text = " ".join(inst.original.split("\n")[0].split(None, 1)[1:])
    return f"{inst.keyword} {text}".rstrip()


def _excerpt(dockerfile: bytes, file: str, line: int | None) -> str:
    """The lines around ``line``, as docker build shows them."""
    if not line:
        return ""
    lines = dockerfile.decode("utf-8", "replace").splitlines()
    start = max(1, line - 2)
    rows = [f"  {n:>4} | {'>>> ' if n == line else '    '}{lines[n - 1]}"
            for n in range(start, min(len(lines), line) + 1)]
    bar = "  " + "-" * 20
    return f"\n  {file}:{line}\n{bar}\n" + "\n".join(rows) + f"\n{bar}"


def _clock(source_date_epoch: int | None) -> Callable[[], str]:
    """The time new history entries and configs get: now, or SOURCE_DATE_EPOCH's."""
    if source_date_epoch is not None:
        fixed = format_unix_time(source_date_epoch * 1_000_000_000)
        return lambda: fixed
    return lambda: format_unix_time(time.time_ns())


def _unused_args(df: Dockerfile, plan: BuildPlan, build_args: Mapping[str, str]
                 ) -> tuple[str, ...]:
    """Docker's warning for build args no ARG of the built stages declares."""
    declared = {spec.key for arg in df.meta_args for spec in arg.args}
    for stage_plan in plan.stages:
        for inst in stage_plan.stage.instructions:
            if isinstance(inst, ins.Arg):
                declared.update(spec.key for spec in inst.args)
    unused = sorted(k for k in build_args if k not in declared and k not in BUILTIN_ARGS)
    if not unused:
        return ()
    return (f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed",)


def _new_build_dir(store: Store) -> tuple[Path, int]:
    """This build's directory, locked for as long as the build runs (the fd)."""
    from ..store.locks import lock_held_open

    parent = store.root / "builds"
    parent.mkdir(exist_ok=True)
    path = parent / os.urandom(8).hex()
    with store.lock.shared():   # made and locked before an abandoned-builds scan can see it
        path.mkdir()
        return path, lock_held_open(path, directory=True)
