"""Everything on disk under the state root: blobs, image names, snapshots, locks, GC."""
from __future__ import annotations

from .gc import GCResult, Roots
from .root import Store, StoredImage, default_root

__all__ = ["GCResult", "Roots", "Store", "StoredImage", "default_root"]
