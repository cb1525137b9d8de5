"""The crash-safe primitives every store writer uses: file locks and atomic file replacement.

Locks are ``flock(2)`` locks, so the kernel drops them when their holder dies, even by SIGKILL.
That is also how the store tells a live writer from a dead one: an in-flight ingest file or
staging directory is locked by its writer for as long as the writer lives (``is_abandoned``).

The store-wide lock protocol (see root.py):
- every short mutation (commit a blob, write index.json, commit a snapshot) holds it *shared*;
- crash recovery and garbage collection hold it *exclusive*, so they never see half a mutation.
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO


class FileLock:
    """A shared/exclusive lock on one file, re-entrant within a thread.

    flock locks belong to an open file, so each thread opens its own: two threads of one
    process exclude each other exactly as two processes do. Nesting a shared hold inside an
    exclusive one is allowed; upgrading shared to exclusive is a bug and raises.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._hold(fcntl.LOCK_SH):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._hold(fcntl.LOCK_EX):
            yield

    @contextmanager
    def _hold(self, mode: int) -> Iterator[None]:
        state = self._local
        depth = getattr(state, "depth", 0)
        if depth:
            if mode == fcntl.LOCK_EX and state.mode != fcntl.LOCK_EX:
                raise RuntimeError(f"cannot upgrade a shared lock on {self.path} to exclusive")
            state.depth += 1
            try:
                yield
            finally:
                state.depth -= 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            state.fd, state.mode, state.depth = fd, mode, 1
            try:
                yield
            finally:
                state.depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` exclusively (the folder made when missing): one writer at a
    time of the records in it, across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_held_open(path: Path, *, directory: bool = False) -> int:
    """Open ``path`` and lock it exclusively for as long as the returned fd stays open.

    This marks a file or directory as in use by this process (see ``is_abandoned``).
    """
    flags = (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_held_open(path: Path, mode: int = 0o600) -> int:
    """Create ``path`` (it must not exist yet) and hold it as ``lock_held_open`` does. Call
    with the store lock held shared, so recovery never sees the new file unlocked."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode))
    return lock_held_open(path)


def is_abandoned(path: Path) -> bool:
    """True when nobody holds the lock on ``path`` (its writer finished or died).

    A path that vanished meanwhile counts as not abandoned: there is nothing to clean.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_MARK = ".tmp-"  # atomic_write's temp files: ".<name>.tmp-<random>"


def atomic_write(path: Path, data: bytes | Callable[[BinaryIO], object], *,
                 tmp_dir: Path | None = None) -> None:
    """Replace ``path`` with ``data`` (bytes, or a function writing to the file it is given):
    temp file, fsync, rename, fsync the directory (``write_volatile`` is the one without
    fsyncs). The temp file is made in ``tmp_dir`` (same file system) when given, else beside
    ``path``.

    Readers see the old or the new content, never a mix. Inside the store, call it with the
    store lock held shared, so crash recovery (which removes stale temp files) never races a
    live write. An error opening the temp file is raised before anything is written.
    """
    tmp = _temp_name(path, tmp_dir)
    out = open(tmp, "xb")
    try:
        with out:
            if callable(data):
                data(out)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _temp_name(path: Path, tmp_dir: Path | None) -> Path:
    return (tmp_dir or path.parent) / f".{path.name}{TEMP_MARK}{os.urandom(8).hex()}"


def write_volatile(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write ``path`` whole or not at all, without fsync, for files whose loss after a crash
    costs nothing but a redo (a cache record, a non-durable GC root).

    An existing file is unlinked before the new one is renamed into place: ext4 flushes the
    data of a file renamed *over* another (its auto_da_alloc guard for editors that skip
    fsync), a cost of ~80 us per file that a rename to a free name does not pay. So a
    reader may, for a moment, find no file: use it only where a missing file is a miss (or
    under a lock that such readers take). Temp files are named and placed as atomic_write's.
    """
    tmp = _temp_name(path, tmp_dir)
    try:
        with open(tmp, "xb") as out:
            out.write(data)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
