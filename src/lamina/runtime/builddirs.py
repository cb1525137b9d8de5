"""The directories of builds in flight, ``<state root>/builds/<id>/``, and their clean-up.

A build's RUN steps are containers, so a build directory may hold overlay mounts; a build
killed on the way leaves its directory unlocked (store.locks.is_abandoned). Both the builder
(at the end of a build) and the containers' sweep (after a kill) remove them through here, so
that runtime/ never imports build/.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .mountinfo import mount_points

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..store import Store


def remove_abandoned_builds(store: "Store") -> None:
    """Remove what builds killed on the way left behind (their directory is unlocked)."""
    from ..store.locks import is_abandoned

    parent = store.root / "builds"
    if not parent.is_dir():
        return
    candidates = [p for p in parent.iterdir() if p.is_dir() and is_abandoned(p)]
    if candidates:
        with store.lock.exclusive():   # no build is between making and locking its dir
            for path in candidates:
                if is_abandoned(path):
                    remove_build_dir(path)


def remove_build_dir(path: Path) -> None:
    """Remove a build's directory, after unmounting anything left mounted below it (never
    walk into a mount: that would delete through it)."""
    with open("/proc/self/mountinfo") as f:
        mounts = mount_points(f.read())
    below = sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True)
    if below:
        from .rootfs import unmount     # here: a build that mounted nothing need not load ctypes
        for mount in below:
            unmount(Path(mount))
    if not any(os.path.ismount(m) for m in below):
        shutil.rmtree(path, ignore_errors=True)
