"""The container's root file system: an overlay of the image's layers plus a private upper dir.

Ways to mount it (PLATFORM.md section 2), in the order tried:
- the classic mount(2) option string with absolute paths, as long as it fits in one page (the
  kernel cuts it off there silently): one call, and as fast as the new API (both about 0.1 ms
  for 1 to 16 layers here; the new API's one syscall per layer makes it slower beyond);
- the new mount API (fsopen/fsconfig/fsmount/move_mount), with one `lowerdir+` per layer and
  no length limit (kernel 6.8 or later);
- on older kernels, the option string with paths relative to the layers' common parent,
  after chdir() there: this fits many more layers (the kernel's limit is 500).

The overlay is always mounted read-write: crun creates the mount points it needs (/etc/hosts
...) in it, and makes the root read-only itself for --read-only (`root.readonly` in the spec).
redirect_dir, metacopy and index are pinned off so that an upper dir holds only plain files,
whiteouts and opaque dirs, whatever the host's defaults: layer diffs read nothing else.
`volatile` (for a container that goes when it exits, as podman does for --rm) skips overlay's
syncs: without it, the unmount syncs the whole upper file system, 50-150 ms here while other
processes write to the disk.
"""
from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import ContainerError

PAGE = 4096
PINNED_OPTIONS = (("index", "off"), ("redirect_dir", "off"), ("metacopy", "off"))

_libc = ctypes.CDLL(None, use_errno=True)
_chdir_lock = threading.Lock()    # chdir() is process-wide
_new_api: bool | None = None      # unknown until first tried

# The new mount API's syscall numbers are the same on every architecture (alpha aside).
SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 429, 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 0, 1, 6
MOVE_MOUNT_F_EMPTY_PATH = 4
AT_FDCWD = -100
MNT_DETACH = 2


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def _syscall(nr: int, *args) -> int:
    ret = _libc.syscall(nr, *args)
    if ret < 0:
        raise _oserror(f"syscall {nr}")
    return ret


def _mount_new_api(lowers: Sequence[Path], upper: Path, work: Path, target: Path,
                   volatile: bool = False) -> None:
    fs = _syscall(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    try:
        def put(key: str, value: str) -> None:
            _syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0)
        for key, value in PINNED_OPTIONS:
            put(key, value)
        if volatile:
            _syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_FLAG, b"volatile", None, 0)
        for d in lowers:
            put("lowerdir+", str(d))
        put("upperdir", str(upper))
        put("workdir", str(work))
        _syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0)
        mnt = _syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, 0)
    finally:
        os.close(fs)
    try:
        _syscall(SYS_MOVE_MOUNT, mnt, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(mnt)


def _escape(path: str) -> str:
    """Escape the option string's separators (',' between options, ':' between layers)."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _options(lowers: Sequence[str], upper: str, work: str, volatile: bool = False) -> bytes:
    pinned = ",".join(f"{k}={v}" for k, v in PINNED_OPTIONS) + (",volatile" if volatile else "")
    lower = ":".join(_escape(d) for d in lowers)
    return os.fsencode(f"{pinned},lowerdir={lower},upperdir={_escape(upper)},"
                       f"workdir={_escape(work)}")


def _mount_classic(options: bytes, target: Path) -> None:
    if len(options) >= PAGE:              # never let the kernel cut the string off
        raise ContainerError(f"too many layers for one overlay mount ({len(options)} bytes of "
                             "options, the limit is one page)",
                             hint="a kernel of 6.8 or later mounts any number of layers")
    if _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options) != 0:
        raise _oserror(f"mount overlay on {target}")


def _mount_relative(lowers: Sequence[Path], upper: Path, work: Path, target: Path,
                    volatile: bool = False) -> None:
    base = os.path.commonpath([str(d) for d in lowers])
    rel = [os.path.relpath(d, base) for d in lowers]
    options = _options(rel, os.path.relpath(upper, base), os.path.relpath(work, base), volatile)
    target = target.absolute()
    with _chdir_lock:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.chdir(base)
            _mount_classic(options, target)
        finally:
            os.fchdir(cwd)
            os.close(cwd)


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path, *,
                  volatile: bool = False) -> None:
    """Mount `lowers` (topmost first) + `upper` at `target`; `work` is overlay's scratch dir.
    `volatile`: no syncs, for an upper dir that is thrown away after use (it may not survive a
    crash, and `work` cannot be mounted again)."""
    global _new_api
    if not lowers:
        raise ContainerError("an overlay needs at least one lower directory")
    try:
        options = _options([str(d) for d in lowers], str(upper), str(work), volatile)
        if len(options) < PAGE:
            _mount_classic(options, target)
            return
        if _new_api is not False:
            try:
                _mount_new_api(lowers, upper, work, target, volatile)
                _new_api = True
                return
            except OSError as e:
                # Kernels before 6.8 reject "lowerdir+" (EINVAL); before 5.2 there is no fsopen.
                if _new_api or e.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                _new_api = False
        _mount_relative(lowers, upper, work, target, volatile)
    except OSError as e:
        if volatile and e.errno == errno.EINVAL:    # kernels before 5.10: no "volatile"
            mount_overlay(lowers, upper, work, target)
            return
        raise ContainerError(f"cannot mount the root file system: {e}") from e


def unmount(target: Path) -> None:
    """Unmount `target`; detach it lazily if something still holds it."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    e = ctypes.get_errno()
    if e == errno.EBUSY and _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
        return
    if e not in (errno.EINVAL, errno.ENOENT):   # EINVAL: not a mount point (any more)
        raise ContainerError(f"cannot unmount {target}: {os.strerror(e)}")


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of `path` inside the tree at `root`, symlinks followed as chroot would.

    Absolute symlinks and ".." are taken relative to `root` and never leave it. The last
    component need not exist.
    """
    from ..layer.rootpath import SymlinkLoopError, resolve_in_root as resolve_parts

    try:
        return root.joinpath(*resolve_parts(root, path))
    except SymlinkLoopError as err:
        raise ContainerError(str(err)) from None


def make_dir_in_root(root: Path, path: str) -> None:
    """Create directory `path` (and its parents) in the tree at `root`, like `mkdir -p`."""
    host = resolve_in_root(root, path)
    try:
        host.mkdir(mode=0o755, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ContainerError(f"cannot mkdir: {path} is not a directory") from None
