"""Garbage collection: keep what the roots reach, remove the rest.

The roots are every image in index.json (tagged or not), plus extra roots that other parts
register in files, so that a ``lamina image prune`` in one process respects them all:

- ``roots/<name>.json``: lasting roots (the build cache, a container keeping its image),
  written with ``RootsRegistry.put(name, Roots(...))`` and dropped with ``remove(name)``;
- ``leases/<id>.json``: the content of an operation in flight (a pull, a load, a build) that
  is written but not tagged yet. Take ``with store.roots.lease() as lease:`` and
  ``lease.add(...)`` a digest *before* checking ``has()`` or committing it: then a GC that runs
  at any moment keeps it. A lease ends with its ``with`` block, or with its process (a dead
  process's lease is dropped by the next ``Store.open``).

An image root keeps its manifest (an index: every child present), config, layers, and the
snapshots of its chain IDs; a snapshot root keeps its parents too. In-flight writes (ingest/,
snapshot staging) are never collected. Marking and sweeping hold the store lock exclusive.
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Iterable, Mapping

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.config import ConfigError, ImageConfig
from ..image.digest import canonical_json, chain_ids, validate_digest
from ..image.manifest import Index, ManifestError, parse_manifest
from .locks import FileLock, atomic_write, is_abandoned, lock_held_open

if TYPE_CHECKING:
    from .root import Store

_ROOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class GCError(LaminaError):
    pass


@dataclass(frozen=True)
class Roots:
    images: frozenset[str] = field(default_factory=frozenset)     # manifest or index digests
    blobs: frozenset[str] = field(default_factory=frozenset)      # just these blobs
    snapshots: frozenset[str] = field(default_factory=frozenset)  # chain IDs (and parents)

    def __post_init__(self) -> None:
        for name in ("images", "blobs", "snapshots"):
            values = frozenset(getattr(self, name))
            for value in values:
                validate_digest(value)
            object.__setattr__(self, name, values)

    def __or__(self, other: "Roots") -> "Roots":
        return Roots(self.images | other.images, self.blobs | other.blobs,
                     self.snapshots | other.snapshots)

    def to_json(self) -> bytes:
        return canonical_json({"images": sorted(self.images), "blobs": sorted(self.blobs),
                               "snapshots": sorted(self.snapshots)})

    @classmethod
    def from_json(cls, raw: bytes) -> "Roots":
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("a roots file is a JSON object")
        return cls(frozenset(obj.get("images", ())), frozenset(obj.get("blobs", ())),
                   frozenset(obj.get("snapshots", ())))


class RootsRegistry:
    def __init__(self, root: Path, lock: FileLock) -> None:
        self.roots_dir = root / "roots"
        self.leases_dir = root / "leases"
        self._lock = lock

    def put(self, name: str, roots: Roots) -> None:
        """Register (or replace) the lasting roots called ``name``."""
        with self._lock.shared():
            atomic_write(self._root_file(name), roots.to_json())

    def remove(self, name: str) -> bool:
        with self._lock.shared():
            try:
                self._root_file(name).unlink()
            except FileNotFoundError:
                return False
            return True

    def load(self) -> Roots:
        """The union of every registered root and lease (a lease just ended counts too)."""
        total = Roots()
        for directory in (self.roots_dir, self.leases_dir):
            for entry in os.scandir(directory):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    try:
                        total |= Roots.from_json(Path(entry.path).read_bytes())
                    except FileNotFoundError:
                        continue  # a lease that ended meanwhile
                    except (ValueError, LaminaError) as err:
                        raise GCError(f"GC root file {entry.path} is damaged: {err}",
                                      hint="fix or remove the file, then collect again") from None
        return total

    def lease(self) -> "Lease":
        return Lease(self)

    def recover(self) -> list[Path]:
        """Drop the leases of dead processes. Call with the store lock held exclusive."""
        removed = []
        for entry in os.scandir(self.leases_dir):
            path = Path(entry.path)
            if entry.name.endswith(".lock"):
                stale = is_abandoned(path)
            else:  # a .json whose .lock is gone lost its owner too
                stale = entry.name.endswith(".json") and not path.with_suffix(".lock").exists()
            for item in (path.with_suffix(".json"), path.with_suffix(".lock")) if stale else ():
                if item.exists():
                    item.unlink()
                    removed.append(item)
        return removed

    def _root_file(self, name: str) -> Path:
        if not _ROOT_NAME.fullmatch(name):
            raise GCError(f"invalid GC root name {name!r}",
                          hint="use letters, digits, '.', '_' and '-'")
        return self.roots_dir / f"{name}.json"


class Lease:
    """Temporary roots for one operation in flight; see the module docstring."""

    def __init__(self, registry: RootsRegistry) -> None:
        self._registry = registry
        self._roots = Roots()
        name = secrets.token_hex(16)
        self._file = registry.leases_dir / f"{name}.json"
        self._lock_file = registry.leases_dir / f"{name}.lock"
        # Create and lock under the store lock, so recovery never takes it for abandoned.
        with registry._lock.shared():
            os.close(os.open(self._lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._lock_fd = lock_held_open(self._lock_file)

    def add(self, *, images: Iterable[str] = (), blobs: Iterable[str] = (),
            snapshots: Iterable[str] = ()) -> None:
        self._roots |= Roots(frozenset(images), frozenset(blobs), frozenset(snapshots))
        with self._registry._lock.shared():
            atomic_write(self._file, self._roots.to_json())

    def release(self) -> None:
        if self._lock_fd < 0:
            return
        with self._registry._lock.shared():
            self._file.unlink(missing_ok=True)
            self._lock_file.unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = -1

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


@dataclass(frozen=True)
class Marked:
    blobs: frozenset[str]
    snapshots: frozenset[str]


@dataclass(frozen=True)
class Usage:
    """What the store holds and what the roots reach (for ``system df``)."""

    blobs: Mapping[str, int]        # digest -> bytes, every blob
    snapshots: Mapping[str, int]    # chain ID -> bytes, every committed snapshot
    referenced: Marked

    @property
    def reclaimable_bytes(self) -> int:
        return (sum(n for d, n in self.blobs.items() if d not in self.referenced.blobs)
                + sum(n for c, n in self.snapshots.items()
                      if c not in self.referenced.snapshots))


@dataclass(frozen=True)
class GCResult:
    removed_blobs: tuple[str, ...]
    removed_snapshots: tuple[str, ...]
    bytes_freed: int


def mark(store: "Store", extra_roots: Roots | None = None) -> Marked:
    """Everything reachable from the roots (index.json, registered roots, ``extra_roots``)."""
    roots = store.roots.load() | (extra_roots or Roots())
    images = {entry.descriptor.digest for entry in store.index.list()} | roots.images
    blobs, snapshots, seen = set(roots.blobs), set(roots.snapshots), set()
    for digest in images:
        _mark_image(store, digest, blobs, snapshots, seen)
    pending = list(snapshots)
    while pending:  # a snapshot stands on its parents
        chain_id = pending.pop()
        if store.snapshots.exists(chain_id):
            parent = store.snapshots.info(chain_id).parent
            if parent and parent not in snapshots:
                snapshots.add(parent)
                pending.append(parent)
    return Marked(frozenset(blobs), frozenset(snapshots))


def _mark_image(store: "Store", digest: str, blobs: set[str], snapshots: set[str],
                seen: set[str]) -> None:
    if digest in seen or not store.content.has(digest):
        return  # a missing manifest references nothing we have
    seen.add(digest)
    blobs.add(digest)
    try:
        parsed = parse_manifest(store.content.read_bytes(digest))
        if isinstance(parsed, Index):
            for child in parsed.manifests:
                blobs.add(child.digest)
                if mt.is_image_manifest(child.media_type) or mt.is_index(child.media_type):
                    _mark_image(store, child.digest, blobs, snapshots, seen)
            return
        blobs.add(parsed.config.digest)
        blobs.update(layer.digest for layer in parsed.layers)
        if parsed.config.media_type in mt.CONFIGS and store.content.has(parsed.config.digest):
            config = ImageConfig.parse(store.content.read_bytes(parsed.config.digest))
            snapshots.update(chain_ids(config.rootfs.diff_ids))
    except (ManifestError, ConfigError) as err:
        # Not knowing what a root references, deleting anything could break it.
        raise GCError(f"cannot read GC root {digest}: {err.message}",
                      hint="fix or remove that image (`lamina rmi`), then collect again") from None


def usage(store: "Store") -> Usage:
    with store.lock.shared():
        blobs = {digest: store.content.size(digest) for digest in store.content.digests()}
        snapshots = {info.chain_id: info.size for info in store.snapshots.list()}
        return Usage(blobs, snapshots, mark(store))


def collect(store: "Store", extra_roots: Roots | None = None) -> GCResult:
    """Remove every blob and snapshot no root reaches; say what went and the bytes freed."""
    removed_blobs: list[str] = []
    removed_snapshots: list[str] = []
    freed = 0
    with store.lock.exclusive():
        marked = mark(store, extra_roots)
        for digest in sorted(store.content.digests()):
            if digest not in marked.blobs:
                size = store.content.size(digest)
                if store.content.delete(digest):
                    removed_blobs.append(digest)
                    freed += size
        for info in store.snapshots.list():
            if info.chain_id not in marked.snapshots and store.snapshots.remove(info.chain_id):
                removed_snapshots.append(info.chain_id)
                freed += info.size
    return GCResult(tuple(removed_blobs), tuple(removed_snapshots), freed)
