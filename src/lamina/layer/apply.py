"""Apply: one layer tar -> its own empty snapshot directory, in overlayfs form, safely.

The result is meant to be stacked as a lowerdir above the earlier layers' snapshot dirs:
``dir/.wh.NAME`` becomes the whiteout ``dir/NAME`` (char device 0:0) and
``dir/.wh..wh..opq`` becomes ``trusted.overlay.opaque=y`` on ``dir``.

Safety: a layer never writes outside ``target``.
- Names are checked and normalised lexically first: absolute names, names that climb out
  (``../x``, ``a/../../x``), NUL bytes and empty names are refused; ``a/../b`` is ``b``.
- Every write goes through directory fds opened one component at a time with O_NOFOLLOW from
  the target's own fd, so no symlink is ever followed, whatever the tar holds.
- A write under a path that the stacked view shows as a symlink is refused, whether the
  symlink is in this layer or, looked up through ``lowers`` with their whiteouts and opaque
  dirs, in an earlier one (unless this layer put a real directory there first). Docker's
  naive apply would silently shadow such a symlink; BuildKit would resolve it; both change
  what the user meant, so it is an error here.
- Hardlinks must name an entry this layer already holds, reached without a symlink.
Refusals are ``LayerError`` naming the entry. The target is then left partial: the caller
removes it (the store applies into a temporary dir and renames it only on success).

Needs root (or CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN for trusted.* xattrs).
"""
from __future__ import annotations

import errno
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import LaminaError
from lamina.layer import LayerError, LayerStats
from lamina.layer.whiteout import (
    AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX, is_opaque, is_private_xattr, is_whiteout,
    make_whiteout, mark_opaque,
)

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["apply_layer"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_ROOM_CHECK_FROM = 64 << 20   # files at least this large are checked against the free space
_XATTR_PAX = "SCHILY.xattr."
# Directory fds held along the current path; below this depth only the deepest is held, so a
# pathologically deep tree cannot exhaust the fd limit (often 1024).
_MAX_HELD_FDS = 64
_READ_AHEAD = 8  # chunks of _CHUNK bytes read ahead of the tar parser


def apply_layer(tar_stream: BinaryIO, target: Path, *,
                lowers: Sequence[Path] = ()) -> LayerStats:
    """Extract the uncompressed layer ``tar_stream`` into the empty directory ``target``.

    ``lowers`` are the snapshot dirs of the layers below, topmost first; they are only read,
    to find symlinks a write would go through and the attributes of parent directories the
    tar does not list. The stream is read forward once, to its very end, so a
    ``DigestReader`` around it sees every byte: check its digest against the diff ID.
    The stream is read on a worker thread (decompression and hashing overlap the writes
    here); it is done with when this returns or raises.
    """
    applier = _Applier(Path(target), [os.fspath(p) for p in lowers])
    stream = _ReadAhead(tar_stream)
    entry = None
    try:
        # "r:" rather than the stream mode "r|": tarfile then reads file data straight from
        # ``stream`` in large reads (its stream mode copies it through a 10 KB buffer);
        # ``stream`` seeks forward only, which is all tarfile does reading in order.
        with tarfile.open(fileobj=stream, mode="r:", encoding="utf-8",
                          errors="surrogateescape") as tf:
            while (member := tf.next()) is not None:
                entry = member.name
                applier.apply(member, tf)
                # tarfile keeps every member read; drop them so memory stays flat.
                tf.members.clear()
        entry = None
        applier.finish()
        while stream.read(_CHUNK):  # padding after the end-of-archive blocks
            pass
    except tarfile.TarError as err:
        raise LayerError(f"not a valid layer tar: {err}", entry=entry) from err
    except OSError as err:
        raise LayerError(f"cannot apply the layer: {err.strerror or err}",
                         entry=entry) from err
    except (ValueError, OverflowError) as err:  # a huge uid or mtime, a NUL in an xattr name
        raise LayerError(f"a header value the system cannot take: {err}", entry=entry) from err
    finally:
        applier.close()
        stream.close()
    return LayerStats(**applier.counts, tar_bytes=stream.size)


class _ReadAhead:
    """Reads ``fileobj`` on a worker thread, a bounded number of chunks ahead of the reader."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_READ_AHEAD)
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._eof = False
        self.size = 0
        self._thread = threading.Thread(target=self._run, args=(fileobj,),
                                        name="layer-read-ahead", daemon=True)
        self._thread.start()

    def _run(self, fileobj: BinaryIO) -> None:
        try:
            while not self._stop.is_set():
                data = fileobj.read(_CHUNK)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as err:  # raised again in the reading thread
            self._queue.put(err)

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes, fewer only at the end (tarfile takes a short read for a cut tar)."""
        if size is None or size < 0:
            size = 1 << 62
        parts = []
        while size > 0 and self._next_chunk():
            data = self._chunk[:size]
            self._chunk = self._chunk[len(data):]
            parts.append(data)
            size -= len(data)
        data = b"".join(parts) if len(parts) != 1 else parts[0].tobytes()
        self.size += len(data)
        return data

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = 0) -> int:
        """Forward only, by reading (tarfile skips what it does not read this way)."""
        target = offset + self.size if whence == 1 else offset
        if whence not in (0, 1) or target < self.size:
            raise tarfile.StreamError("seeking backwards in a layer stream")
        while self.size < target and self._next_chunk():
            skipped = self._chunk[:target - self.size]
            self._chunk = self._chunk[len(skipped):]
            self.size += len(skipped)
        return self.size

    def _next_chunk(self) -> bool:
        """Make ``_chunk`` non-empty; False at the end of the stream."""
        while not self._chunk:
            if self._eof:
                return False
            item = self._queue.get()
            if isinstance(item, LaminaError):
                raise item
            if isinstance(item, BaseException):
                # A decompressor's or a network's error: the stream, not an entry, is bad.
                raise LayerError(f"cannot read the layer stream: {item}") from item
            if not item:
                self._eof = True
                return False
            self._chunk = memoryview(item)
        return True

    def close(self) -> None:
        """Stop the worker: unblock it if the queue is full, then wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


@dataclass
class _Dir:
    """An open directory of the target on the path to the current entry."""

    name: str
    fd: int
    lowers_visible: bool  # may the lowers still show entries below it?


def _clean(name: str, entry: str, what: str = "path") -> tuple[str, ...]:
    """A tar name as path components inside the target; () is the target itself."""
    if not name:
        raise LayerError(f"empty {what}", entry=entry)
    if "\0" in name:
        raise LayerError(f"NUL byte in the {what}", entry=entry)
    if name.startswith("/"):
        raise LayerError(f"absolute {what} {name!r}", entry=entry)
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        raise LayerError(f"{what} {name!r} climbs out of the layer", entry=entry)
    return () if norm == "." else tuple(norm.split("/"))


class _Applier:
    def __init__(self, target: Path, lowers: list[str]) -> None:
        self._lowers = lowers
        self._stack = [_Dir("", os.open(target, _DIR_FLAGS), bool(lowers))]
        self._dir_times: dict[tuple[str, ...], int] = {}  # set last: writes inside change them
        self._root_opaque = False
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        for d in self._stack:
            if d.fd >= 0:
                os.close(d.fd)
        self._stack.clear()

    # -- entries -------------------------------------------------------------------------

    def apply(self, m: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        entry = m.name
        parts = _clean(m.name, entry)
        self.counts["entries"] += 1
        if any(p.startswith(AUFS_META_PREFIX) and p != OPAQUE_MARKER for p in parts):
            return  # aufs bookkeeping (.wh..wh.plnk/, .wh..wh.aufs): not a change
        for part in parts[:-1]:
            if part.startswith(WHITEOUT_PREFIX):
                raise LayerError("a whiteout name used as a directory", entry=entry)
        if not parts:
            if not m.isdir():
                raise LayerError("the layer root must be a directory", entry=entry)
            self._set_attrs(self._stack[0].fd, ".", m, ())
            self.counts["dirs"] += 1
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._marker(parts, m)
            return
        dir_fd = self._parent(parts[:-1], entry)
        if m.isdir():
            self._dir(dir_fd, base, parts, m)
        elif m.islnk():
            self._hardlink(dir_fd, base, parts, m)
        elif m.isreg():
            self._replace(dir_fd, base, parts)
            self._file(dir_fd, base, m, tf)
        elif m.issym():
            if "\0" in m.linkname:
                raise LayerError("NUL byte in the symlink target", entry=entry)
            self._replace(dir_fd, base, parts)
            os.symlink(m.linkname, base, dir_fd=dir_fd)
            self._set_attrs(dir_fd, base, m, parts)
            self.counts["symlinks"] += 1
        elif m.ischr() or m.isblk() or m.isfifo():
            self._special(dir_fd, base, parts, m)
        else:
            raise LayerError(f"unsupported tar entry type {m.type!r}", entry=entry)

    def _marker(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        base, entry = parts[-1], m.name
        if not m.isreg():
            raise LayerError("a whiteout marker must be a regular file", entry=entry)
        victim = base[len(WHITEOUT_PREFIX):]
        if base != OPAQUE_MARKER and victim in ("", ".", ".."):
            raise LayerError(f"whiteout {base!r} names no entry", entry=entry)
        dir_fd = self._parent(parts[:-1], entry)
        if base == OPAQUE_MARKER:
            self.counts["opaque_dirs"] += 1
            self._stack[-1].lowers_visible = False
            if len(parts) == 1:
                # overlayfs ignores the opaque xattr on a layer's root: see finish().
                self._root_opaque = True
            else:
                mark_opaque(dir_fd)
            return
        self.counts["whiteouts"] += 1
        st = _lstat(dir_fd, victim)
        if st is None:
            make_whiteout(dir_fd, victim)
            # The marker's mtime, so that diffing this snapshot gives back the same tar.
            mtime = int(m.mtime * 1_000_000_000)
            os.utime(victim, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
        elif stat.S_ISDIR(st.st_mode):
            # OCI: a whiteout never hides what this same layer holds, only the lowers. For a
            # directory of this layer that is exactly what opaque means.
            fd = os.open(victim, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                mark_opaque(fd)
            finally:
                os.close(fd)
        # Any other entry of this layer already hides the lowers' entry of that name.

    def _dir(self, dir_fd: int, base: str, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        st = _lstat(dir_fd, base)
        if st is None or not stat.S_ISDIR(st.st_mode):
            if st is not None:
                self._replace(dir_fd, base, parts)
            os.mkdir(base, 0o700, dir_fd=dir_fd)
            if st is not None and is_whiteout(st):
                # This layer deleted the lowers' entry and made a new directory: opaque.
                fd = os.open(base, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    mark_opaque(fd)
                finally:
                    os.close(fd)
        self._set_attrs(dir_fd, base, m, parts)
        self.counts["dirs"] += 1

    def _file(self, dir_fd: int, base: str, m: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
        with open(fd, "wb") as out:
            if m.issparse():
                # Write only the data regions and leave the holes as holes: a sparse entry may
                # claim terabytes with a few real bytes, and copying its zeros would fill the disk.
                # The archive stores the regions one after another, so they are read in order
                # from the stream itself (tarfile's reader cannot seek a stream).
                tf.fileobj.seek(m.offset_data)  # (forward only: where the data starts)
                for offset, size in m.sparse or ():
                    out.seek(offset)
                    _copy_exactly(tf.fileobj, out, size, m.name)
                out.truncate(m.size)
            else:
                _check_room(out.fileno(), m)
                # Straight from the stream, in large reads (extractfile adds two layers of
                # buffering); tarfile seeks past the padding itself.
                tf.fileobj.seek(m.offset_data)
                _copy_exactly(tf.fileobj, out, m.size, m.name)
        self._set_attrs(dir_fd, base, m, ())
        self.counts["files"] += 1
        self.counts["content_bytes"] += m.size

    def _special(self, dir_fd: int, base: str, parts: tuple[str, ...],
                 m: tarfile.TarInfo) -> None:
        if m.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
            if kind == stat.S_IFCHR and dev == 0:
                raise LayerError("a character device 0:0 reads as a whiteout in overlayfs",
                                 entry=m.name, hint="delete files with .wh. markers")
        self._replace(dir_fd, base, parts)
        os.mknod(base, kind | 0o600, dev, dir_fd=dir_fd)
        self._set_attrs(dir_fd, base, m, parts)
        self.counts["specials"] += 1

    def _hardlink(self, dir_fd: int, base: str, parts: tuple[str, ...],
                  m: tarfile.TarInfo) -> None:
        entry = m.name
        src = _clean(m.linkname, entry, "hardlink target")
        if not src:
            raise LayerError("hardlink to the layer root", entry=entry)
        src_dir = self._open_existing(src[:-1], entry)
        try:
            st = _lstat(src_dir, src[-1])
            if st is None or is_whiteout(st):
                raise LayerError(f"hardlink target {m.linkname!r} is not in this layer",
                                 entry=entry)
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"hardlink to the directory {m.linkname!r}", entry=entry)
            if parts == src:
                return  # a link to itself: already there
            self._replace(dir_fd, base, parts)
            # follow_symlinks=False: a link to a symlink links the symlink itself.
            os.link(src[-1], base, src_dir_fd=src_dir, dst_dir_fd=dir_fd,
                    follow_symlinks=False)
        finally:
            os.close(src_dir)
        self.counts["hardlinks"] += 1

    # -- finishing -----------------------------------------------------------------------

    def finish(self) -> None:
        if self._root_opaque:
            self._hide_lowers_at_root()
        # Directory mtimes last: creating their contents changed them.
        for parts in sorted(self._dir_times):
            dir_fd = self._parent(parts[:-1], "/".join(parts)) if parts else self._stack[0].fd
            mtime = self._dir_times[parts]
            os.utime(parts[-1] if parts else ".", ns=(mtime, mtime), dir_fd=dir_fd,
                     follow_symlinks=False)

    def _hide_lowers_at_root(self) -> None:
        """A root opaque marker, spelled out: whiteouts or opaque dirs for every lower name."""
        root = self._stack[0].fd
        seen: set[str] = set()
        for lower in self._lowers:
            for name in os.listdir(lower):
                if name in seen:
                    continue
                seen.add(name)
                if is_whiteout(os.lstat(os.path.join(lower, name))):
                    continue  # already hidden by the lowers themselves
                st = _lstat(root, name)
                if st is None:
                    make_whiteout(root, name)
                elif stat.S_ISDIR(st.st_mode):
                    fd = os.open(name, _DIR_FLAGS, dir_fd=root)
                    try:
                        mark_opaque(fd)
                    finally:
                        os.close(fd)

    # -- paths ---------------------------------------------------------------------------

    def _parent(self, parts: tuple[str, ...], entry: str) -> int:
        """The fd of directory ``parts``, made when missing; never through a symlink.

        The chain of open directories to the last entry's parent is kept, so siblings (tars
        are mostly in tree order) cost no system call here.
        """
        stack = self._stack
        keep = 0
        while (keep < len(parts) and keep + 1 < len(stack)
               and stack[keep + 1].name == parts[keep]):
            keep += 1
        for d in stack[keep + 1:]:
            if d.fd >= 0:
                os.close(d.fd)
        del stack[keep + 1:]
        if stack[-1].fd < 0:
            self._reopen_top()
        for i in range(keep, len(parts)):
            child = self._descend(stack[-1], parts[:i + 1], entry)
            if len(stack) > _MAX_HELD_FDS:
                os.close(stack[-1].fd)
                stack[-1].fd = -1
            stack.append(child)
        return stack[-1].fd

    def _reopen_top(self) -> None:
        """Reopen the deepest directory of the path, let go of on a very deep path."""
        stack = self._stack
        base = max(i for i, d in enumerate(stack) if d.fd >= 0)
        fd = stack[base].fd
        for d in stack[base + 1:]:
            # These were checked on the way down; O_NOFOLLOW still guards the reopening.
            nxt = os.open(d.name, _DIR_FLAGS, dir_fd=fd)
            if fd != stack[base].fd:
                os.close(fd)
            fd = nxt
        stack[-1].fd = fd

    def _descend(self, parent: _Dir, parts: tuple[str, ...], entry: str) -> _Dir:
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd)
        except FileNotFoundError:
            return self._implicit_dir(parent, parts, entry)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise LayerError(f"writes through the symlink {'/'.join(parts)!r}",
                                 entry=entry) from None
            if not is_whiteout(st):
                raise LayerError(f"{'/'.join(parts)!r} is not a directory",
                                 entry=entry) from None
            # Deleted from the lowers by this layer, then used as a directory: a new,
            # opaque directory.
            os.unlink(name, dir_fd=parent.fd)
            os.mkdir(name, 0o755, dir_fd=parent.fd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd)
            mark_opaque(fd)
            return _Dir(name, fd, False)
        return _Dir(name, fd, parent.lowers_visible and not is_opaque(fd))

    def _implicit_dir(self, parent: _Dir, parts: tuple[str, ...], entry: str) -> _Dir:
        """A parent directory the tar does not list: like overlayfs's copy-up, it takes the
        attributes of the directory the lowers show there, or 0755 root:root."""
        lower = _lower_lookup(self._lowers, parts) if parent.lowers_visible else None
        if lower is not None and stat.S_ISLNK(lower[1].st_mode):
            raise LayerError(f"writes through the symlink {'/'.join(parts)!r} of an earlier "
                             "layer", entry=entry)
        name = parts[-1]
        os.mkdir(name, 0o700, dir_fd=parent.fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd)
        if lower is None or not stat.S_ISDIR(lower[1].st_mode):
            os.fchmod(fd, 0o755)
            return _Dir(name, fd, False)  # nothing below it in the lowers
        path, st = lower
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        for key in os.listxattr(path, follow_symlinks=False):
            if not is_private_xattr(key):
                os.setxattr(fd, key, os.getxattr(path, key, follow_symlinks=False))
        self._dir_times[parts] = st.st_mtime_ns
        return _Dir(name, fd, True)

    def _open_existing(self, parts: tuple[str, ...], entry: str) -> int:
        """A new fd of directory ``parts`` of this layer (for a hardlink's source)."""
        fd = os.dup(self._stack[0].fd)
        for i, name in enumerate(parts):
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                path = "/".join(parts[:i + 1])
                st = _lstat(fd, name)
                os.close(fd)
                if st is not None and stat.S_ISLNK(st.st_mode):
                    raise LayerError(f"hardlink through the symlink {path!r}",
                                     entry=entry) from err
                raise LayerError(f"hardlink target directory {path!r} is not in this layer",
                                 entry=entry) from err
            os.close(fd)
            fd = nxt
        return fd

    def _replace(self, dir_fd: int, base: str, parts: tuple[str, ...]) -> None:
        """Remove what this layer already put at ``base`` (OCI: the later entry wins)."""
        st = _lstat(dir_fd, base)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=dir_fd)  # fd-based: never follows a symlink
            n = len(parts)
            for gone in [p for p in self._dir_times if p[:n] == parts]:
                del self._dir_times[gone]
        else:
            os.unlink(base, dir_fd=dir_fd)

    # -- attributes ----------------------------------------------------------------------

    def _set_attrs(self, dir_fd: int, base: str, m: tarfile.TarInfo,
                   parts: tuple[str, ...]) -> None:
        """Owner, mode, xattrs, then mtime (directories: recorded, set in finish()).

        The order matters: chown clears setuid/setgid and security.capability.
        """
        os.chown(base, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        if not m.issym():
            # The entry was just made by us as a non-symlink in a directory we hold open.
            os.chmod(base, stat.S_IMODE(m.mode), dir_fd=dir_fd)
        xattrs = [(k[len(_XATTR_PAX):], v) for k, v in m.pax_headers.items()
                  if k.startswith(_XATTR_PAX)]
        if xattrs:
            # No *xattr call takes a dir fd; this /proc path resolves to the open directory.
            path = f"/proc/self/fd/{dir_fd}/{base}"
            for key, value in xattrs:
                if not is_private_xattr(key):  # overlay's bookkeeping is never taken from a tar
                    os.setxattr(path, key, value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
        mtime = int(m.mtime * 1_000_000_000)
        if m.isdir():
            self._dir_times[parts] = mtime
        else:
            os.utime(base, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)


def _copy_exactly(src: BinaryIO, out: BinaryIO, size: int, entry: str) -> None:
    while size > 0:
        data = src.read(min(size, _CHUNK))
        if not data:
            raise LayerError("the layer ends inside a file's data", entry=entry)
        out.write(data)
        size -= len(data)


def _check_room(fd: int, m: tarfile.TarInfo) -> None:
    """Refuse, before writing, a file larger than the free space: a full disk would fail the
    apply anyway, after filling the disk for every other process."""
    if m.size < _ROOM_CHECK_FROM:
        return
    st = os.fstatvfs(fd)
    free = st.f_bavail * st.f_frsize
    if m.size > free:
        raise LayerError(f"the file needs {m.size} bytes but only {free} are free here",
                         entry=m.name, hint="free some disk space (lamina image prune, "
                                            "lamina system df), or check the layer")


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _lower_lookup(lowers: list[str],
                  parts: tuple[str, ...]) -> tuple[str, os.stat_result] | None:
    """What an overlay of ``lowers`` (topmost first) shows at ``parts``: (path, lstat), or None.

    Walks the way overlayfs merges: a whiteout hides the name in every layer below; a
    non-directory hides everything below; an opaque directory hides the lower directories.
    Only directories are descended, so no symlink inside a lower is ever followed.
    """
    live = lowers
    for depth in range(1, len(parts) + 1):
        found = None
        merged = []
        for layer in live:
            path = os.path.join(layer, *parts[:depth])
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                break
            if found is None:
                found = (path, st)
            if not stat.S_ISDIR(st.st_mode):
                break
            merged.append(layer)
            if is_opaque(path):
                break
        if found is None or depth == len(parts):
            return found
        if not stat.S_ISDIR(found[1].st_mode):
            return None
        live = merged
    return None
