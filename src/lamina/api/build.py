"""``build``: a Dockerfile and its build context become a tagged image, as ``docker build``.

    from lamina import api
    result = api.build("examples/webapp-color", tags=["webapp:1"])
    print(result.image_id, [s.cached for s in result.steps])

The context is a folder, a tar archive (a stream, like ``docker build - < ctx.tar``), or
None when the Dockerfile comes alone (``dockerfile_text``). A file given as the context
means its folder is the context and the file is the Dockerfile, as ``docker build FILE``.
Nothing is printed unless a ``progress`` display is given (lamina.build.progress).

This module imports the builder only when ``build`` runs (and ``BuildError``,
``BuildResult``, ``StepReport`` when they are asked for), so that ``lamina.api`` can import
``build`` eagerly at no cost: a lazy name would be shadowed by this submodule once imported.
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import UsageError

if TYPE_CHECKING:
    from ..build.builder import BuildRequest, BuildResult
    from ..build.progress import Progress
    from ..store import Store

_FROM_BUILDER = ("BuildError", "BuildResult", "StepReport")
__all__ = ["build", "extract_context", "is_archive", *_FROM_BUILDER]


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
          progress: Progress | None = None, store: Store | None = None) -> BuildResult:
    """Build an image; raises BuildError (with the Dockerfile line) when a step fails.

    ``dockerfile`` is a path (default: ``Dockerfile`` in the context folder; in a tar
    context, a path inside it); ``secrets`` maps ``RUN --mount=type=secret`` ids to files.
    A base image missing from the store is pulled; ``pull=True`` pulls FROM images every
    time, ``pull=False`` never pulls.
    """
    from ..build.builder import run_build
    from ..build.progress import Progress
    from ..store import Store

    store = store or Store.open()
    for secret_id, path in (secrets or {}).items():
        if not Path(path).is_file():
            raise UsageError(f"secret {secret_id}: {path} is not a file",
                             hint="give --secret id=NAME,src=FILE with an existing file")
    options = dict(
        tags=tuple(tags), build_args=dict(build_args or {}), target=target, no_cache=no_cache,
        labels=dict(labels or {}), platform=platform, network=network,
        secrets={k: Path(v) for k, v in (secrets or {}).items()},
        source_date_epoch=source_date_epoch, always_pull=bool(pull),
        pull=None if pull is False else functools.partial(_pull, store=store))
    with contextlib.ExitStack() as stack:
        remember = True
        if context is not None and not isinstance(context, (str, os.PathLike)):
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="lamina-context-")))
            extract_context(context, folder)
            context, remember = folder, False   # a new folder each time: nothing to remember
        request = _request(context, dockerfile, dockerfile_text, remember, options)
        return run_build(store, request, progress or Progress())


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
