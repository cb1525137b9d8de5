"""Snapshots a COPY left for later, made from its sources only when a later step needs them.

A COPY writes its regular files straight from the sources into the layer tar (one read of
each file); its upper dir then holds only the directories and the other entries. When a
later step of the same build stacks on that layer (a RUN, a COPY --from of the stage), the
snapshot is made from that upper dir plus a copy of each source file, which is cheaper than
unpacking the tar. A source that changed since it went into the tar (size or mtime) makes
``materialize`` give up, and the caller unpacks the layer from its blob instead, so the
snapshot always holds what the layer holds. When no step needs it, the snapshot is not made
at all: ``lamina run`` unpacks the image's missing layers. A small COPY (``is_small``)
makes its snapshot at once, which costs little and keeps its unpacked size known.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..layer.diff import SourcedFile, SourcedFiles
    from ..store.snapshots import Snapshotter

_COPY_CHUNK = 1 << 30
# A COPY up to this size makes its snapshot at once: the second copy costs little then.
SMALL_FILES = 256
SMALL_BYTES = 16 << 20


@dataclass(frozen=True)
class PendingSnapshot:
    """A COPY's layer whose snapshot is not made yet."""

    upper: Path                 # the COPY's upper dir, kept in the build's directory
    files: "SourcedFiles"       # the files the layer read from their sources
    parent: str | None          # chain ID of the layers below
    diff_id: str
    size: int                   # content bytes, for the snapshot's metadata


def is_small(pending: PendingSnapshot) -> bool:
    count = sum(len(files) for files in pending.files.values())
    return count <= SMALL_FILES and pending.size <= SMALL_BYTES


def materialize(snapshots: "Snapshotter", chain_id: str, pending: PendingSnapshot) -> bool:
    """Make snapshot ``chain_id`` from ``pending``; False (nothing made) when a source file
    changed since the layer was written."""
    staging = snapshots.prepare(chain_id)
    try:
        os.rmdir(staging)
        os.rename(pending.upper, staging)
        for rel, files in pending.files.items():
            directory = os.path.join(staging, rel) if rel else str(staging)
            times = os.lstat(directory)
            for name, file in files.items():
                if not _copy_unchanged(file, os.path.join(directory, name)):
                    snapshots.abort(staging)
                    return False
            # writing the files moved the directory's mtime: back to what the layer says
            os.utime(directory, ns=(times.st_atime_ns, times.st_mtime_ns))
    except BaseException:
        snapshots.abort(staging)
        raise
    snapshots.commit(staging, chain_id, pending.parent, pending.diff_id, pending.size)
    return True


def _copy_unchanged(file: "SourcedFile", target: str) -> bool:
    """Copy ``file`` to ``target`` (a whiteout there is replaced) with its header's owner,
    mode and mtime; False when the source is not the one the layer read."""
    try:
        src = os.open(file.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (
                file.size, file.mtime_ns):
            return False
        if os.path.lexists(target):   # the whiteout of a lower file the COPY replaced
            os.unlink(target)
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if not _copy_data(src, dst, file.size):
                return False   # shrank meanwhile
            os.fchown(dst, file.uid, file.gid)
            os.fchmod(dst, file.mode)   # after chown, which clears setuid bits
            os.utime(dst, ns=(file.mtime_ns, file.mtime_ns))
        finally:
            os.close(dst)
        return True
    finally:
        os.close(src)


def _copy_data(src: int, dst: int, size: int) -> bool:
    """Copy ``size`` bytes in the kernel, no bytes through Python; False if the source ends
    first. copy_file_range refuses some pairs of file systems (an overlay source): sendfile
    takes any."""
    copy = os.copy_file_range
    done = 0
    while done < size:
        try:
            n = copy(src, dst, min(size - done, _COPY_CHUNK))
        except OSError as err:
            if copy is _sendfile or err.errno not in (
                    errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            copy = _sendfile
            continue
        if n == 0:
            return False
        done += n
    return True


def _sendfile(src: int, dst: int, count: int) -> int:
    return os.sendfile(dst, src, None, count)
