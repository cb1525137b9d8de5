"""A layer download that can be read while it is written: pull unpacks as bytes arrive.

The download writes the blob into the content store's ingest file, as any blob is written
(hashed on the way, checked and committed at the end). ``Spool.reader()`` reads that same
file behind the writer, waiting when it catches up: so the blob is fetched once, written once
and read once from the page cache, and unpacking overlaps the download without holding the
layer in memory, however far behind the reader is (a layer waits for the ones below it).

The reader's end comes only once the download is committed, that is once the store checked
its digest and size: a reader that returned every byte without an error read the blob the
manifest names (``digest_checked``). A download attempt that fails after the reader took
bytes of it makes the reader raise ``BlobRestarted``: the caller starts the layer again,
reading the next attempt from its start. A caller that found the bytes unusable asks
``settle()`` whether they were the final blob or a damaged attempt the download tries again.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ..store.unpack import BlobRestarted

_READ = 1024 * 1024


class Spool:
    """The state of one layer's download, shared by its download thread and readers."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self._cond = threading.Condition()
        self._fd = -1                    # reads the ingest file of the current attempt
        self._attempt = 0                # counts begin() calls
        self._written = 0                # bytes handed to the ingest file this attempt
        self._done = False               # committed: the file is whole and checked
        self._error: BaseException | None = None

    # -- the download thread -------------------------------------------------------------

    def begin(self, path: Path) -> None:
        """A new attempt writes into ``path``, from its start. Opened here, before the
        attempt can commit (rename) or drop (remove) it: readers take copies of this fd."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with self._cond:
            self._close_fd()
            self._fd = fd
            self._attempt += 1
            self._written = 0
            self._cond.notify_all()

    def advance(self, count: int) -> None:
        with self._cond:
            self._written += count
            self._cond.notify_all()

    def complete(self) -> None:
        """The blob is committed: readers may see its end."""
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """No attempt is left (or another layer failed): readers raise ``error``."""
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        """The pull is over (readers keep their own fds)."""
        with self._cond:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- readers -------------------------------------------------------------------------

    def reader(self) -> "SpoolReader":
        return SpoolReader(self)


class SpoolReader:
    """A forward-only stream of the blob as it downloads (``read``, ``close``)."""

    digest_checked = True  # the end is only reached once the store checked the digest

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._fd = -1
        self._attempt = 0
        self._pos = 0                    # in the file of the attempt read
        self._buffer = memoryview(b"")   # read from the file, not yet returned

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (readers of compressed data ask for small pieces: they are
        served from a larger read, so the file and the lock are visited less often)."""
        if size is None or size < 0:
            size = _READ
        if not self._buffer:
            self._buffer = memoryview(self._fill())
        data = self._buffer[:size].tobytes()
        self._buffer = self._buffer[len(data):]
        return data

    def _fill(self) -> bytes:
        spool = self._spool
        while True:
            with spool._cond:
                self._follow()
                done = spool._done
                known = spool._written
            if self._fd >= 0:
                # Bytes the writer still buffers are not in the file yet: read what is there.
                data = os.pread(self._fd, _READ, self._pos)
                if data:
                    self._pos += len(data)
                    return data
            if done:
                return b""
            with spool._cond:
                # Wait for more bytes, the end, a new attempt or an error.
                if (spool._written == known and not spool._done and spool._error is None
                        and spool._attempt == self._attempt):
                    spool._cond.wait()

    def _follow(self) -> None:
        """Raise the download's failure; move on to a new attempt (with the lock held)."""
        spool = self._spool
        if spool._error is not None:
            raise spool._error
        if spool._attempt == self._attempt:
            return
        if self._pos:
            raise BlobRestarted(f"the download of {spool.digest} started again")
        self._close_fd()
        self._fd = os.dup(spool._fd)
        self._attempt = spool._attempt

    def settle(self) -> None:
        """After what was read turned out unusable (a damaged tar): wait for the download;
        raise ``BlobRestarted`` if the bytes read were of an attempt that failed (read the
        next one), the download's failure if none is left, and return if they were the
        blob itself (the damage is real)."""
        spool = self._spool
        with spool._cond:
            while (self._attempt and spool._attempt == self._attempt and not spool._done
                   and spool._error is None):
                spool._cond.wait()
            if not self._attempt or (spool._done and spool._attempt == self._attempt):
                return
            if spool._error is not None:
                raise spool._error
            raise BlobRestarted(f"the download of {spool.digest} started again")

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._close_fd()

    def __enter__(self) -> "SpoolReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
