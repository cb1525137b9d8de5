"""Cache keys of build steps, and why a step missed the cache.

A step's key is the sha256 of its parts: the parent's key, the instruction with the stage's
variables applied, the build args it sees, and a digest of the files it reads (COPY and ADD:
content and metadata of every source file; a stage or image source: that state's key). A
base's key names exactly what the stage starts from: an image's manifest digest, ``scratch``
and the platform, or the key of the stage it is built on. The parts are kept in the cache
record, so that a miss can be explained against the records made on the same parent.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..store.cache import CacheRecord


@dataclass(frozen=True)
class CacheKey:
    parent: str
    instruction: str
    args: tuple[tuple[str, str], ...] = ()
    files: str | None = None          # digest over the files read, or None

    def parts(self) -> dict[str, Any]:
        return {"parent": self.parent, "instruction": self.instruction,
                "args": [list(pair) for pair in self.args], "files": self.files}

    @property
    def digest(self) -> str:
        return _digest(self.parts())


def parts_digest(parts: Mapping[str, Any]) -> str:
    """The key of a step whose parts are ``parts`` (checks an imported record)."""
    return _digest(parts)


def base_key(source: str, platform: str) -> str:
    """The key of a stage's starting point: ``image@<manifest digest>`` or ``scratch``."""
    return _digest({"from": source, "platform": platform})


def files_digest(entries: Mapping[str, str]) -> str:
    """One digest over the files a step reads: each path with its content/metadata digest."""
    h = hashlib.sha256()
    for path in sorted(entries):
        h.update(f"{path}\0{entries[path]}\n".encode("utf-8", "surrogateescape"))
    return f"sha256:{h.hexdigest()}"


def explain_miss(key: CacheKey, files: Mapping[str, str],
                 earlier: Sequence[CacheRecord]) -> str | None:
    """Why ``key`` missed, compared with the records made on the same parent (newest first).

    None when there is nothing to compare with (a parent never built on before).
    """
    for record in earlier:
        parts = record.parts
        if parts.get("instruction") != key.instruction:
            continue
        if [list(p) for p in key.args] != parts.get("args"):
            old = dict(tuple(p) for p in parts.get("args") or ())
            changed = sorted({k for k, v in key.args if old.get(k) != v}
                             | (set(old) - {k for k, _ in key.args}))
            return "build args changed: " + ", ".join(changed)
        if key.files != parts.get("files"):
            return _files_changed(files, record.extra.get("files") or {})
        return None
    if earlier:
        return "the instruction changed, or an earlier step did"
    return None


def _files_changed(new: Mapping[str, str], old: Mapping[str, str]) -> str:
    changed = [p for p in sorted(new) if p in old and old[p] != new[p]]
    added = [p for p in sorted(new) if p not in old]
    removed = [p for p in sorted(old) if p not in new]
    parts = []
    for label, paths in (("changed", changed), ("added", added), ("removed", removed)):
        if paths:
            shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
            parts.append(f"{len(paths)} file{'s' if len(paths) > 1 else ''} {label}: {shown}")
    return "; ".join(parts) or "the source files changed"


def _digest(obj: Any) -> str:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()
