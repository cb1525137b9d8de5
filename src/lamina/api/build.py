"""``build``: a Dockerfile and its build context become a tagged image, as ``docker build``.

    from lamina import api
    result = api.build("examples/webapp-color", tags=["webapp:1"])
    print(result.image_id, [s.cached for s in result.steps])

The context is a folder, a tar archive (a stream, like ``docker build - < ctx.tar``), or
None when the Dockerfile comes alone (``dockerfile_text``). A file given as the context
means its folder is the context and the file is the Dockerfile, as ``docker build FILE``.
Nothing is printed unless a ``progress`` display is given (lamina.build.progress).

``cache_to="type=local,dest=DIR[,mode=min|max]"`` exports the build cache of the build's steps
to DIR; ``cache_from="type=local,src=DIR"`` (or several) imports such a cache first, so that a
store that never ran these steps finds them CACHED (store/cache.py describes the format).
``type=registry,ref=REF`` does the same through a registry (registry/buildcache.py); a bare
``REF`` means that too, as with docker buildx.
``prune_cache`` is ``lamina builder prune``.

This module imports the builder only when ``build`` runs (and ``BuildError``,
``BuildResult``, ``StepReport`` when they are asked for), so that ``lamina.api`` can import
``build`` eagerly at no cost: a lazy name would be shadowed by this submodule once imported.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any, BinaryIO
    from ..build.builder import BuildRequest, BuildResult
    from ..build.progress import Progress
    from ..store import Store

_FROM_BUILDER = ("BuildError", "BuildResult", "StepReport")
__all__ = ["build", "extract_context", "is_archive", "parse_cache_spec", "parse_epoch",
           "prune_cache",
           "CachePruneReport", *_FROM_BUILDER]


def __getattr__(name: str) -> Any:
    if name not in _FROM_BUILDER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..build import builder

    return getattr(builder, name)

# What a tar context on standard input starts with: compressed, or a plain tar.
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def build(context: str | os.PathLike[str] | BinaryIO | None = ".", *,
          dockerfile: str | os.PathLike[str] | None = None,
          dockerfile_text: str | bytes | None = None,
          tags: Iterable[str] = (), build_args: Mapping[str, str] | None = None,
          target: str | None = None, no_cache: bool = False,
          labels: Mapping[str, str] | None = None, platform: str | None = None,
          network: str = "default", secrets: Mapping[str, str | os.PathLike[str]] | None = None,
          source_date_epoch: int | None = None, pull: bool | None = None,
          cache_from: str | Iterable[str] | None = None, cache_to: str | None = None,
          squash: bool = False, progress: Progress | None = None, reasons: bool = True,
          store: Store | None = None) -> BuildResult:
    """Build an image; raises BuildError (with the Dockerfile line) when a step fails.

    ``dockerfile`` is a path (default: ``Dockerfile`` in the context folder; in a tar
    context, a path inside it); ``secrets`` maps ``RUN --mount=type=secret`` ids to files.
    A base image missing from the store is pulled; ``pull=True`` pulls FROM images every
    time, ``pull=False`` never pulls. ``cache_from`` and ``cache_to``: see the module doc.

    ``source_date_epoch`` (seconds; default: a ``SOURCE_DATE_EPOCH`` build arg) makes the
    build reproducible: the config's and the history's times are that time, and the new
    layers' file times are clamped to it. ``squash`` merges the layers the build made into
    one over the base image (the step cache stays per step). Each ``result.steps`` entry
    says whether it was cached and, when not, why it ran (``reason``; ``reasons=False`` skips
    working that out, and leaves it None, as ``lamina build -q`` does).
    """
    from ..build.builder import run_build
    from ..build.progress import Progress
    from ..store import Store

    store = store or Store.open()
    for secret_id, path in (secrets or {}).items():
        if not Path(path).is_file():
            raise UsageError(f"secret {secret_id}: {path} is not a file",
                             hint="give --secret id=NAME,src=FILE with an existing file")
    if isinstance(cache_from, str):
        cache_from = [cache_from]
    sources = tuple(_cache_location(parse_cache_spec(spec, "from"))
                    for spec in cache_from or ())
    cache_options: dict[str, Any] = {"cache_from": sources}
    if cache_to is not None:
        spec = parse_cache_spec(cache_to, "to")
        cache_options.update(cache_to=_cache_location(spec), cache_mode=spec.get("mode", "min"))
    options = dict(
        **cache_options, tags=tuple(tags), build_args=dict(build_args or {}), target=target,
        no_cache=no_cache,
        labels=dict(labels or {}), platform=platform, network=network,
        secrets={k: Path(v) for k, v in (secrets or {}).items()},
        source_date_epoch=_epoch(source_date_epoch, build_args or {}),
        always_pull=bool(pull), squash=squash, reasons=reasons,
        pull=None if pull is False else functools.partial(_pull, store=store))
    with contextlib.ExitStack() as stack:
        remember = True
        if context is not None and not isinstance(context, (str, os.PathLike)):
            import tempfile   # (with random: start-up time a folder context does not pay)

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="lamina-context-")))
            extract_context(context, folder)
            context, remember = folder, False   # a new folder each time: nothing to remember
        request = _request(context, dockerfile, dockerfile_text, remember, options)
        return run_build(store, request, progress or Progress())


def parse_epoch(text: str, where: str = "SOURCE_DATE_EPOCH") -> int:
    """A ``SOURCE_DATE_EPOCH`` value: whole seconds since 1970 (reproducible-builds.org)."""
    value = text.strip()
    if not value.isdigit() or len(value) > 12:
        raise UsageError(f"{where}={text!r} is not a time in seconds since 1970",
                         hint="give whole seconds, e.g. SOURCE_DATE_EPOCH=$(git log -1 "
                              "--format=%ct)")
    return int(value)


def _epoch(given: int | None, build_args: Mapping[str, str]) -> int | None:
    """The build's SOURCE_DATE_EPOCH: given, else the build arg of that name (BuildKit)."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 0:
            raise UsageError(f"source_date_epoch={given!r} is not a time in seconds",
                             hint="give whole seconds since 1970")
        return given
    text = build_args.get("SOURCE_DATE_EPOCH")
    if text is None or text == "":
        return None
    return parse_epoch(text, "--build-arg SOURCE_DATE_EPOCH")


def _request(context: str | os.PathLike[str] | None, dockerfile: str | os.PathLike[str] | None,
             text: str | bytes | None, remember: bool, options: dict) -> BuildRequest:
    from ..build.builder import BuildRequest
    from ..build.context import ignore_file_for

    folder = Path(context) if context is not None else None
    if folder is not None:
        if folder.is_file() and dockerfile is None:
            folder, dockerfile = folder.parent, folder
        if not folder.is_dir():
            raise UsageError(f"unable to prepare context: path {str(folder)!r} not found",
                             hint="give the folder that holds the files to build from")
    if text is not None:
        data = text.encode() if isinstance(text, str) else text
        name = "Dockerfile"
        path = folder / name if folder is not None else None
    else:
        if folder is None:
            raise UsageError("no Dockerfile: give a context folder or the Dockerfile's text")
        path = _find_dockerfile(folder, dockerfile)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"failed to read dockerfile: open {path}: no such file",
                             hint="name the Dockerfile with -f FILE") from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a folder, not a Dockerfile",
                             hint="name the Dockerfile with -f FILE") from None
        name = str(path.name)
    ignore = ignore_file_for(folder, path) if folder is not None else None
    return BuildRequest(dockerfile=data, dockerfile_name=name, context=folder,
                        ignore_file=ignore, remember_hashes=remember, **options)


def _find_dockerfile(folder: Path, dockerfile: str | os.PathLike[str] | None) -> Path:
    if dockerfile is not None:
        path = Path(dockerfile)
        # In a context of our own (a tar), -f names a file inside it.
        return path if path.is_absolute() or path.exists() else folder / path
    path = folder / "Dockerfile"
    if not path.exists() and (folder / "dockerfile").exists():
        return folder / "dockerfile"
    return path


# The options each cache type takes, by direction, besides ``type``; the ones docker buildx
# has that change nothing here (lamina writes OCI media types and an image manifest
# always) are accepted and ignored.
_CACHE_OPTIONS = {
    ("local", "from"): ("src",),
    ("local", "to"): ("dest", "mode", "compression", "oci-mediatypes"),
    ("registry", "from"): ("ref",),
    ("registry", "to"): ("ref", "mode", "compression", "oci-mediatypes", "image-manifest",
                         "ignore-error"),
}
_CACHE_COMPRESSIONS = {"gzip": "gzip", "zstd": "zstd", "uncompressed": "none"}


def parse_cache_spec(spec: str, direction: str) -> dict[str, str]:
    """``type=local,src=DIR`` or ``type=registry,ref=REF`` (``direction`` "from"), or
    ``type=local,dest=DIR[,mode=min|max]`` or ``type=registry,ref=REF[,mode=min|max]
    [,compression=gzip|zstd|uncompressed][,ignore-error=true]`` ("to"), as docker buildx
    takes them; a bare ``REF`` is ``type=registry,ref=REF``. The fields, ``type`` included."""
    flag = f"--cache-{direction}"
    example = (f"{flag} type=local,{'src' if direction == 'from' else 'dest'}=DIR or "
               f"{flag} type=registry,ref=REGISTRY/NAME:TAG")
    if "=" not in spec:
        spec = f"type=registry,ref={spec}"
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{flag} {spec!r}: expected KEY=VALUE items, not {item!r}",
                             hint=f"use {example}")
        fields[key.strip()] = value.strip()
    kind = fields.setdefault("type", "local")
    if (kind, direction) not in _CACHE_OPTIONS:
        raise UsageError(f"{flag} type={kind}: only type=local and type=registry are supported",
                         hint=f"use {example}")
    allowed = _CACHE_OPTIONS[(kind, direction)]
    unknown = sorted(set(fields) - {"type", *allowed})
    if unknown:
        raise UsageError(f"{flag} {spec!r}: unknown option {unknown[0]!r}",
                         hint=f"type={kind} takes {', '.join(sorted(allowed))}")
    required = allowed[0]
    if not fields.get(required):
        raise UsageError(f"{flag} {spec!r}: {required}="
                         f"{'REF' if kind == 'registry' else 'DIR'} is missing",
                         hint=f"use {example}")
    if fields.get("mode", "min") not in ("min", "max"):
        raise UsageError(f"{flag} mode={fields['mode']}: expected min or max")
    if kind == "registry":
        _check_cache_ref(fields, flag)
        if fields.get("compression", "gzip") not in _CACHE_COMPRESSIONS:
            raise UsageError(f"{flag} compression={fields['compression']}: expected gzip, zstd "
                             "or uncompressed")
        if fields.get("ignore-error", "false").lower() not in ("true", "false"):
            raise UsageError(f"{flag} ignore-error={fields['ignore-error']}: expected true "
                             "or false")
    return fields


def _check_cache_ref(fields: dict[str, str], flag: str) -> None:
    """Normalize ``ref`` in place (``host/name`` -> ``host/name:latest``)."""
    from ..errors import LaminaError
    from ..image.reference import parse_normalized

    try:
        ref = parse_normalized(fields["ref"])
    except LaminaError as err:
        raise UsageError(f"{flag} ref={fields['ref']}: {err.message}",
                         hint="give REGISTRY/NAME:TAG, e.g. ref=registry.example:5000/app:cache"
                         ) from None
    if flag == "--cache-to" and ref.digest is not None:
        raise UsageError(f"{flag} ref={fields['ref']}: the cache is pushed to a tag, "
                         "not a digest", hint="give REGISTRY/NAME:TAG")
    fields["ref"] = str(ref)


def _cache_location(fields: dict[str, str]) -> Any:
    """A parsed cache spec -> what the builder takes: a folder, or a RegistryCache."""
    if fields["type"] == "local":
        return Path(fields.get("src") or fields["dest"])
    from ..build.registrycache import RegistryCache

    return RegistryCache(fields["ref"],
                         compression=_CACHE_COMPRESSIONS[fields.get("compression", "gzip")],
                         ignore_error=fields.get("ignore-error", "false").lower() == "true")


@dataclass(frozen=True)
class CachePruneReport:
    """What ``prune_cache`` removed."""

    removed: tuple[tuple[str, int, float], ...]   # (id, size, last use as a time stamp)
    reclaimed: int                                 # bytes freed on disk


DEFAULT_PRUNE_AGE = 48 * 3600


def prune_cache(*, all: bool = False, keep_storage: int | None = None,
                older_than: float | None = DEFAULT_PRUNE_AGE,
                store: Store | None = None) -> CachePruneReport:
    """``lamina builder prune``: remove build cache records and cache mounts, then collect
    the layers nothing else keeps.

    By default what was not used for ``older_than`` seconds (48 hours; None: whatever its
    age) goes; ``all`` removes everything. ``keep_storage`` (bytes) stops once the cache
    holds no more than that, oldest first.
    """
    import time

    from ..store import Store
    from ..store.cache import BuildCache

    store = store or Store.open()
    until = None if older_than is None else time.time() - older_than
    removed, mounts_freed = BuildCache(store).prune(all=all, until=until,
                                                    keep_storage=keep_storage)
    freed = store.gc().bytes_freed if removed else 0
    return CachePruneReport(tuple(removed), freed + mounts_freed)


def _pull(name: str, *, store: Store) -> None:
    from .registry import pull

    pull(name, store=store)


def is_archive(head: bytes) -> bool:
    """Whether standard input's first bytes are a tar archive (plain or compressed) rather
    than a Dockerfile."""
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def extract_context(stream: BinaryIO, folder: Path) -> None:
    """Unpack a tar context (plain, gzip, bzip2, xz, zstd) into ``folder``; nothing may land
    outside it."""
    import tarfile

    from ..image.archive import decompress, sniff_compression

    def keep_modes(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        # The "tar" filter refuses paths outside the folder; the modes stay as sent.
        return tarfile.tar_filter(member, dest).replace(mode=member.mode, deep=False)

    compression, raw = sniff_compression(stream)
    try:
        with tarfile.open(fileobj=decompress(compression, raw), mode="r|") as tar:
            tar.extractall(folder, numeric_owner=True, filter=keep_modes)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise UsageError(f"the build context on standard input is not a valid tar: {err}",
                         hint="send a tar archive of the context, or a Dockerfile") from None
