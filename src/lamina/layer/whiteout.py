"""The two spellings of a deletion: OCI whiteout files in a tar, overlayfs markers on disk.

| meaning                        | layer tar (OCI)       | overlay upper / snapshot dir        |
|--------------------------------|-----------------------|-------------------------------------|
| ``dir/NAME`` was deleted       | ``dir/.wh.NAME`` file | ``dir/NAME``: char device 0:0       |
| lower children of ``dir`` gone | ``dir/.wh..wh..opq``  | xattr ``trusted.overlay.opaque=y``  |

Overlayfs also keeps its own bookkeeping in ``trusted.overlay.*`` xattrs (origin, impure, uuid,
...; ``user.overlay.*`` on a ``userxattr`` mount). Those describe one machine's mount, so they
are never exported into a tar nor taken from one.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "AUFS_META_PREFIX", "OPAQUE_MARKER", "OPAQUE_XATTR", "WHITEOUT_PREFIX",
    "is_opaque", "is_private_xattr", "is_whiteout", "make_whiteout", "mark_opaque",
    "stat_in_layers",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# aufs kept its own entries under this prefix (.wh..wh.plnk/, .wh..wh.aufs); old Docker
# layers still hold them, and they mean nothing here.
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
_PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def is_whiteout(st: os.stat_result) -> bool:
    """True for overlayfs's deletion marker: a character device with device number 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path_or_fd: str | int) -> bool:
    """True when a directory (path, never followed, or open fd) carries the opaque xattr."""
    # A path's last component is never followed; an fd is the file itself (and os refuses
    # follow_symlinks=False with one).
    follow = isinstance(path_or_fd, int)
    try:
        return os.getxattr(path_or_fd, OPAQUE_XATTR, follow_symlinks=follow) == b"y"
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


def is_private_xattr(name: str) -> bool:
    """True for overlayfs's own xattrs, which never travel in a layer."""
    return name.startswith(_PRIVATE_XATTR_PREFIXES)


def make_whiteout(dir_fd: int, name: str) -> None:
    """Create the overlay whiteout for ``name`` in the directory open as ``dir_fd``."""
    os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)


def mark_opaque(dir_fd: int) -> None:
    """Hide every lower layer's children of the directory open as ``dir_fd``."""
    os.setxattr(dir_fd, OPAQUE_XATTR, b"y")


def stat_in_layers(layers: Sequence[Path], rel: str) -> os.stat_result | None:
    """What stacked snapshot dirs (topmost first, overlay form) show at ``rel`` (relative,
    '/'-separated): the lstat of the topmost layer's entry, or None when no layer has it or a
    layer above hides it (a whiteout, a parent that is not a directory, an opaque parent)."""
    parts = rel.split("/")
    for layer in layers:
        opaque = False   # a parent in this layer hides what the layers below hold
        for depth in range(1, len(parts) + 1):
            path = layer.joinpath(*parts[:depth])
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_whiteout(st):
                return None
            if depth == len(parts):
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None
            opaque = opaque or is_opaque(str(path))
        if opaque:
            return None
    return None
