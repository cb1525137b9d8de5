"""Small JSON side-files under the state root that only speed things up or add detail
(which repositories hold a blob, a layer's compressed twin, RepoDigests).

Each is read without a lock and tolerantly: a missing, damaged or foreign-shaped file reads as
empty, since losing it costs a recompression or a re-upload, never an image. Updates are
read-modify-write under the file's own lock (and the store lock shared, so crash recovery never
removes a temp file in use), written to a temp file and renamed.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .locks import FileLock, atomic_write

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


class JsonRecord:
    def __init__(self, root: Path, name: str, store_lock: FileLock) -> None:
        self.path = Path(root) / f"{name}.json"
        self._lock = FileLock(Path(root) / "locks" / f"{name}.lock")
        self._store_lock = store_lock

    def read(self) -> dict[str, Any]:
        """The file's object; {} when it is missing, damaged or not an object."""
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Replace the content by ``change(content)``, atomically and under the lock."""
        with self._store_lock.shared(), self._lock.exclusive():
            data = change(self.read())
            atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode())
