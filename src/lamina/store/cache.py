"""Build cache records: what a build step produced, found again by the step's cache key.

    <root>/buildcache/records/<key hex>.json   one record per step result
    <root>/buildcache/children/<parent hex>    keys recorded on top of a parent, one per line
    <root>/buildcache/files/<name>.json        remembered file hashes of a build context
    <root>/buildcache/mounts/<id hash>/        RUN --mount=type=cache directories
    <root>/roots/cache-<key hex>.json          the record's blobs and snapshots, kept by GC

A record holds the image state after the step (its config bytes and layer descriptors) and
the parts its key was computed from (``parts``, a JSON object the builder defines: parent,
instruction, build args, file digests), so that a miss can be explained by comparing a new
step with the records made on the same parent. The store gives the parts no meaning.

A record is written after everything it names is in the store and rooted; a crash at any
moment leaves either no record or a complete one (written to a temp file, then renamed).
A record whose blobs went missing is a miss, never an error.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..image.descriptor import Descriptor
from ..image.digest import digest_hex
from .gc import Roots
from .root import Store

ROOT_PREFIX = "cache-"


@dataclass(frozen=True)
class CacheRecord:
    key: str                          # sha256:<hex> of the parts
    parts: Mapping[str, Any]          # what the key was made of (see the module doc)
    config: bytes                     # the image config after the step, raw
    layers: tuple[Descriptor, ...]    # every layer of the image after the step, bottom first
    chain_id: str | None = None       # the chain ID of the top layer (None: no layers)
    extra: Mapping[str, Any] = field(default_factory=dict)   # e.g. per-file digests

    def to_json(self) -> bytes:
        return json.dumps({
            "key": self.key, "parts": self.parts, "config": self.config.decode(),
            "layers": [d.to_json() for d in self.layers], "chain_id": self.chain_id,
            "extra": self.extra}, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CacheRecord":
        obj = json.loads(raw)
        return cls(obj["key"], obj["parts"], obj["config"].encode(),
                   tuple(Descriptor.from_json(d) for d in obj["layers"]), obj.get("chain_id"),
                   obj.get("extra") or {})


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "buildcache"
        self._records = self.dir / "records"
        self._children = self.dir / "children"

    def get(self, key: str) -> CacheRecord | None:
        """The record of ``key`` if it is whole and its blobs are still in the store."""
        try:
            record = CacheRecord.from_json((self._records / f"{digest_hex(key)}.json").read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None   # damaged: a miss; the next put replaces it
        if record.key != key or not all(self.store.content.has(d.digest) for d in record.layers):
            return None
        return record

    def put(self, record: CacheRecord, *, snapshots: Iterable[str] = ()) -> None:
        """Keep ``record``; its layer blobs and ``snapshots`` become GC roots first."""
        hex_key = digest_hex(record.key)
        self.store.roots.put(ROOT_PREFIX + hex_key, Roots(
            blobs=frozenset(d.digest for d in record.layers), snapshots=frozenset(snapshots)))
        self._records.mkdir(parents=True, exist_ok=True)
        _replace(self._records / f"{hex_key}.json", record.to_json())
        parent = record.parts.get("parent")
        if isinstance(parent, str) and parent.startswith("sha256:"):
            self._children.mkdir(parents=True, exist_ok=True)
            # One short line in append mode: concurrent builds do not tear each other's lines.
            with open(self._children / digest_hex(parent), "a") as out:
                out.write(record.key + "\n")

    def children(self, parent_key: str) -> list[CacheRecord]:
        """The records made on top of ``parent_key``, most recent first."""
        try:
            keys = (self._children / digest_hex(parent_key)).read_text().split()
        except FileNotFoundError:
            return []
        found = []
        for key in dict.fromkeys(reversed(keys)):
            record = self.get(key)
            if record is not None:
                found.append(record)
        return found

    def load_file_hashes(self, name: str) -> dict[str, list[Any]]:
        """Remembered file hashes of one build context (see build/context.py)."""
        try:
            data = json.loads((self.dir / "files" / f"{name}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_file_hashes(self, name: str, hashes: Mapping[str, list[Any]]) -> None:
        (self.dir / "files").mkdir(parents=True, exist_ok=True)
        _replace(self.dir / "files" / f"{name}.json",
                 json.dumps(hashes, separators=(",", ":")).encode())


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all. Not fsynced: losing a record costs a rebuild of
    its step, nothing more, and the blobs it names were made durable before."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
