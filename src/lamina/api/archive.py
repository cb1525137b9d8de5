"""``save`` and ``load``: images between the store and a tar archive (image/archive.py).

``save`` writes the images and names asked for as one archive that ``docker load``, skopeo
and umoci read. ``load`` reads an archive of ``docker save`` (any version), ``lamina save`` or
skopeo (``docker-archive:``, ``oci-archive:``), plain or compressed, copies every image into
the store (each blob checked as it streams in), and only then names them all: a load that
fails leaves no new name behind, and what it wrote goes with the next garbage collection.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from ..errors import UsageError
from ..image.archive import (DECOMPRESSION_ERRORS, ArchiveError, ArchivedImage, decompress,
                             read_archive, sniff_compression, write_archive)
from ..image.manifest import Manifest
from ..image.reference import ImageReference, ReferenceError, parse_normalized
from ..store import Store, StoredImage
from ..store.commit import copy_image
from ..store.content import CHUNK, ContentError
from ..store.roots import Lease
from ..store.layout import ImageNotFoundError
from ..store.locks import atomic_write

PathOrStream = BinaryIO | str | os.PathLike[str]


@dataclass(frozen=True)
class LoadedImage:
    """One line of ``lamina load``: ``Loaded image: NAME`` or ``Loaded image ID: ID``."""

    name: str | None          # the tag it got, in Docker's short form; None: kept untagged
    image_id: str             # the config digest
    replaced_id: str | None   # the image that name meant before, when another one


def save(names: str | Sequence[str], output: PathOrStream, *,
         store: Store | None = None) -> None:
    """Write the images ``names`` (one name, or several) select as one archive, to a stream
    or to a file.

    As ``docker save`` does, a name without a tag selects every tag of that repository, and
    an image ID or digest selects the image without naming it. A file is written whole or
    not at all (a temp file beside it, renamed at the end).
    """
    store = store or Store.open()
    selected = _select(store, [names] if isinstance(names, str) else names)
    if isinstance(output, (str, os.PathLike)):
        _write_atomically(Path(output), lambda out: write_archive(out, selected))
    else:
        write_archive(output, selected)


def load(source: PathOrStream, *, store: Store | None = None) -> list[LoadedImage]:
    """Load every image of an archive (a path or a stream); return what was named how."""
    store = store or Store.open()
    with ExitStack() as stack:
        stream = source if not isinstance(source, (str, os.PathLike)) else \
            stack.enter_context(open_input(source))
        tar = stack.enter_context(_plain_tar(stream, store.content.ingest_dir))
        archived = read_archive(tar)
        if not archived:
            raise ArchiveError("the archive holds no image")
        with store.roots.lease() as lease:
            copied = [(_copy(store, item, lease), item) for item in archived]
            # Every blob is in: only now does any name change.
            return [loaded for manifest, item in copied
                    for loaded in _name(store, manifest, item.names)]


def open_input(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file named on the command line for reading, with errors a user can act on."""
    name = os.fspath(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name} is a folder, not a tar archive",
                         hint="make a tar of it first: tar -C FOLDER -c .") from None
    except PermissionError:
        raise UsageError(f"{name}: permission denied") from None


def _select(store: Store, names: Sequence[str]) -> list[tuple[StoredImage, list[ImageReference]]]:
    """The images to save, each once, with the names asked for (in the order asked)."""
    chosen: dict[str, tuple[StoredImage, list[ImageReference]]] = {}
    for text in names:
        for ref, image in _images_named(store, text):
            refs = chosen.setdefault(image.digest(), (image, []))[1]
            if ref is not None and ref not in refs:
                refs.append(ref)
    return list(chosen.values())


def _images_named(store: Store, text: str) -> list[tuple[ImageReference | None, StoredImage]]:
    try:
        ref = None if text.startswith("sha256:") else ImageReference.parse(text)
    except ReferenceError:
        ref = None  # an image ID: resolve finds it
    if ref is not None and ref.digest is None:
        if ref.tag is None:
            tags = _repository_tags(store, ref)
            if tags:
                return [(tag, store.image(str(tag))) for tag in tags]
        try:
            store.index.get(text)
            return [(ref.with_default_tag(), store.image(text))]
        except ImageNotFoundError:
            pass  # maybe an ID that reads as a name ("0a1b2c")
    return [(None, store.image(text))]


def _repository_tags(store: Store, repository: ImageReference) -> list[ImageReference]:
    tags = []
    for entry in store.index.list():
        try:
            ref = parse_normalized(entry.name) if entry.name else None
        except ReferenceError:
            continue  # a name another tool wrote, not a reference
        if ref is not None and ref.repository == repository.repository:
            tags.append(ref)
    return sorted(tags, key=str)


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """A user's output file, written whole or not at all (the store's atomic_write)."""
    try:
        atomic_write(path, write)
    except OSError as err:   # a missing folder, no permission, a full disk: the user's to fix
        raise UsageError(f"cannot write {path}: {err.strerror or err}",
                         hint="name a file in a folder that exists, that you may write, and "
                              "with room for it") from None


@contextmanager
def _plain_tar(stream: BinaryIO, spool_dir: Path) -> Iterator[BinaryIO]:
    """The archive as a seekable, uncompressed tar.

    A seekable plain tar is read where it is. A pipe, or a compressed archive, is first
    copied (decompressed) into an unnamed temp file in the store's ingest folder: the file
    never has a name there, and goes with the process, even one killed by SIGKILL.
    """
    compression, raw = sniff_compression(stream)
    if compression is None and getattr(raw, "seekable", lambda: False)():
        yield raw
        return
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        try:
            shutil.copyfileobj(decompress(compression, raw), spool, CHUNK)
        except DECOMPRESSION_ERRORS as err:
            raise ArchiveError(f"the {compression} archive cannot be decompressed ({err})",
                               hint="the file is damaged or cut short") from None
        spool.seek(0)
        yield spool  # type: ignore[misc]


def _copy(store: Store, item: ArchivedImage, lease: Lease) -> Manifest:
    try:
        return copy_image(store, item.image, lease=lease)
    except ContentError as err:
        where = item.image.entry_name(err.digest) if err.digest else "the archive"
        raise ArchiveError(f"{where}: {err.message}", hint=err.hint) from None


def _name(store: Store, manifest: Manifest, names: Sequence[ImageReference]) -> list[LoadedImage]:
    image_id = manifest.config.digest
    if not names:
        store.add_image(manifest.digest)
        return [LoadedImage(None, image_id, None)]
    loaded = []
    for ref in names:
        before = store.tag(ref, manifest.digest)
        replaced = store.index.image_id(before) if before is not None else None
        loaded.append(LoadedImage(ref.familiar(), image_id,
                                  replaced if replaced != image_id else None))
    return loaded
