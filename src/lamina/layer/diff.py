"""Diff: an overlay upper directory -> an uncompressed layer tar (POSIX/PAX).

Only the upper dir is walked, never the lowers: everything a container changed is there, so the
cost follows the size of the change, not of the image. Overlay markers become OCI whiteouts
(see whiteout.py).

A COPY need not write its files into the upper dir first: ``files_from`` names regular files
of the layer whose bytes are read from elsewhere (the build context), merged into the walk as
if they were in the upper dir. Each source is then read once, straight into the tar.

The tar is deterministic: depth-first, each directory before its contents, inside a directory
the opaque marker first, then the whiteouts, then the other entries, each group sorted by the
bytes of the name (OCI asks for whiteouts before their siblings). Headers hold no user or group
names and no atime/ctime; mtimes are whole seconds, and none is later than ``mtime_clamp``
when given (SOURCE_DATE_EPOCH semantics). Two walks of the same upper dir give the same bytes.
"""
from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lamina.layer import LayerError, LayerStats
from lamina.layer.whiteout import (
    OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, is_private_xattr, is_whiteout,
)

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["MOUNT_POINT_LEFTOVERS", "SourcedFile", "write_layer"]

# Files the runtime bind-mounts over; when the mount target was missing, crun leaves an empty
# file in the upper dir. Docker leaves these out of committed layers; pass this as ``exclude``.
MOUNT_POINT_LEFTOVERS = frozenset({"etc/hosts", "etc/resolv.conf", "etc/hostname"})

_CHUNK = 1 << 20        # file read size, and what the sink gets at a time
# tar entry types (tarfile's, without importing it: it is needed only for PAX records)
REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = (b"0", b"1", b"2", b"3", b"4",
                                                                    b"5", b"6")
_ZEROS = bytes(1024)    # padding, and the end-of-archive marker (two zero blocks)

# Overlay features that leave a file's data or a directory's contents in a lower layer; an
# upper dir made with them cannot be exported by walking it alone.
_UNSUPPORTED_XATTRS = {
    "trusted.overlay.metacopy": "metacopy=on",
    "trusted.overlay.redirect": "redirect_dir=on",
}


@dataclass(frozen=True)
class SourcedFile:
    """A regular file of the layer whose bytes are read from ``source`` (never followed if a
    symlink); its header fields are given. ``size`` bytes are read: a source that shrank
    since is an error."""

    source: str
    mode: int               # permission bits (setuid, setgid, sticky kept)
    uid: int
    gid: int
    mtime_ns: int
    size: int


# dir rel path ("" for the root) -> {name: file}: the files_from argument of write_layer
SourcedFiles = Mapping[str, Mapping[str, SourcedFile]]


def write_layer(upper: Path, out: BinaryIO, *, exclude: Container[str] = (),
                mtime_clamp: int | None = None,
                files_from: SourcedFiles | None = None) -> LayerStats:
    """Write the changes recorded in an overlay ``upper`` dir to ``out`` as a layer tar.

    ``out`` only needs ``write`` (for example a ``LayerBlobWriter``). ``exclude`` holds
    relative POSIX paths (``"etc/hosts"``) left out when they are mount-point leftovers: an
    empty regular file or an empty directory. ``mtime_clamp`` (seconds since the epoch) caps
    every entry's mtime, as BuildKit's rewrite-timestamp does; None keeps them. ``files_from``
    adds files kept elsewhere to the directories of ``upper`` (each of those directories must
    be in ``upper``); one of the same name in ``upper`` is replaced. The mount must be gone or
    quiet: a file that shrinks while it is read is a ``LayerError``.
    """
    tar = _TarOut(out)
    try:
        walker = _Walker(tar, exclude, mtime_clamp, files_from or {})
        walker.walk(str(upper))
        return walker.finish()
    except _SinkFailed as failed:   # the sink's own error, not one of reading the files
        raise failed.error from None
    finally:
        tar.close()


class _SinkFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _TarOut:
    """The tar byte stream: gathers small writes into chunks for the sink.

    Once a layer is more than a chunk, the sink's work (a content store hashes and writes)
    moves to a thread, which runs while this one walks and reads files: hashlib and file
    writes let go of the GIL, so the two overlap.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pending = bytearray()
        self._queue = None
        self._worker = None
        self._error: BaseException | None = None
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        self._pending += data
        if len(self._pending) >= _CHUNK:
            self._hand_over()

    def flush(self) -> None:
        """Everything written reaches the sink (the thread, if any, has ended)."""
        if self._worker is None:
            if self._pending:
                self._out.write(self._pending)
                self._pending = bytearray()
            return
        if self._pending:
            self._hand_over()
        self._queue.put(None)
        self._worker.join()
        self._worker = None
        self._raise()

    def close(self) -> None:
        """Stop the thread without flushing (a failed walk)."""
        if self._worker is not None:
            self._error = self._error or LayerError("the layer was not finished")
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def _hand_over(self) -> None:
        chunk, self._pending = self._pending, bytearray()
        if self._worker is None:
            import queue
            import threading

            self._queue = queue.Queue(maxsize=4)
            self._worker = threading.Thread(target=self._drain, name="layer-writer",
                                            daemon=True)
            self._worker.start()
        self._raise()
        self._queue.put(chunk)

    def _drain(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._out.write(chunk)
                except BaseException as err:   # raised in the walking thread
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise _SinkFailed(self._error)


class _Walker:
    def __init__(self, out: _TarOut, exclude: Container[str], mtime_clamp: int | None,
                 files_from: SourcedFiles) -> None:
        self._out = out
        self._exclude = exclude
        self._clamp = mtime_clamp
        self._files_from = files_from
        self._links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first name written
        self._counts: Counter[str] = Counter()
        self._buf = bytearray()       # grown to the largest file read, up to _CHUNK

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

    def _children(self, path: str, prefix: str
                  ) -> Iterator[tuple[str, str, os.stat_result | SourcedFile]]:
        """Write the whiteouts of one directory; yield its other entries, sorted."""
        sourced = self._files_from.get(prefix[:-1])
        with os.scandir(path) as it:
            entries = [(os.fsencode(e.name), e.name, e.stat(follow_symlinks=False))
                       for e in it if not sourced or e.name not in sourced]
        if sourced:
            entries += [(os.fsencode(name), name, f) for name, f in sourced.items()]
        entries.sort(key=lambda e: e[0])
        rest = []
        for _, name, st in entries:
            if isinstance(st, os.stat_result) and is_whiteout(st):
                self._marker(prefix + WHITEOUT_PREFIX + name, st.st_mtime_ns)
                self._counts["whiteouts"] += 1
            else:   # a sourced file's path is its source: errors name the file read
                rest.append((st.source if isinstance(st, SourcedFile) else
                             os.path.join(path, name), prefix + name, st))
        return iter(rest)

    def _entry(self, path: str, rel: str, st: os.stat_result | SourcedFile) -> bool:
        """Write one entry; True when it is a directory to walk into."""
        if isinstance(st, SourcedFile):
            if not (rel in self._exclude and st.size == 0):
                self._header(rel, REGTYPE, st.mode, st.uid, st.gid,
                             self._mtime(st.mtime_ns), "files", size=st.size)
                self._copy(path, rel, st.size, hint="a file of the build context "
                           "changed while it was copied: build again")
            return False
        if rel in self._exclude and _is_leftover(path, st):
            return False
        mode = st.st_mode
        header = (rel, stat.S_IMODE(mode), st.st_uid, st.st_gid, self._mtime(st.st_mtime_ns))
        # Same inode seen before under another name: a hardlink to that name. (Whiteouts share
        # one inode too, but they were written as markers before reaching here.)
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            first = self._links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                self._header(*header[:1], LNKTYPE, *header[1:], "hardlinks",
                             linkname=first)
                return False
        xattrs, opaque = _read_xattrs(path, rel)
        pax = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
               for k, v in sorted(xattrs.items())}
        if stat.S_ISDIR(mode):
            self._header(header[0], DIRTYPE, *header[1:], "dirs", pax=pax)
            if opaque:
                self._marker(f"{rel}/{OPAQUE_MARKER}", st.st_mtime_ns)
                self._counts["opaque_dirs"] += 1
            return True
        if stat.S_ISREG(mode):
            self._header(header[0], REGTYPE, *header[1:], "files", size=st.st_size,
                         pax=pax)
            self._copy(path, rel, st.st_size)
        elif stat.S_ISLNK(mode):
            self._header(header[0], SYMTYPE, *header[1:], "symlinks",
                         linkname=os.readlink(path), pax=pax)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
            self._header(header[0], kind, *header[1:], "specials", pax=pax,
                         device=(os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif stat.S_ISFIFO(mode):
            self._header(header[0], FIFOTYPE, *header[1:], "specials", pax=pax)
        # Sockets cannot be stored in a tar; like Docker, leave them out.
        return False

    def _mtime(self, mtime_ns: int) -> int:
        seconds = mtime_ns // 1_000_000_000
        return seconds if self._clamp is None else min(seconds, self._clamp)

    def _marker(self, name: str, mtime_ns: int) -> None:
        """An OCI whiteout or opaque marker: an empty regular file."""
        self._header(name, REGTYPE, 0o600, 0, 0, self._mtime(mtime_ns), None)

    def _header(self, name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: int,
                counted: str | None, *, size: int = 0, linkname: str = "",
                pax: dict[str, str] | None = None, device: tuple[int, int] | None = None
                ) -> None:
        buf = None if pax else _ustar_header(name, kind, mode, uid, gid, size, mtime,
                                             linkname, device)
        if buf is None:   # what a plain ustar header cannot hold: tarfile writes PAX records
            import tarfile

            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
            info.size, info.mtime, info.linkname = size, mtime, linkname
            if device is not None:
                info.devmajor, info.devminor = device
            info.pax_headers = pax or {}
            buf = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._out.write(buf)
        self._counts["entries"] += 1
        if counted:
            self._counts[counted] += 1
        if size:
            self._counts["content_bytes"] += size

    def _copy(self, path: str, rel: str, size: int,
              hint: str = "stop every process that writes to the container before "
                          "committing it") -> None:
        if len(self._buf) < min(size, _CHUNK):
            # made on demand: zero-filling 1 MiB costs ~0.5 ms, more than a small layer's tar
            self._buf = bytearray(min(size, _CHUNK))
        view = memoryview(self._buf)
        # O_NOFOLLOW: it was a regular file when listed; never read through a swapped-in symlink.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:   # gone, or replaced (by a symlink: ELOOP) since it was listed
            raise LayerError(f"cannot read {path!r}: {err.strerror}", entry=rel,
                             hint=hint) from None
        try:
            remaining = size
            while remaining:
                n = os.readv(fd, [view[:min(remaining, _CHUNK)]])
                if not n:
                    raise LayerError(f"{path!r} shrank while the layer was written", entry=rel,
                                     hint=hint)
                self._out.write(view[:n])
                remaining -= n
        finally:
            os.close(fd)
        self._out.write(_ZEROS[:-size % 512])


def _ustar_header(name: str, kind: bytes, mode: int, uid: int, gid: int, size: int,
                  mtime: int, linkname: str, device: tuple[int, int] | None) -> bytes | None:
    """The 512-byte header tarfile's PAX format writes for an entry that needs no PAX record
    (ASCII names that fit, numbers that fit), byte for byte, built directly: tarfile's
    general code costs more than reading a small file. None when a PAX record is needed."""
    if kind == DIRTYPE and not name.endswith("/"):
        name += "/"
    if not (name.isascii() and linkname.isascii() and len(name) <= 100
            and len(linkname) <= 100 and 0 <= uid < 0o7777777 and 0 <= gid < 0o7777777
            and 0 <= size < 0o77777777777 and 0 <= mtime < 0o77777777777):
        return None
    if device is None:
        devices = bytes(16)
    elif 0 <= device[0] < 0o7777777 and 0 <= device[1] < 0o7777777:
        devices = b"%07o\0%07o\0" % device
    else:
        return None
    head = b"".join((
        name.encode("ascii").ljust(100, b"\0"),
        b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (mode & 0o7777, uid, gid, size, mtime),
        kind, linkname.encode("ascii").ljust(100, b"\0"), b"ustar\x0000", bytes(64),
        devices, bytes(167)))
    return b"%s%06o\0%s" % (head[:148], sum(head), head[155:])


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
