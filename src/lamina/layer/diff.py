"""Diff: an overlay upper directory -> an uncompressed layer tar (POSIX/PAX).

Only the upper dir is walked, never the lowers: everything a container changed is there, so the
cost follows the size of the change, not of the image. Overlay markers become OCI whiteouts
(see whiteout.py).

The tar is deterministic: depth-first, each directory before its contents, inside a directory
the opaque marker first, then the whiteouts, then the other entries, each group sorted by the
bytes of the name (OCI asks for whiteouts before their siblings). Headers hold no user or group
names and no atime/ctime; mtimes are whole seconds, clamped to ``source_date_epoch`` when given.
Two walks of the same upper dir give the same bytes.
"""
from __future__ import annotations

import os
import stat
import tarfile
from collections import Counter
from collections.abc import Container, Iterator
from pathlib import Path
from typing import BinaryIO

from lamina.layer import LayerError, LayerStats
from lamina.layer.whiteout import (
    OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, is_private_xattr, is_whiteout,
)

__all__ = ["MOUNT_POINT_LEFTOVERS", "write_layer"]

# Files the runtime bind-mounts over; when the mount target was missing, crun leaves an empty
# file in the upper dir. Docker leaves these out of committed layers; pass this as ``exclude``.
MOUNT_POINT_LEFTOVERS = frozenset({"etc/hosts", "etc/resolv.conf", "etc/hostname"})

_CHUNK = 1 << 20        # file read size
_COALESCE = 64 << 10    # writes smaller than this are gathered into one larger write
_ZEROS = bytes(1024)    # padding, and the end-of-archive marker (two zero blocks)

# Overlay features that leave a file's data or a directory's contents in a lower layer; an
# upper dir made with them cannot be exported by walking it alone.
_UNSUPPORTED_XATTRS = {
    "trusted.overlay.metacopy": "metacopy=on",
    "trusted.overlay.redirect": "redirect_dir=on",
}


def write_layer(upper: Path, out: BinaryIO, *, exclude: Container[str] = (),
                source_date_epoch: int | None = None) -> LayerStats:
    """Write the changes recorded in an overlay ``upper`` dir to ``out`` as a layer tar.

    ``out`` only needs ``write`` (for example a ``LayerBlobWriter``). ``exclude`` holds
    relative POSIX paths (``"etc/hosts"``) left out when they are mount-point leftovers: an
    empty regular file or an empty directory. The mount must be gone or quiet: a file that
    shrinks while it is read is a ``LayerError``.
    """
    walker = _Walker(_TarOut(out), exclude, source_date_epoch)
    walker.walk(str(upper))
    return walker.finish()


class _TarOut:
    """The tar byte stream: gathers small writes so the sink sees few, large ones."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pending = bytearray()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if len(data) >= _COALESCE:
            self.flush()
            self._out.write(data)
        else:
            self._pending += data
            if len(self._pending) >= _CHUNK:
                self.flush()

    def flush(self) -> None:
        if self._pending:
            self._out.write(self._pending)
            self._pending.clear()


class _Walker:
    def __init__(self, out: _TarOut, exclude: Container[str], sde: int | None) -> None:
        self._out = out
        self._exclude = exclude
        self._sde = sde
        self._links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first name written
        self._counts: Counter[str] = Counter()
        self._buf = bytearray(_CHUNK)

    def walk(self, upper: str) -> None:
        # An explicit stack, not recursion: a deep tree must not hit Python's recursion limit.
        stack = [self._children(upper, "")]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            path, rel, st = child
            try:
                if self._entry(path, rel, st):
                    stack.append(self._children(path, rel + "/"))
            except OSError as err:
                raise LayerError(f"cannot read {path!r}: {err.strerror or err}", entry=rel) from err

    def finish(self) -> LayerStats:
        self._out.write(_ZEROS)
        self._out.flush()
        return LayerStats(**self._counts, tar_bytes=self._out.size)

    def _children(self, path: str, prefix: str) -> Iterator[tuple[str, str, os.stat_result]]:
        """Write the whiteouts of one directory; yield its other entries, sorted."""
        with os.scandir(path) as it:
            entries = sorted((os.fsencode(e.name), e.name, e.stat(follow_symlinks=False))
                             for e in it)
        rest = []
        for _, name, st in entries:
            if is_whiteout(st):
                self._marker(prefix + WHITEOUT_PREFIX + name, st)
                self._counts["whiteouts"] += 1
            else:
                rest.append((os.path.join(path, name), prefix + name, st))
        return iter(rest)

    def _entry(self, path: str, rel: str, st: os.stat_result) -> bool:
        """Write one entry; True when it is a directory to walk into."""
        if rel in self._exclude and _is_leftover(path, st):
            return False
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)  # keeps setuid, setgid and sticky
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = self._mtime(st)
        mode = st.st_mode
        # Same inode seen before under another name: a hardlink to that name. (Whiteouts share
        # one inode too, but they were written as markers before reaching here.)
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            first = self._links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self._header(info, "hardlinks")
                return False
        xattrs, opaque = _read_xattrs(path, rel)
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                            for k, v in sorted(xattrs.items())}
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self._header(info, "dirs")
            if opaque:
                self._marker(f"{rel}/{OPAQUE_MARKER}", st)
                self._counts["opaque_dirs"] += 1
            return True
        if stat.S_ISREG(mode):
            info.size = st.st_size
            self._header(info, "files")
            self._copy(path, rel, st.st_size)
            self._counts["content_bytes"] += st.st_size
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            self._header(info, "symlinks")
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self._header(info, "specials")
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self._header(info, "specials")
        # Sockets cannot be stored in a tar; like Docker, leave them out.
        return False

    def _mtime(self, st: os.stat_result) -> int:
        seconds = st.st_mtime_ns // 1_000_000_000
        return seconds if self._sde is None else min(seconds, self._sde)

    def _marker(self, name: str, st: os.stat_result) -> None:
        """An OCI whiteout or opaque marker: an empty regular file."""
        info = tarfile.TarInfo(name)
        info.mode = 0o600
        info.mtime = self._mtime(st)
        self._header(info, None)

    def _header(self, info: tarfile.TarInfo, kind: str | None) -> None:
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self._counts["entries"] += 1
        if kind:
            self._counts[kind] += 1

    def _copy(self, path: str, rel: str, size: int) -> None:
        view = memoryview(self._buf)
        # O_NOFOLLOW: it was a regular file when listed; never read through a swapped-in symlink.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as f:
            remaining = size
            while remaining:
                n = f.readinto(view[:min(remaining, _CHUNK)])
                if not n:
                    raise LayerError(f"{path!r} shrank while the layer was written", entry=rel,
                                     hint="stop every process that writes to the container "
                                          "before committing it")
                self._out.write(view[:n])
                remaining -= n
        self._out.write(_ZEROS[:-size % 512])


def _read_xattrs(path: str, rel: str) -> tuple[dict[str, bytes], bool]:
    """The xattrs to export, and whether the entry is an opaque directory."""
    exported: dict[str, bytes] = {}
    opaque = False
    for name in os.listxattr(path, follow_symlinks=False):
        if not is_private_xattr(name):
            exported[name] = os.getxattr(path, name, follow_symlinks=False)
        elif name == OPAQUE_XATTR:
            opaque = os.getxattr(path, name, follow_symlinks=False) == b"y"
        elif name in _UNSUPPORTED_XATTRS:
            raise LayerError(f"the overlay was mounted with {_UNSUPPORTED_XATTRS[name]}; "
                             "its upper dir does not hold the whole change", entry=rel,
                             hint="mount the overlay with metacopy=off,redirect_dir=off")
    return exported, opaque


def _is_leftover(path: str, st: os.stat_result) -> bool:
    """An empty file or directory: what a runtime leaves behind as a bind-mount target."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as it:
            return next(it, None) is None
    return False
