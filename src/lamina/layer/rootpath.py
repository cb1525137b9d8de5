"""Paths inside a directory tree taken as a root, resolved the way chroot would.

A symlink is followed with its absolute targets and ``..`` taken relative to the root, so no
path ever leads out of it: how a container sees its files, and how COPY and ADD see the build
context. Used by the runtime (``cp``, ``-u`` lookups in /etc/passwd, volume fills) and the
builder (COPY sources).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SYMLINK_HOPS = 40   # as Linux's limit for one lookup (ELOOP)


class SymlinkLoopError(OSError):
    """More symlinks on the way than a lookup allows."""


def resolve_in_root(root: Path, path: str) -> list[str]:
    """The components of ``path`` below ``root`` once its symlinks are followed.

    Components that do not exist are kept as they are (the last one need not exist).
    Raises SymlinkLoopError after MAX_SYMLINK_HOPS symlinks.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        current = root.joinpath(*resolved, part)
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SymlinkLoopError(f"too many levels of symbolic links in {path}")
            target = os.readlink(current)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        else:
            resolved.append(part)
    return resolved
