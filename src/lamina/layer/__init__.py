"""Layers as tars and back: diff an overlay upper dir, apply a tar safely, compress on the way.

- ``write_layer(upper, out)`` (diff.py): the upper dir of an overlay mount -> an uncompressed,
  deterministic tar with OCI whiteouts.
- ``apply_layer(tar, target, lowers=...)`` (apply.py): a tar -> an empty snapshot dir in overlay
  form; never writes outside ``target``.
- ``LayerBlobWriter`` / ``open_decompressed`` / ``DigestReader`` (compress.py): gzip, zstd or
  none, with the diff ID and the blob digest computed as bytes pass.

The submodules are imported lazily (``tarfile`` and ``zstandard`` cost start-up time).
"""
from __future__ import annotations

from dataclasses import dataclass

from lamina.errors import LaminaError

__all__ = [
    "BlobInfo", "DigestReader", "LayerBlobWriter", "LayerError", "LayerStats",
    "MOUNT_POINT_LEFTOVERS", "apply_layer", "detect_compression", "open_decompressed",
    "write_layer",
]


class LayerError(LaminaError):
    """A layer that cannot be written or applied; ``entry`` names the offending tar entry."""

    def __init__(self, message: str, *, entry: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.entry = entry

    def location(self) -> str:
        return f"layer entry {self.entry!r}" if self.entry is not None else ""


@dataclass(frozen=True)
class LayerStats:
    """What one layer holds, counted while it was written or applied."""

    entries: int = 0        # tar members, whiteout markers included
    files: int = 0          # regular files (hardlinks are counted apart)
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0       # device nodes and fifos
    whiteouts: int = 0      # .wh.NAME markers
    opaque_dirs: int = 0    # .wh..wh..opq markers
    content_bytes: int = 0  # sum of the regular files' sizes
    tar_bytes: int = 0      # length of the uncompressed tar stream


_LAZY = {
    "write_layer": "diff", "MOUNT_POINT_LEFTOVERS": "diff",
    "apply_layer": "apply",
    "BlobInfo": "compress", "DigestReader": "compress", "LayerBlobWriter": "compress",
    "detect_compression": "compress", "open_decompressed": "compress",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.layer' has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f"{__name__}.{module}"), name)
