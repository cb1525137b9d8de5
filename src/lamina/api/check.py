"""``lamina system check`` and ``lamina image verify``: verify the store or some images, and
(``system check --repair``) repair only what is safe to repair.

What is verified:
- every blob: its bytes still hash to its digest (its file name);
- every image of index.json (``image verify``: the images named): its manifest is there,
  reads, and has the size index.json says; its config and layers (for an index: the platform
  manifests present) are there with the sizes the manifest says; the manifest, index and
  config follow the OCI image-spec rules (``image/schema.py``); the config reads, and its diff
  IDs and history fit the layers; every layer decompresses, as its media type says, to the
  tar its diff ID names;
- every snapshot: its metadata reads, names the snapshot's own chain ID, and that chain ID
  follows from its parent and diff ID; the parent exists;
- the GC root files read.

``repair`` removes only what nothing can miss: damaged blobs that no root references (garbage
collection would remove them anyway), and the index.json entries whose manifest blob is gone
(such an image cannot be used, or mended in place). A damaged or missing blob that an image
needs is reported, never deleted: that image must be pulled or loaded again.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.config import ConfigError, ImageConfig
from ..image.descriptor import Descriptor
from ..image.digest import sha256_digest
from ..image.manifest import Index, ManifestError, parse_manifest
from ..image.schema import validate
from ..store import Store
from ..store.content import BlobNotFoundError, DigestMismatchError
from ..store.gc import GCError, Marked, mark
from ..store.snapshots import COMMITTED_MARKER, SnapshotError
from .images import resolve_image, familiar


@dataclass(frozen=True)
class Problem:
    """One thing ``lamina system check`` found wrong in the store, and what to do about it."""

    subject: str                  # a blob digest, an image name, a snapshot chain ID, a file
    message: str                  # what is wrong
    action: str                   # what to do about it
    repaired: str | None = None   # what ``repair`` did; None while the problem remains


@dataclass(frozen=True)
class VerifyReport:
    """``lamina image verify NAME``: what is wrong with one image, if anything."""

    name: str
    digest: str                   # the manifest (or index) digest the name points at
    problems: tuple[Problem, ...]
    blobs: int                    # blobs whose bytes were hashed
    layers: int                   # layers decompressed to recompute their diff IDs

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CheckReport:
    """What ``lamina system check`` found in the store (and repaired, with ``repair``)."""

    problems: tuple[Problem, ...]
    blobs: int        # how many of each were checked
    images: int
    snapshots: int

    @property
    def ok(self) -> bool:
        """True when no problem remains (none was found, or repair fixed each one)."""
        return all(p.repaired for p in self.problems)


def check(repair: bool = False, *, store: Store | None = None) -> CheckReport:
    """Verify the whole store; with ``repair``, also fix what is safe (module docstring)."""
    store = store if store is not None else Store.open()
    damaged, blob_count = _damaged_blobs(store)
    walk = _ImageWalk(store, damaged.get)
    walk.run()
    snapshot_problems, snapshot_count = _check_snapshots(store)
    unnamed: list[str] = []       # manifests whose index.json entries repair removed
    removed: set[str] = set()     # damaged blobs repair removed
    # Repair decides and acts under the exclusive lock: no GC, pull or tag changes meanwhile.
    with store.lock.exclusive() if repair else nullcontext():
        if repair:
            for digest in walk.missing:
                if not store.content.has(digest) and store.index.remove_image(digest):
                    unnamed.append(digest)
        marked = _marked(store)
        if repair and marked is not None:
            removed = {d for d in damaged if d not in marked.blobs and store.content.delete(d)}
    problems = [_blob_problem(digest, message, walk.users.get(digest, set()), marked,
                              digest in removed)
                for digest, message in sorted(damaged.items())]
    problems += [Problem(label, f"its manifest {digest} is missing",
                         "`lamina system check --repair` removes the name; then pull or load "
                         "the image again",
                         f"removed {label} from the image index" if digest in unnamed else None)
                 for digest, label in walk.missing.items()]
    problems += walk.problems + snapshot_problems + _root_problems(store)
    return CheckReport(tuple(problems), blob_count, len(walk.images), snapshot_count)


def verify(name: str, *, store: Store | None = None) -> VerifyReport:
    """Verify one image: every blob it uses is hashed, every layer decompressed to check its
    diff ID, and its manifest (index) and config JSON checked against the OCI image spec.
    Raises ``NoSuchImageError`` when ``name`` is not a local image."""
    store = store if store is not None else Store.open()
    desc = resolve_image(store, name)
    hashed: dict[str, str | None] = {}

    def damage(digest: str) -> str | None:
        if digest not in hashed:
            hashed[digest] = _blob_damage(store, digest)
        return hashed[digest]

    walk = _ImageWalk(store, damage, report_damage=True)
    if store.content.has(desc.digest):
        walk.target(desc, name)
    else:
        walk.bad(name, f"its manifest {desc.digest} is missing")
    return VerifyReport(name, desc.digest, tuple(walk.problems), len(hashed), walk.layers)


def _blob_damage(store: Store, digest: str) -> str | None:
    """What is wrong with a blob's bytes, or None when they hash to its digest."""
    try:
        store.content.verify(digest)
    except DigestMismatchError:
        return "damaged: its bytes no longer hash to its digest"
    except BlobNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    return None


def _damaged_blobs(store: Store) -> tuple[dict[str, str], int]:
    """Blobs whose bytes no longer hash to their digest, with what is wrong; and the count of
    blobs checked."""
    damaged, count = {}, 0
    for digest in store.content.digests():
        message = _blob_damage(store, digest)
        if message == "missing":
            continue  # collected meanwhile
        count += 1
        if message:
            damaged[digest] = message
    return damaged, count


def _marked(store: Store) -> Marked | None:
    """What the roots reference; None when a root cannot be read (then nothing is removed)."""
    try:
        return mark(store)
    except LaminaError:
        return None


def _blob_problem(digest: str, message: str, users: set[str], marked: Marked | None,
                  removed: bool) -> Problem:
    if users:
        names = sorted(users)
        action = (f"used by {', '.join(names)}: remove {'it' if len(names) == 1 else 'them'} "
                  f"(`lamina rmi {' '.join(names)}`) and pull or load again")
    elif marked is None:
        action = "fix the problems of the images and GC roots first; then --repair removes it"
    elif digest in marked.blobs:
        action = ("a container, the build cache or an operation in flight keeps it: remove "
                  "that user first; then --repair removes it")
    else:
        action = "no image uses it: `lamina system check --repair` removes it"
    return Problem(digest, message, action,
                   "removed the damaged blob (nothing used it)" if removed else None)


class _ImageWalk:
    """Checks images; records problems, who uses each blob, and the index entries whose
    manifest is missing (the one image problem repair can fix).

    ``damage(digest)`` says what is wrong with a blob's bytes (None: nothing). ``system check``
    hashes every blob first and reports the damaged ones itself, with their users;
    ``image verify`` hashes the blobs of its image on the way and reports them here
    (``report_damage``).
    """

    def __init__(self, store: Store, damage: Callable[[str], str | None], *,
                 report_damage: bool = False) -> None:
        self.store = store
        self.damage = damage
        self.report_damage = report_damage
        self.problems: list[Problem] = []
        self.users: dict[str, set[str]] = {}   # blob digest -> names of the images using it
        self.missing: dict[str, str] = {}      # manifest digest -> image name, if missing
        self.images: set[str] = set()
        self.diff_ids: dict[str, str | None] = {}  # layer digest -> its tar's digest
        self.layers = 0                        # layers decompressed

    def run(self) -> None:
        try:
            entries = self.store.index.list()
        except LaminaError as err:  # index.json itself is damaged
            self.problems.append(Problem("index.json", err.message, err.hint or ""))
            return
        labels: dict[str, tuple[Descriptor, str]] = {}
        for entry in entries:
            label = familiar(entry.name) if entry.name else entry.descriptor.digest
            labels.setdefault(entry.descriptor.digest, (entry.descriptor, label))
        for digest, (desc, label) in labels.items():
            self.images.add(digest)
            if not self.store.content.has(digest):
                self.missing[digest] = label
                continue
            self.target(desc, label)

    def target(self, desc: Descriptor, label: str) -> None:
        what = "index" if mt.is_index(desc.media_type) else "manifest"
        if not self._present(desc, what, label):
            return
        raw = self.store.content.read_bytes(desc.digest)
        broken = self._schema(raw, what, desc, label)
        try:
            parsed = parse_manifest(raw, desc.media_type)
        except ManifestError as err:
            if not broken:  # else the schema problems already say why
                self.bad(label, err.message)
            return
        if isinstance(parsed, Index):
            for child in parsed.manifests:  # only some platforms are pulled: skip the others
                if mt.is_image_manifest(child.media_type) \
                        and self.store.content.has(child.digest):
                    self.target(child, label)
            return
        config = None
        if self._present(parsed.config, "config", label):
            config_raw = self.store.content.read_bytes(parsed.config.digest)
            broken = self._schema(config_raw, "config", parsed.config, label) \
                if parsed.config.media_type in mt.CONFIGS else False
            try:
                config = ImageConfig.parse(config_raw)
                config.layer_history()
            except ConfigError as err:
                if not broken:
                    self.bad(label, err.message)
        present = []
        for layer in parsed.layers:
            if layer.urls and not self.store.content.has(layer.digest):
                present.append(False)
                continue  # a foreign layer: fetched from its URLs when needed
            present.append(self._present(layer, "layer", label))
        if config is None:
            return
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(parsed.layers):
            self.bad(label, f"its config lists {len(diff_ids)} diff IDs for "
                            f"{len(parsed.layers)} layers")
            return
        for layer, diff_id, here in zip(parsed.layers, diff_ids, present):
            if here:
                self._diff_id(layer, diff_id, label)

    def _schema(self, raw: bytes, what: str, desc: Descriptor, label: str) -> bool:
        """Report the OCI image-spec rules the document breaks; True if it breaks one."""
        problems = validate(raw, "config", None) if what == "config" \
            else validate(raw, "index" if what == "index" else "manifest", desc.media_type)
        for problem in problems:
            self.bad(label, f"its {what} {desc.digest} breaks the OCI image spec: {problem}")
        return bool(problems)

    def _diff_id(self, layer: Descriptor, diff_id: str, label: str) -> None:
        """Decompress the layer (once per blob) and compare its tar's digest with the
        config's diff ID; say so when the blob is not compressed as its media type says."""
        if layer.digest not in self.diff_ids:
            self.diff_ids[layer.digest] = self._unpacked_digest(layer, label)
        unpacked = self.diff_ids[layer.digest]
        if unpacked is not None and unpacked != diff_id:
            self.bad(label, f"its layer {layer.digest} decompresses to {unpacked}, not to the "
                            f"diff ID {diff_id} its config records")

    def _unpacked_digest(self, layer: Descriptor, label: str) -> str | None:
        from ..layer.compress import DigestReader, detect_compression, open_decompressed

        self.layers += 1
        try:
            wanted = mt.layer_compression(layer.media_type)
        except mt.MediaTypeError:
            return None  # the schema check names the media type
        try:
            blob = self.store.content.open_blob(layer.digest)
        except OSError as err:
            self.bad(label, f"its layer {layer.digest} cannot be read: {err.strerror or err}")
            return None
        with blob:   # one open: the magic bytes, then the whole stream
            try:
                found = detect_compression(blob.read(4))
                blob.seek(0)
            except OSError as err:
                self.bad(label, f"its layer {layer.digest} cannot be read: "
                                f"{err.strerror or err}")
                return None
            if found != wanted:
                self.bad(label, f"its layer {layer.digest} is {found or 'uncompressed'}, but "
                                f"its media type {layer.media_type} says "
                                f"{wanted or 'uncompressed'}")
            try:
                tar = DigestReader(open_decompressed(blob))
                while tar.read(1 << 20):
                    pass
            except Exception as err:  # gzip, zstd and the file system each raise their own
                self.bad(label, f"its layer {layer.digest} does not decompress: {err}")
                return None
        return tar.digest

    def _present(self, desc: Descriptor, what: str, label: str) -> bool:
        """Whether the blob is there, whole, with the size its descriptor says."""
        self.users.setdefault(desc.digest, set()).add(label)
        if not self.store.content.has(desc.digest):
            self.bad(label, f"its {what} {desc.digest} is missing")
            return False
        size = self.store.content.size(desc.digest)
        if size != desc.size:
            self.bad(label, f"its {what} {desc.digest} is {size} bytes, but the descriptor "
                            f"says {desc.size}")
            return False
        damage = self.damage(desc.digest)
        if damage and self.report_damage:
            self.bad(label, f"its {what} {desc.digest}: {damage}")
        return damage is None   # system check reports it with the blobs, used-by included

    def bad(self, label: str, message: str) -> None:
        self.problems.append(Problem(label, message, f"remove the image (`lamina rmi {label}`) "
                                                     "and pull or load it again"))


def _check_snapshots(store: Store) -> tuple[list[Problem], int]:
    """Problems of the committed snapshots (the others are in flight, or left to
    ``Store.open``), and how many were checked."""
    problems, count = [], 0
    for entry in sorted(os.scandir(store.snapshots.dir), key=lambda e: e.name):
        if entry.name.startswith(".") or not os.path.isfile(
                os.path.join(entry.path, COMMITTED_MARKER)):
            continue
        count += 1
        chain_id = f"sha256:{entry.name}"
        action = f"remove {entry.path}; lamina unpacks the layer again when it needs it"
        if not re.fullmatch(r"[0-9a-f]{64}", entry.name):
            problems.append(Problem(entry.path, "is not a snapshot (its name is no chain ID)",
                                    f"remove {entry.path}"))
            continue
        try:
            info = store.snapshots.info(chain_id)
        except SnapshotError:
            problems.append(Problem(chain_id, "its metadata is damaged", action))
            continue
        expected = info.diff_id if info.parent is None \
            else sha256_digest(f"{info.parent} {info.diff_id}".encode())
        if info.chain_id != chain_id:
            problems.append(Problem(chain_id, f"its metadata names chain ID {info.chain_id}",
                                    action))
        elif expected != chain_id:
            problems.append(Problem(
                chain_id, f"its chain ID does not follow from parent {info.parent} and diff "
                          f"ID {info.diff_id} (that gives {expected})", action))
        elif info.parent is not None and not store.snapshots.exists(info.parent):
            problems.append(Problem(chain_id, f"its parent snapshot {info.parent} is missing",
                                    action))
    return problems, count


def _root_problems(store: Store) -> list[Problem]:
    try:
        store.roots.load()
    except GCError as err:
        return [Problem("GC roots", err.message, err.hint or "")]
    return []
