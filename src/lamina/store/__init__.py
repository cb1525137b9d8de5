"""Everything on disk under the state root: blobs, image names, snapshots, locks, GC."""
from __future__ import annotations


from .root import Store, StoredImage, default_root
from .roots import Roots

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GCResult", "Roots", "Store", "StoredImage", "default_root"]


def __getattr__(name: str) -> Any:
    if name == "GCResult":  # gc.py reads the image model: imported only by who collects
        from .gc import GCResult
        return GCResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
