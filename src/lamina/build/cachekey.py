"""Cache keys of build steps, and why a step missed the cache.

A step's key is the sha256 of its parts: the parent's key, the instruction with the stage's
variables applied, the build args it sees, and a digest of the files it reads (COPY and ADD:
content and metadata of every source file; a stage or image source: that state's key). A
base's key names exactly what the stage starts from: an image's manifest digest, ``scratch``
and the platform, or the key of the stage it is built on. The parts are kept in the cache
record, so that a miss can be explained against the records made on the same parent.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..image.digest import Sha256, sha256_digest
from ..store.cache import CacheRecord

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class CacheKey:
    """What a step's cache key is made of; ``digest`` is the key."""

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
    h = Sha256()
    for path in sorted(entries):
        h.update(f"{path}\0{entries[path]}\n".encode("utf-8", "surrogateescape"))
    return f"sha256:{h.hexdigest()}"


def explain_miss(key: CacheKey, files: Mapping[str, str],
                 earlier: Sequence[CacheRecord], shown: str | None = None) -> str | None:
    """Why ``key`` missed, compared with the closest of the records made on the same parent.

    ``earlier`` are those records, newest first; ``files`` the step's per-file digests;
    ``shown`` the instruction as written (records keep theirs as ``extra["step"]``). The
    closest record is one of the same instruction (else the most similar one) with the
    fewest build args and files changed; the newest wins a tie. None when there is nothing
    to compare with (a parent never built on before).
    """
    if not earlier:
        return None
    closest = min(earlier, key=lambda record: _distance(key, files, record))
    parts = closest.parts
    if parts.get("instruction") != key.instruction:
        was = closest.extra.get("step")
        if not isinstance(was, str):
            return "the instruction changed"
        if was == shown:   # written the same: a variable it uses has another value
            return f"the instruction changed: its variables expand differently ({was})"
        return f"the instruction changed (was: {was})"
    if [list(p) for p in key.args] != parts.get("args"):
        old = _args(parts)
        changed = sorted({k for k, v in key.args if old.get(k) != v}
                         | (set(old) - {k for k, _ in key.args}))
        return "build args changed: " + ", ".join(changed)
    if key.files != parts.get("files"):
        old_files = closest.extra.get("files") or {}
        if not files and not old_files:
            return "the stage or image it copies from changed"
        return _files_changed(files, old_files)
    return None


def _args(parts: Mapping[str, Any]) -> dict[str, str]:
    return {p[0]: p[1] for p in parts.get("args") or () if len(p) == 2}


def _distance(key: CacheKey, files: Mapping[str, str], record: CacheRecord) -> tuple:
    """How far a record is from the step: instruction first, then args, then files."""
    parts = record.parts
    instruction = parts.get("instruction")
    if instruction != key.instruction:
        import difflib   # only to explain a miss: a build that hits does not load it

        similar = difflib.SequenceMatcher(None, str(instruction), key.instruction).ratio()
        return (1, -similar, 0, 0)
    old = _args(parts)
    args = sum(old.get(k) != v for k, v in key.args) + len(set(old) - dict(key.args).keys())
    old_files = record.extra.get("files") or {}
    changed = sum(old_files.get(p) != d for p, d in files.items()) + \
        len(old_files.keys() - files.keys())
    return (0, 0.0, args, changed)


def _files_changed(new: Mapping[str, str], old: Mapping[str, str]) -> str:
    """``2 files changed: a.py, b.py; 1 file added: c.py (of 12 files)``: a few names and
    the counts."""
    changed = [p for p in sorted(new) if p in old and old[p] != new[p]]
    added = [p for p in sorted(new) if p not in old]
    removed = [p for p in sorted(old) if p not in new]
    parts = []
    for label, paths in (("changed", changed), ("added", added), ("removed", removed)):
        if paths:
            shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
            parts.append(f"{len(paths)} file{'s' if len(paths) > 1 else ''} {label}: {shown}")
    if not parts:
        return "the source files changed"
    # Directories are entries too ("d755" in context.py's digests), not counted as files.
    count = sum(not digest.startswith("d") for digest in new.values())
    total = f" (of {count} files)" if count > 1 else ""
    return "; ".join(parts) + total


def _digest(obj: Any) -> str:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_digest(raw.encode("utf-8", "surrogateescape"))
