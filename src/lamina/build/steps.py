"""The step executors: each instruction kind turns an image state into the next one.

A step is prepared first: its cache key is computed (the parent's key, the instruction with
the stage's variables applied, the build args in scope, the digests of the files it reads),
and the builder looks the key up. Only on a miss does it call ``Prepared.run``:

- RUN runs the command in a container over the parent's snapshots (sandbox.py); the upper
  dir becomes the layer (deletions as whiteouts) and, renamed, the new layer's snapshot;
- COPY and ADD write into an overlay of the parent's snapshots (copy.py), or into an empty
  directory for ``--link``; the upper dir becomes the layer the same way;
- WORKDIR creates its directory (and missing parents, 0755, owned by the USER in effect) as
  BuildKit does: a layer holding just that, with a history entry that is not
  ``empty_layer``; when the directory exists already (or is ``/``) there is no change and so,
  as BuildKit drops empty layers, no layer and an ``empty_layer`` entry;
- every other instruction changes only the config, with a history entry marked
  ``empty_layer`` (ONBUILD adds none, as BuildKit).

History entries read like ``docker history`` of a BuildKit build: ``RUN /bin/sh -c make #
buildkit``, ``COPY . /app # buildkit``, ``ENV A=b``, ``CMD ["x"]``,
``EXPOSE map[8080/tcp:{}]``.

Layers are stored uncompressed on the build path (compressing is for push and save): the
tar is written straight into the content store, hashed once as it goes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.dump import go_quote
from ..dockerfile.heredoc import chomp, parse_heredoc_word
from ..dockerfile.ignore import PatternMatcher, go_clean
from ..dockerfile.stages import StageScope, Step
from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.config import ContainerConfig, History, ImageConfig
from ..image.descriptor import Descriptor
from ..image.digest import Sha256, chain_ids, sha256_hex
from ..image.mutate import DEFAULT_SHELL, append_layer, assemble
from ..image.source import ImageBase
from ..store.root import Store
from .cachekey import CacheKey, files_digest
from .context import BuildContext, DirectoryTree, Entry, SourceNotFoundError, clean_source
from .progress import Progress

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:   # tarfile costs start-up time; a rebuild from the cache does not need it
    from ..layer.diff import SourcedFiles
    from ..store.roots import Lease
    from .pending import PendingSnapshot

HISTORY_COMMENT = "buildkit.dockerfile.v0"
SECRETS_DIR = "/run/secrets"


class StepFailed(LaminaError):
    """A step that could not be done; the builder adds the Dockerfile position."""

    def __init__(self, message: str, *, hint: str | None = None,
                 tail: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.tail = tail


@dataclass(frozen=True)
class ImageState:
    """An image as the build makes it: config, layers (bottom first), the key that made it."""

    config: ImageConfig
    layers: tuple[Descriptor, ...]
    key: str
    cmd_set: bool = False     # a CMD ran in this stage: a later ENTRYPOINT keeps it

    @property
    def container(self) -> ContainerConfig:
        return self.config.config or ContainerConfig()

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.config.rootfs.diff_ids)


@dataclass(frozen=True)
class Prepared:
    """A step with its cache key; ``run(key)`` does the work when the cache has no result."""

    key: CacheKey
    files: Mapping[str, str]                 # per-file digests, to explain a later miss
    run: Callable[[str], ImageState]


@dataclass(frozen=True)
class StepContext:
    """What the executors use; the same for every step of a build."""

    store: Store
    lease: Lease
    progress: Progress
    context: BuildContext | None             # None: the Dockerfile came alone
    state_root: Path                         # the store root (network records)
    state_dir: Path                          # this build's containers and scratch space
    network: str                             # RUN's default: bridge, host or none
    secrets: Mapping[str, Path]              # --secret id -> file
    now: Callable[[], str]                   # the time for history entries
    source_date_epoch: int | None
    # --from / --mount from=: a stage name or index -> its state, or None (an image name)
    stage_state: Callable[[str], ImageState | None]
    image_state: Callable[[str], ImageState]
    # chain ID -> a COPY's snapshot not made yet (pending.py); made when a step needs it
    pending: dict[str, PendingSnapshot] = dataclasses.field(default_factory=dict)


def prepare(ctx: StepContext, state: ImageState, step: Step, scope: StageScope,
            vertex: int) -> Prepared:
    inst = step.expanded
    args = tuple(sorted((k, v) for k, v in scope.args.items() if v is not None))
    if isinstance(inst, ins.Run):
        return _prepare_run(ctx, state, inst, scope, args, vertex)
    if isinstance(inst, (ins.Copy, ins.Add)):
        return _prepare_copy(ctx, state, inst, args, vertex)
    # A WORKDIR step's result holds its directory (older records of lamina do not).
    key = CacheKey(state.key, repr(inst) + (" mkdir" if isinstance(inst, ins.Workdir) else ""),
                   args)

    def run(key_digest: str) -> ImageState:
        config, text = _apply_metadata(state, inst, scope)
        if isinstance(inst, ins.Workdir) and text is not None:
            made = _make_workdir(ctx, dataclasses.replace(state, config=config), text,
                                 key_digest)
            if made is not None:
                return made
        now = ctx.now()
        history = state.config.history
        if text is not None:
            history = (*history, History(created=now, created_by=text,
                                         comment=HISTORY_COMMENT, empty_layer=True))
        return dataclasses.replace(state, key=key_digest, config=dataclasses.replace(
            config, created=now, history=history))
    return Prepared(key, {}, run)


# ---------------------------------------------------------------------------------- RUN


def _prepare_run(ctx: StepContext, state: ImageState, inst: ins.Run, scope: StageScope,
                 args: tuple[tuple[str, str], ...], vertex: int) -> Prepared:
    argv, script = run_argv(inst, state.container)
    # History shows the ARGs in scope as Docker does: "RUN |2 A=1 B=2 /bin/sh -c ...".
    variables = scope.variables()
    declared = [f"{k}={variables.get(k, v or '')}" for k, v in scope.args.items()]
    prefix = [f"|{len(declared)}", *declared] if declared else []
    text = "RUN " + " ".join([*prefix, *argv]) + " # buildkit"
    if inst.security != "sandbox" or inst.devices:
        raise StepFailed("RUN --security=insecure and RUN --device are not supported by "
                         "lamina yet")
    network = ctx.network if inst.network == "default" else inst.network
    key = CacheKey(state.key, f"{inst!r} network={network}", args)

    def run(key_digest: str) -> ImageState:
        from .sandbox import ContainerRequest, run_step_container

        lowers = ensure_lowers(ctx, state)
        container = state.container
        with contextlib.ExitStack() as stack:
            binds, tmpfs, secret_env = _run_mounts(ctx, stack, inst, state)
            if script is not None:
                binds.append(_script_dir(ctx, stack, *script))
            env = [f"{k}={v}" for k, v in scope.run_env().items()] + secret_env
            request = ContainerRequest(
                argv=argv, env=tuple(env), workdir=container.working_dir or "/",
                user=container.user or None, network=network, binds=tuple(binds),
                tmpfs=tuple(tmpfs))
            result = run_step_container(ctx.state_root, ctx.state_dir, lowers, request,
                                        lambda data: ctx.progress.output(vertex, data))
            stack.callback(shutil.rmtree, result.container_dir, True)
            if result.exit_code != 0:
                shown = " ".join(argv)
                raise StepFailed(f"process {go_quote(shown)} did not complete successfully: "
                                 f"exit code: {result.exit_code}", tail=result.tail)
            return commit_layer(ctx, state, result.upper, text, key_digest)
    return Prepared(key, {}, run)


def run_argv(inst: ins.Run, container: ContainerConfig
             ) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The command of a RUN and, for a heredoc script with ``#!``, the script to mount.

    As BuildKit: a RUN that is only ``<<EOF`` runs the body with the shell (or, when it starts
    with ``#!``, as an executable file); any other heredoc RUN passes the command line and the
    bodies to the shell, which reads the heredocs itself.
    """
    args = list(inst.cmd_line)
    script = None
    if inst.files:
        heredoc = parse_heredoc_word(args[0]) if len(args) == 1 else None
        if heredoc is not None and len(inst.files) == 1:
            body = inst.files[0]
            data = chomp(body.data) if body.chomp else body.data
            if data.startswith("#!"):
                return (f"/dev/pipes/{body.name}",), (body.name, data)
            args = [data]
        else:
            args = [args[0] + "".join(f"\n{f.data}{f.name}" for f in inst.files)]
    if inst.prepend_shell:
        args = [*(container.shell or DEFAULT_SHELL), " ".join(args)]
    return tuple(args), script


def _script_dir(ctx: StepContext, stack: contextlib.ExitStack, name: str, data: str):
    from .sandbox import Bind

    directory = _scratch_dir(ctx, stack, "pipes")
    path = directory / name
    path.write_text(data)
    path.chmod(0o755)
    return Bind(directory, "/dev/pipes")


def _run_mounts(ctx: StepContext, stack: contextlib.ExitStack, inst: ins.Run,
                state: ImageState) -> tuple[list, list[str], list[str]]:
    """RUN --mount: the binds and tmpfs mounts of the container, and secret variables."""
    from .sandbox import Bind

    binds: list[Bind] = []
    tmpfs: list[str] = []
    env: list[str] = []
    secret_files: list[tuple[str, bytes, ins.Mount]] = []
    for m in inst.mounts:
        if m.type == "secret":
            secret_id = m.id or posixpath.basename(m.target or "")
            source = ctx.secrets.get(secret_id)
            if source is None:
                if m.required:
                    raise StepFailed(f"secret {secret_id} not found",
                                     hint=f"give it: --secret id={secret_id},src=FILE")
                continue
            data = Path(source).read_bytes()
            if m.env:
                env.append(f"{m.env}={data.decode('utf-8', 'replace')}")
                if not m.target:
                    continue
            target = m.target or f"{SECRETS_DIR}/{secret_id}"
            if posixpath.dirname(posixpath.normpath(target)) != SECRETS_DIR:
                raise StepFailed(f"secret target {target}: lamina mounts secrets only in "
                                 f"{SECRETS_DIR} yet", hint="use the default target, or env=")
            secret_files.append((posixpath.basename(target), data, m))
        elif m.type == "cache":
            if m.from_ or m.source:
                raise StepFailed("RUN --mount=type=cache with from or source is not "
                                 "supported yet")
            target = _absolute(m.target, state)
            directory = _cache_mount_dir(ctx, m.id or target, m)
            binds.append(Bind(directory, target, read_only=m.read_only))
        elif m.type == "tmpfs":
            target = _absolute(m.target, state)
            tmpfs.append(f"{target}:exec" + (f",size={m.size}" if m.size else ""))
        elif m.type == "bind":
            binds.append(Bind(_bind_source(ctx, stack, m), _absolute(m.target, state),
                              read_only=m.read_only))
        else:
            raise StepFailed(f"RUN --mount=type={m.type} is not supported by lamina yet")
    if secret_files:
        directory = _scratch_dir(ctx, stack, "secrets")
        for name, data, m in secret_files:
            path = directory / name
            path.write_bytes(data)
            os.chown(path, m.uid or 0, m.gid or 0)
            os.chmod(path, m.mode if m.mode is not None else 0o400)
        binds.append(Bind(directory, SECRETS_DIR))
    return binds, tmpfs, env


def _absolute(target: str | None, state: ImageState) -> str:
    if not target:
        raise StepFailed("a mount needs a target", hint="add target=/path to --mount")
    return go_clean(posixpath.join(state.container.working_dir or "/", target))


def _cache_mount_dir(ctx: StepContext, cache_id: str, m: ins.Mount) -> Path:
    name = sha256_hex(cache_id.encode())[:32]
    directory = ctx.store.root / "buildcache" / "mounts" / name
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, m.uid or 0, m.gid or 0)
        os.chmod(directory, m.mode if m.mode is not None else 0o755)
    return directory


def _bind_source(ctx: StepContext, stack: contextlib.ExitStack, m: ins.Mount) -> Path:
    """The directory a bind mount shows: of a stage, an image or the build context, through
    an overlay with a throwaway upper dir, so that writes (``rw``) are discarded."""
    if m.from_:
        lowers = ensure_lowers(ctx, _source_state(ctx, m.from_))
        root = _view(ctx, stack, lowers)
    elif ctx.context is not None:
        root = ctx.context.root
    else:
        raise StepFailed("RUN --mount=type=bind needs a build context",
                         hint="build from a folder, or mount from a stage")
    source = root / clean_source(m.source or "")
    if not source.is_dir():
        raise StepFailed(f"bind mount source {m.source or '/'}: not a directory",
                         hint="lamina binds directories only yet")
    return _view(ctx, stack, [source])


# --------------------------------------------------------------------------- WORKDIR


def _make_workdir(ctx: StepContext, state: ImageState, text: str,
                  key: str) -> ImageState | None:
    """WORKDIR's directory made in a layer of its own; None when it exists already."""
    workdir = state.container.working_dir or "/"
    rel = go_clean(workdir).strip("/")
    if not rel:
        return None
    if _dir_in_pending(ctx, state, rel):
        return None    # made by the COPY before, whose snapshot need not be made for this
    lowers = ensure_lowers(ctx, state)
    if _dir_in_lowers(lowers, rel):
        return None    # the usual case, seen without mounting anything
    from ..runtime.rootfs import mount_overlay, resolve_in_root, unmount
    from ..runtime.users import resolve_user

    work = _new_dir(ctx.state_dir / f"workdir-{os.urandom(8).hex()}")
    try:
        upper = _new_dir(work / "upper")
        with contextlib.ExitStack() as stack:
            merged = _new_dir(work / "merged")
            mount_overlay(lowers or [_new_dir(work / "empty")], upper, _new_dir(work / "work"),
                          merged, volatile=True)   # no syncfs at unmount (sandbox.py)
            stack.callback(unmount, merged)
            user = state.container.user
            try:
                owner = resolve_user(merged, user) if user else None
            except LaminaError as err:
                raise StepFailed(err.message, hint=err.hint) from None
            target = resolve_in_root(merged, "/" + rel)
            missing = []
            path = target
            while not os.path.lexists(path) and path != merged:
                missing.append(path)
                path = path.parent
            if not missing:
                if not path.is_dir():
                    raise StepFailed(f"cannot create the working directory {workdir}: "
                                     "a file of that name is in the way")
                return None
            for path in reversed(missing):
                path.mkdir(mode=0o755)
                os.chmod(path, 0o755)
                if owner is not None:
                    os.chown(path, owner.uid, owner.gid)
        return commit_layer(ctx, state, upper, text, key)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dir_in_pending(ctx: StepContext, state: ImageState, rel: str) -> bool:
    """``_dir_in_lowers`` when the top layer is a COPY's pending snapshot (pending.py): its
    upper dir stands for it, unless one of the path's parts is a file the COPY deferred."""
    chain = state.chain_ids
    pending = ctx.pending.get(chain[-1]) if chain else None
    snapshots = ctx.store.snapshots
    if pending is None or not all(snapshots.exists(c) for c in chain[:-1]):
        return False
    parts = rel.split("/")
    if any(parts[i] in pending.files.get("/".join(parts[:i]), ()) for i in range(len(parts))):
        return False
    return _dir_in_lowers([pending.upper, *snapshots.lowers(chain[:-1])], rel)


def _dir_in_lowers(lowers: list[Path], rel: str) -> bool:
    """Whether the layers (topmost first) surely show ``rel`` as a directory: the topmost
    layer holding it has it as a real directory, and no layer above it hides it or has one
    of its parents as something else (a symlink, a deletion, an opaque directory)."""
    from ..layer.whiteout import stat_in_layers

    st = stat_in_layers(lowers, rel)
    return st is not None and stat.S_ISDIR(st.st_mode)


# --------------------------------------------------------------------------- COPY and ADD


def _prepare_copy(ctx: StepContext, state: ImageState, inst: ins.Copy | ins.Add,
                  args: tuple[tuple[str, str], ...], vertex: int) -> Prepared:
    is_add = isinstance(inst, ins.Add)
    dest = destination(inst.dest, state.container.working_dir or "/")
    urls = [s for s in inst.sources if _is_url(s)]
    if urls and not is_add:
        raise StepFailed("source can't be a URL for COPY", hint="use ADD for URLs")
    if getattr(inst, "checksum", None) and (len(inst.sources) != 1 or not urls):
        raise StepFailed("checksum requires a single HTTP(S) source")
    if len(inst.sources) + len(inst.source_contents) > 1 and not dest.endswith("/"):
        raise StepFailed(f"When using {inst.keyword} with more than one source file, the "
                         "destination must be a directory and end with a /",
                         hint=f"write the destination as {inst.dest}/")
    text = _copy_history(inst)
    exclude = PatternMatcher(inst.exclude) if inst.exclude else None
    from_ = inst.from_ if isinstance(inst, ins.Copy) else None
    inline, inline_digests = _inline_files(ctx, inst, urls, vertex)
    if from_:
        source = _source_state(ctx, from_)
        key = CacheKey(state.key, repr(inst), args, files_digest({"from": source.key,
                                                                   **inline_digests}))
        files: dict[str, str] = {}

        def entries_for(stack: contextlib.ExitStack) -> list[Entry]:
            tree = DirectoryTree(_view(ctx, stack, ensure_lowers(ctx, source)))
            return _entries(tree, inst, exclude)
    else:
        local = [s for s in inst.sources if not _is_url(s)]
        if local and ctx.context is None:
            raise StepFailed(f"{inst.keyword} of {local[0]}: there is no build context (the "
                             "Dockerfile came alone on standard input)",
                             hint="build from a folder or a tar archive of one")
        entries = _entries(ctx.context, inst, exclude) if local else []
        files = ctx.context.digests(_walked(entries, exclude)) if entries else {}
        key = CacheKey(state.key, repr(inst), args,
                       files_digest({**files, **inline_digests}) if files or inline else None)

        def entries_for(stack: contextlib.ExitStack) -> list[Entry]:
            return entries
    dest_is_dir = dest.endswith("/")

    def run(key_digest: str) -> ImageState:
        from .copy import CopyOptions, DeferredFiles, copy_into, parse_chmod

        unpack = is_add and inst.unpack is not False
        lowers = ensure_lowers(ctx, state)
        work = _new_dir(ctx.state_dir / f"copy-{os.urandom(8).hex()}")
        # The sources stay readable (a --from stage's view mounted) until the layer is
        # written: it reads their files (a single pass, see copy.DeferredFiles).
        with contextlib.ExitStack() as sources:
            try:
                upper = _new_dir(work / "upper")
                entries = entries_for(sources)
                with contextlib.ExitStack() as stack:
                    fresh = not from_ and not unpack and _fresh_in_lowers(lowers, dest, files)
                    if inst.link or fresh:
                        root = upper    # no overlay to mount
                    else:
                        from ..runtime.rootfs import mount_overlay, unmount

                        merged = _new_dir(work / "merged")
                        mount_overlay(lowers or [_new_dir(work / "empty")], upper,
                                      _new_dir(work / "work"), merged,
                                      volatile=True)   # no syncfs at unmount (sandbox.py)
                        stack.callback(unmount, merged)
                        root = merged
                    # ADD's archives are extracted into the tree: no file is deferred there
                    deferred = None if unpack else DeferredFiles(root)
                    opts = CopyOptions(
                        chmod=parse_chmod(inst.chmod) if inst.chmod else None,
                        exclude=exclude, unpack=unpack, keep_owner=from_ is not None,
                        follow_dest_symlinks=not (inst.link or fresh), deferred=deferred,
                        owner=_owner(ctx, stack, inst.chown, lowers) if inst.chown else None)
                    copy_into(root, dest, entries, inline, opts,
                              dest_is_dir=dest_is_dir or len(entries) + len(inline) > 1)
                return commit_layer(ctx, state, upper, text, key_digest,
                                    files_from=deferred.by_dir if deferred else None)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return Prepared(key, files, run)


def _fresh_in_lowers(lowers: list[Path], dest: str, files: Mapping[str, str]) -> bool:
    """Whether no layer holds anything (an entry or a whiteout) at the first part of ``dest``
    and no source file (``files``: context path -> digest) is a symlink, which could lead the
    copy out to what exists: then everything the COPY writes is new, and writing it straight
    into the upper dir gives the layer a mounted overlay would (the usual ``COPY . /app``),
    without mounting one."""
    top = dest.strip("/").partition("/")[0]
    if not top or any(digest.startswith("l") for digest in files.values()):
        return False
    for layer in lowers:
        try:
            os.lstat(layer / top)
        except FileNotFoundError:
            continue
        return False
    return True


def destination(dest: str, workdir: str) -> str:
    """A COPY destination as an absolute path; a trailing ``/`` says "a directory"."""
    as_dir = dest.endswith("/") or dest.endswith("/.") or dest in ("", ".")
    path = go_clean(posixpath.join(workdir, dest))
    return path.rstrip("/") + "/" if as_dir else path


def _entries(tree: DirectoryTree, inst: ins.Copy | ins.Add,
             exclude: PatternMatcher | None) -> list[Entry]:
    """The sources of the instruction in ``tree``, as copy entries (``--parents`` kept)."""
    entries = []
    for src in inst.sources:
        if _is_url(src):
            continue
        pivot = None
        if getattr(inst, "parents", False):
            parent, found, _ = src.partition("/./")
            pivot = clean_source(parent) if found else ""
            src = src.replace("/./", "/", 1) if found else src
        try:
            matched = tree.resolve(src)
        except SourceNotFoundError as err:
            raise StepFailed(f"failed to compute cache key: {err.message}", hint=err.hint) \
                from None
        for named, rel in matched:
            if exclude is not None and named and exclude.matches_or_parent_matches(named):
                continue
            keep = ""
            if pivot is not None:
                keep = named[len(pivot):].lstrip("/") if named.startswith(pivot) else named
            entries.append(Entry(tree, rel, keep, posixpath.basename(named)))
    return entries


def _walked(entries: list[Entry], exclude: PatternMatcher | None) -> list[str]:
    """Every context path the entries copy (what the cache key hashes)."""
    out: list[str] = []
    for entry in entries:
        prefix = entry.rel + "/" if entry.rel else ""
        for rel in entry.tree.walk(entry.rel):
            if rel != entry.rel and exclude is not None and \
                    exclude.matches_or_parent_matches(rel[len(prefix):]):
                continue
            if rel:
                out.append(rel)
    return out


def _inline_files(ctx: StepContext, inst: ins.Copy | ins.Add, urls: list[str],
                  vertex: int) -> tuple[list, dict[str, str]]:
    """Heredoc bodies and downloads as files, and the downloads' digests for the cache key
    (a heredoc's text is part of the instruction already).

    A URL is downloaded on every build: its content is part of the key.
    """
    files: list = []
    digests: dict[str, str] = {}
    if not inst.source_contents and not urls:
        return files, digests
    from .copy import InlineSource   # (not for a COPY the cache has: start-up time)

    # Kept until the build ends (a cache miss copies from here): the build's state dir goes.
    directory = _new_dir(ctx.state_dir / f"inline-{os.urandom(8).hex()}")
    for body in inst.source_contents:
        path = directory / f"heredoc-{len(files)}"
        path.write_text(body.data)
        files.append(InlineSource(body.path, path, 0o644))
    for url in urls:
        ctx.progress.log(vertex, f"downloading {url}")
        item, digests[f"url:{url}"] = _download(url, directory / f"url-{len(files)}",
                                                getattr(inst, "checksum", None))
        files.append(item)
    return files, digests


def _download(url: str, path: Path, checksum: str | None):
    """ADD's download, and its digest: the file is named after the URL's last path part,
    mode 0600, its time from Last-Modified."""
    import email.utils
    import urllib.parse
    import urllib.request

    from .copy import InlineSource

    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "__unnamed__"
    h = Sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            while chunk := response.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
            modified = response.headers.get("Last-Modified")
    except OSError as err:
        raise StepFailed(f"failed to download {url}: {err}") from None
    digest = f"sha256:{h.hexdigest()}"
    if checksum is not None and checksum != digest:
        raise StepFailed(f"digest mismatch {digest}: {checksum}",
                         hint="the file at the URL is not the one the checksum names")
    mtime = None
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    return InlineSource(name, path, 0o600, mtime), digest


def _copy_history(inst: ins.Copy | ins.Add) -> str:
    words = [inst.keyword]
    if getattr(inst, "parents", False):
        words.append("--parents")
    if inst.chown:
        words.append(f"--chown={inst.chown}")
    if inst.chmod:
        words.append(f"--chmod={inst.chmod}")
    words += inst.sources
    words += [f"<<{c.path}" for c in inst.source_contents]
    words.append(inst.dest)
    return " ".join(words) + " # buildkit"


def _owner(ctx: StepContext, stack: contextlib.ExitStack, chown: str,
           lowers: list[Path]) -> tuple[int, int]:
    """``--chown``, names looked up in the image being built."""
    from ..runtime.users import read_in_root
    from .copy import resolve_owner

    user, _, group = chown.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return resolve_owner(chown, None, None)
    root = _view(ctx, stack, lowers)
    try:
        return resolve_owner(chown, read_in_root(root, "/etc/passwd"),
                             read_in_root(root, "/etc/group"))
    except LaminaError as err:
        raise StepFailed(err.message, hint=err.hint) from None


def _is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


# --------------------------------------------------------------------------- metadata


def _apply_metadata(state: ImageState, inst: ins.Instruction,
                    scope: StageScope) -> tuple[ImageConfig, str | None]:
    """The config after a metadata instruction, and its history text (None: no entry)."""
    from ..image.mutate import _apply   # the dispatchers docker import --change uses too

    config = state.config
    c = state.container
    replace = dataclasses.replace
    if isinstance(inst, ins.Arg):
        words = [f"{a.key}={scope.args[a.key]}" if scope.args.get(a.key) is not None
                 else a.key for a in inst.args]
        return config, "ARG " + " ".join(words)
    if isinstance(inst, ins.Maintainer):
        return replace(config, author=inst.name), f"MAINTAINER {inst.name}"
    if isinstance(inst, ins.Shell):
        return (replace(config, config=replace(c, shell=inst.shell)),
                f"SHELL [{' '.join(inst.shell)}]")
    if isinstance(inst, ins.Entrypoint) and not state.cmd_set:
        c = replace(c, cmd=None)   # ENTRYPOINT drops an inherited CMD
    try:
        c = _apply(c, inst)
    except LaminaError as err:
        raise StepFailed(err.message, hint=err.hint) from None
    if isinstance(inst, ins.Cmd):
        c = replace(c, args_escaped=True)   # as BuildKit writes it
    return replace(config, config=c), _metadata_history(inst, c)


def _metadata_history(inst: ins.Instruction, c: ContainerConfig) -> str | None:
    if isinstance(inst, ins.Env):
        return "ENV " + " ".join(f"{k}={v}" for k, v in inst.pairs)
    if isinstance(inst, ins.Label):
        return "LABEL " + " ".join(f"{k}={v}" for k, v in inst.pairs)
    if isinstance(inst, ins.Expose):
        ports = sorted({p for spec in inst.port_specs() for p in spec.ports()})
        return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in ports) + "]"
    if isinstance(inst, ins.Cmd):
        return f"CMD [{' '.join(go_quote(a) for a in c.cmd or ())}]"
    if isinstance(inst, ins.Entrypoint):
        return f"ENTRYPOINT [{' '.join(go_quote(a) for a in c.entrypoint or ())}]"
    if isinstance(inst, ins.User):
        return f"USER {inst.user}"
    if isinstance(inst, ins.Workdir):
        return f"WORKDIR {c.working_dir}"
    if isinstance(inst, ins.Volume):
        return f"VOLUME [{' '.join(inst.volumes)}]"
    if isinstance(inst, ins.StopSignal):
        return f"STOPSIGNAL {inst.signal}"
    if isinstance(inst, ins.Healthcheck):
        h = c.healthcheck
        assert h is not None
        return (f"HEALTHCHECK {{Test:[{' '.join(h.test or ())}] "
                f"Interval:{_go_duration(h.interval)} Timeout:{_go_duration(h.timeout)} "
                f"StartPeriod:{_go_duration(h.start_period)} "
                f"StartInterval:{_go_duration(h.start_interval)} Retries:{h.retries or 0}}}")
    return None   # ONBUILD: recorded in the config only


def _go_duration(ns: int | None) -> str:
    """A duration as Go prints it: 0s, 1.5s, 1m30s, 250ms."""
    ns = ns or 0
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + seconds


# --------------------------------------------------------------------------- layers, snapshots


def commit_layer(ctx: StepContext, state: ImageState, upper: Path, created_by: str,
                 key: str, *, files_from: SourcedFiles | None = None) -> ImageState:
    """Make ``upper`` (an overlay upper dir) the next layer of ``state``: a deterministic tar
    in the content store, and, renamed, the layer's snapshot.

    With ``files_from`` (files a COPY left out of ``upper``, read from their sources into the
    tar), ``upper`` is not the whole layer. For a large COPY no snapshot is made now: the
    upper dir is kept, and a later step that needs the snapshot makes it (``ensure_lowers``,
    pending.py), so a COPY that is the last step to change files never pays for a second copy
    of its files. A small one makes it at once (cheap), so that ``history`` and ``system df``
    show its unpacked size as for any other step.
    """
    from ..layer import MOUNT_POINT_LEFTOVERS, write_layer

    store = ctx.store
    with store.content.ingest() as blob:
        stats = write_layer(upper, blob, exclude=MOUNT_POINT_LEFTOVERS,
                            mtime_clamp=ctx.source_date_epoch, files_from=files_from)
        digest, size = blob.digest, blob.size   # uncompressed: the blob digest is the diff ID
        ctx.lease.add(blobs=[digest])
        # The data is fsynced, its name not yet: commit_image syncs the names before the
        # image's; a cache record whose blob a power loss took is a miss (store/cache.py).
        blob.commit(digest, size, sync_name=False)
    parents = state.chain_ids
    chain = chain_ids([*state.config.rootfs.diff_ids, digest])[-1]
    ctx.lease.add(snapshots=[chain])
    snapshots = store.snapshots
    if files_from and not snapshots.exists(chain):
        if ctx.source_date_epoch is None:   # else the tar's times are clamped: unpack it
            from .pending import PendingSnapshot, is_small, materialize

            kept = _new_dir(ctx.state_dir / f"pending-{os.urandom(8).hex()}")
            os.rename(upper, kept / "upper")
            pending = PendingSnapshot(kept / "upper", files_from,
                                      parents[-1] if parents else None, digest,
                                      stats.content_bytes)
            if not is_small(pending):
                ctx.pending[chain] = pending
            else:   # (a source changed since: no snapshot, a later step unpacks the tar)
                materialize(snapshots, chain, pending)
    elif not snapshots.exists(chain):
        staging = snapshots.prepare(chain)
        try:
            if ctx.source_date_epoch is None:
                os.rmdir(staging)
                os.rename(upper, staging)
            else:   # the tar's times were clamped: the snapshot must hold the same files
                from ..layer import apply_layer
                with store.content.open_blob(digest) as tar:
                    apply_layer(tar, staging, lowers=snapshots.lowers(parents))
        except BaseException:
            snapshots.abort(staging)
            raise
        snapshots.commit(staging, chain, parents[-1] if parents else None, digest,
                         stats.content_bytes)
    now = ctx.now()
    config = append_layer(state.config, digest, History(created=now, created_by=created_by,
                                                        comment=HISTORY_COMMENT))
    return dataclasses.replace(state, key=key, layers=(*state.layers, Descriptor(
        mt.OCI_LAYER, digest, size)), config=dataclasses.replace(config, created=now))


class _StateImage(ImageBase):
    """An image state as an Image, so that unpack_image can make its missing snapshots."""

    def __init__(self, store: Store, state: ImageState) -> None:
        self._store = store
        self._config_raw, manifest = assemble(state.config, state.layers)
        self._raw = manifest.raw

    def manifest_bytes(self) -> bytes:
        return self._raw

    def config_bytes(self) -> bytes:
        return self._config_raw

    def open_blob(self, desc: Descriptor):
        return self._store.content.open_blob(desc.digest)


def ensure_lowers(ctx: StepContext, state: ImageState) -> list[Path]:
    """The snapshot dirs of the state's layers (topmost first), unpacked if missing."""
    chain = state.chain_ids
    ctx.lease.add(blobs=[d.digest for d in state.layers], snapshots=chain)
    snapshots = ctx.store.snapshots
    for chain_id in chain:   # bottom first: a snapshot is made on its parents
        if snapshots.exists(chain_id):
            continue
        pending = ctx.pending.pop(chain_id, None)
        if pending is None:
            break
        from .pending import materialize
        if not materialize(snapshots, chain_id, pending):
            break
    else:
        return snapshots.lowers(chain)
    from ..store.unpack import unpack_image
    return unpack_image(ctx.store, _StateImage(ctx.store, state))


def _source_state(ctx: StepContext, ref: str) -> ImageState:
    """The state ``--from``/``from=`` names: a stage of this build, else a local image."""
    state = ctx.stage_state(ref)
    return state if state is not None else ctx.image_state(ref)


def _view(ctx: StepContext, stack: contextlib.ExitStack, lowers: list[Path]) -> Path:
    """A mounted view of ``lowers`` (topmost first) whose writes go to a throwaway upper."""
    from ..runtime.rootfs import mount_overlay, unmount

    work = _scratch_dir(ctx, stack, "view")
    if not lowers:
        return _new_dir(work / "empty")
    merged = _new_dir(work / "merged")
    mount_overlay(lowers, _new_dir(work / "upper"), _new_dir(work / "work"), merged,
                  volatile=True)   # a throwaway upper
    stack.callback(unmount, merged)
    return merged


def _scratch_dir(ctx: StepContext, stack: contextlib.ExitStack, kind: str) -> Path:
    """A private directory under the build's state dir, removed when ``stack`` closes."""
    path = _new_dir(ctx.state_dir / f"{kind}-{os.urandom(8).hex()}", mode=0o700)
    stack.callback(shutil.rmtree, path, True)
    return path


def _new_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(mode=mode, parents=True)
    return path
