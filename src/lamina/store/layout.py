"""Image names: the store root's ``index.json``, so the root is a valid OCI image layout.

Each tag is one entry of ``index.json``: the manifest's descriptor annotated with
``org.opencontainers.image.ref.name`` = the full normalised reference
(``docker.io/library/busybox:latest``), so ``skopeo inspect oci:<root>:<reference>`` and umoci
find it. An image with several tags has several entries; an image with none (a build without
``-t``, or one whose tag moved to a newer image, Docker's ``<none>``) has one entry without the
annotation. Every entry is a GC root.

index.json changes read-modify-write under an exclusive lock (``locks/index.lock``), and is
replaced atomically, so concurrent taggers never lose each other's tags and readers need no lock.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.descriptor import REF_NAME_ANNOTATION, Descriptor
from ..image.digest import short_id
from ..image.manifest import Index, ManifestError, build_index, parse_manifest
from ..image.reference import ImageReference, parse_normalized
from .content import ContentStore
from .locks import FileLock, atomic_write

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"


class LayoutError(LaminaError):
    """An index.json or oci-layout file lamina cannot use."""


class ImageNotFoundError(LaminaError):
    def __init__(self, message: str, *, reference: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reference = reference


class AmbiguousImageIDError(LaminaError):
    pass


@dataclass(frozen=True)
class IndexEntry:
    """One image of the store's ``index.json``: its name, if any, and its manifest."""

    name: str | None          # full normalised reference; None for an untagged image
    descriptor: Descriptor    # of the manifest (or index), as stored in index.json


class ImageIndex:
    def __init__(self, root: Path, store_lock: FileLock, content: ContentStore) -> None:
        self.path = root / INDEX_FILE
        self.layout_path = root / LAYOUT_FILE
        self._store_lock = store_lock
        self._index_lock = FileLock(root / "locks" / "index.lock")
        self._content = content
        self._ids: dict[str, str] = {}  # manifest digest -> image ID; manifests never change
        self._parsed: tuple[tuple[int, int, int, int], Index] | None = None   # see _read

    def create(self) -> None:
        """Write oci-layout and an empty index.json where missing; check an existing layout."""
        if self.layout_path.exists():
            try:
                version = json.loads(self.layout_path.read_bytes()).get("imageLayoutVersion")
            except (ValueError, AttributeError):
                version = None
            if version != LAYOUT_VERSION:
                raise LayoutError(f"{self.layout_path} is not an OCI image layout version "
                                  f"{LAYOUT_VERSION} (found {version!r})",
                                  hint="point LAMINA_ROOT at an empty or a lamina directory")
        else:
            atomic_write(self.layout_path,
                         json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
        if not self.path.exists():
            atomic_write(self.path, build_index([]).raw)

    def list(self) -> list[IndexEntry]:
        return [IndexEntry(d.ref_name, d) for d in self._read().manifests]

    def get(self, ref: str | ImageReference) -> Descriptor:
        """The manifest descriptor a tag points at.

        Other tools may have written a name as given (``skopeo copy ... oci:<root>:x``):
        when the normalised name is not there, the text as given is tried too.
        """
        name = _tag_name(ref)
        entries = self._read().manifests
        for wanted in (name, ref if isinstance(ref, str) else None):
            for desc in entries:
                if wanted and desc.ref_name == wanted:
                    return desc
        raise ImageNotFoundError(f"no such image: {name}", reference=name,
                                 hint="`lamina images` lists local images; pull or build it first")

    def names_of(self, digest: str) -> list[str]:
        """The tags of the image with manifest ``digest``."""
        return [d.ref_name for d in self._read().manifests if d.digest == digest and d.ref_name]

    def set_tag(self, ref: str | ImageReference, desc: Descriptor) -> Descriptor | None:
        """Point ``ref`` at ``desc``; return the descriptor it pointed at before, if another.

        An image that loses its last tag this way stays, untagged (Docker's ``<none>``).
        """
        name = _tag_name(ref)
        annotations = {**desc.annotations, REF_NAME_ANNOTATION: name}
        tagged = Descriptor(desc.media_type, desc.digest, desc.size, annotations,
                            desc.platform, desc.urls, desc.artifact_type)
        previous: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            old = [d for d in entries if d.ref_name == name]
            if old == [tagged]:
                return entries  # already so: keep the file as it is
            previous.extend(d for d in old if d.digest != desc.digest)
            kept = [d for d in entries if d.ref_name != name
                    and not (d.digest == desc.digest and d.ref_name is None)]
            for lost in previous:
                if not any(d.digest == lost.digest for d in kept):
                    kept.append(_untagged(lost))
            return kept + [tagged]

        self._modify(change)
        return previous[0] if previous else None

    def add(self, desc: Descriptor) -> None:
        """Record an image without a tag (nothing changes if the image is already there)."""
        def change(entries: list[Descriptor]) -> list[Descriptor]:
            if any(d.digest == desc.digest for d in entries):
                return entries
            return entries + [_untagged(desc)]

        self._modify(change)

    def remove(self, ref: str | ImageReference) -> Descriptor:
        """Remove a tag (``rmi name``): the image goes too when that was its last name."""
        name = _tag_name(ref)
        found: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            found.extend(d for d in entries if d.ref_name == name)
            return [d for d in entries if d.ref_name != name]

        self._modify(change)
        if not found:
            raise ImageNotFoundError(f"no such image: {name}", reference=name,
                                     hint="`lamina images` lists local images")
        return found[0]

    def remove_image(self, digest: str) -> list[str]:
        """Remove every entry of the image with manifest ``digest``; return its names."""
        names: list[str] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            names.extend(d.ref_name for d in entries if d.digest == digest and d.ref_name)
            return [d for d in entries if d.digest != digest]

        self._modify(change)
        return names

    def image_id(self, desc: Descriptor) -> str | None:
        """Docker's IMAGE ID: the config digest (an index's own digest for an index).

        None when the manifest blob is missing.
        """
        if mt.is_index(desc.media_type):
            return desc.digest
        if desc.digest not in self._ids:
            if not self._content.has(desc.digest):
                return None
            manifest = parse_manifest(self._content.read_bytes(desc.digest), desc.media_type)
            self._ids[desc.digest] = (manifest.digest if isinstance(manifest, Index)
                                      else manifest.config.digest)
        return self._ids[desc.digest]

    def find_by_id(self, prefix: str) -> Descriptor:
        """The image whose ID starts with ``prefix`` (``sha256:abc...`` or ``abc...``)."""
        hex_prefix = prefix.removeprefix("sha256:")
        if not hex_prefix or any(c not in "0123456789abcdef" for c in hex_prefix):
            raise ImageNotFoundError(f"no such image: {prefix}", reference=prefix,
                                     hint="an image ID is hexadecimal, e.g. the IMAGE ID column "
                                          "of `lamina images`")
        matches: dict[str, tuple[str, Descriptor]] = {}
        for desc in self._read().manifests:
            image_id = self.image_id(desc)
            if image_id and image_id.removeprefix("sha256:").startswith(hex_prefix):
                matches.setdefault(desc.digest, (image_id, desc))
        if not matches:
            raise ImageNotFoundError(f"no such image: {prefix}", reference=prefix,
                                     hint="`lamina images` lists local images and their IDs")
        if len(matches) > 1:
            ids = sorted({short_id(image_id) for image_id, _ in matches.values()})
            raise AmbiguousImageIDError(
                f"image ID prefix {prefix!r} matches {len(matches)} images ({', '.join(ids)})",
                hint="give more characters of the ID, or a name")
        return next(iter(matches.values()))[1]

    def _read(self) -> Index:
        # index.json is only ever replaced whole (a new inode): unchanged identity, size and
        # times mean the file parsed last time (a build reads it 2 or 3 times).
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if self._parsed is not None and self._parsed[0] == stamp:
                    return self._parsed[1]
                raw = f.read()
        except FileNotFoundError:
            raise LayoutError(f"{self.path} is missing",
                              hint="open the store with Store.open, which creates it") from None
        try:
            parsed = parse_manifest(raw, mt.OCI_INDEX)
        except ManifestError as err:
            raise LayoutError(f"{self.path} is damaged: {err.message}",
                              hint="restore it from a backup, or remove it and tag the images "
                                   "again (the blobs stay)") from None
        assert isinstance(parsed, Index)
        self._parsed = (stamp, parsed)
        return parsed

    def _modify(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        with self._store_lock.shared(), self._index_lock.exclusive():
            entries = list(self._read().manifests)
            updated = change(entries)
            if updated != entries:
                index = build_index(updated)
                atomic_write(self.path, index.raw)
                # Still under the index lock: no other lamina writer came in between.
                st = os.stat(self.path)
                self._parsed = ((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), index)


def _tag_name(ref: str | ImageReference) -> str:
    parsed = parse_normalized(ref) if isinstance(ref, str) else ref.with_default_tag()
    if parsed.digest is not None:
        raise LayoutError(f"cannot use {parsed} as a tag: it has a digest",
                          hint="a tag is NAME[:TAG]; name an image by digest only to read it")
    return str(parsed)


def _untagged(desc: Descriptor) -> Descriptor:
    annotations = {k: v for k, v in desc.annotations.items() if k != REF_NAME_ANNOTATION}
    return Descriptor(desc.media_type, desc.digest, desc.size, annotations,
                      desc.platform, desc.urls, desc.artifact_type)
