"""Where blobs came from and went to, so a push can mount instead of upload.

``<state root>/registry-blobs.json`` maps a registry host to, per blob digest, the
repositories known to hold it, the most recent first:

    {"registry-1.docker.io": {"sha256:...": ["library/ubuntu", "me/app"]}}

A pull records the repository it read each blob from, a push the one it wrote to. It is a
hint, never trusted: a mount the registry refuses just becomes an upload. It stays small:
a few repositories per blob and the most recently used blobs per registry.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ..store.locks import FileLock, atomic_write

FILE_NAME = "registry-blobs.json"
MAX_REPOSITORIES = 4
MAX_BLOBS = 4096


class BlobSources:
    def __init__(self, root: Path, store_lock: FileLock) -> None:
        self.path = Path(root) / FILE_NAME
        self._store_lock = store_lock
        self._lock = FileLock(Path(root) / "locks" / "registry-blobs.lock")

    def repositories(self, registry: str, digest: str) -> list[str]:
        return list(self._read().get(registry, {}).get(digest, []))

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Note that ``repository`` of ``registry`` holds these blobs."""
        with self._store_lock.shared(), self._lock.exclusive():
            data = self._read()
            blobs = data.setdefault(registry, {})
            for digest in digests:
                repos = [repository, *(r for r in blobs.pop(digest, []) if r != repository)]
                blobs[digest] = repos[:MAX_REPOSITORIES]  # re-inserted: now the most recent
            for stale in list(blobs)[:max(0, len(blobs) - MAX_BLOBS)]:
                del blobs[stale]
            atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode())

    def _read(self) -> dict[str, dict[str, list[str]]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}  # a hint only: an unreadable file is as good as none
        if not isinstance(data, dict):
            return {}
        return {host: blobs for host, blobs in data.items() if isinstance(blobs, dict)}
