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

from collections.abc import Mapping
from dataclasses import dataclass

from ..image import mediatypes as mt
from ..image.config import ConfigError, ImageConfig
from ..image.digest import chain_ids
from ..image.manifest import Index, ManifestError, parse_manifest
from .roots import GCError, Roots

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from .root import Store


@dataclass(frozen=True)
class Marked:
    """What the GC roots reach: the blobs and snapshots a collection must keep."""

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
    """What one garbage collection removed from the store, and the bytes it freed."""

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
