"""Where blobs came from and went to, so a push can mount instead of upload.

``<state root>/registry-blobs.json`` maps a registry host to, per blob digest, the
repositories known to hold it, the most recent first:

    {"registry-1.docker.io": {"sha256:...": ["library/ubuntu", "me/app"]}}

A pull records the repository it read each blob from, a push the one it wrote to. It is a
hint, never trusted: a mount the registry refuses just becomes an upload. It stays small:
a few repositories per blob and the most recently used blobs per registry.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..store.locks import FileLock
from ..store.records import JsonRecord

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

MAX_REPOSITORIES = 4
MAX_BLOBS = 4096


class BlobSources:
    def __init__(self, root: Path, store_lock: FileLock) -> None:
        self._record = JsonRecord(root, "registry-blobs", store_lock)

    def repositories(self, registry: str, digest: str) -> list[str]:
        return list(self._read().get(registry, {}).get(digest, []))

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Note that ``repository`` of ``registry`` holds these blobs."""
        def change(data: dict[str, Any]) -> dict[str, Any]:
            data = _valid(data)
            blobs = data.setdefault(registry, {})
            for digest in digests:
                repos = [repository, *(r for r in blobs.pop(digest, []) if r != repository)]
                blobs[digest] = repos[:MAX_REPOSITORIES]  # re-inserted: now the most recent
            for stale in list(blobs)[:max(0, len(blobs) - MAX_BLOBS)]:
                del blobs[stale]
            return data
        self._record.update(change)

    def _read(self) -> dict[str, dict[str, list[str]]]:
        return _valid(self._record.read())   # a hint only: unreadable is as good as none


def _valid(data: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {host: blobs for host, blobs in data.items() if isinstance(blobs, dict)}
