"""The content store: blobs by digest under ``blobs/sha256/<hex>`` (the OCI image layout).

Writes follow containerd's ingest, then commit: a writer streams into ``ingest/<random>``,
hashing and counting as bytes pass; ``commit`` checks the digest and size, fsyncs and renames
into place. So a blob is whole or absent, and a kill at any moment leaves at most a temp file
under ``ingest/``, which the next ``Store.open`` removes once its writer is gone (a live writer
holds a lock on its temp file).

``commit(sync_name=False)`` leaves out the fsync of ``blobs/sha256/`` after the rename: after a
power loss the blob may be absent, never partial. A writer that commits several blobs and then
names them (an image: a build's layers, its config and manifest) calls ``sync_names`` once
before naming.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from ..image.digest import ALGORITHM, Sha256, digest_hex, validate_digest
from .locks import FileLock, create_held_open, fsync_dir, is_abandoned

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1024 * 1024


class ContentError(LaminaError):
    """A blob that is missing, damaged, or not what it was said to be."""

    def __init__(self, message: str, *, digest: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.digest = digest


class BlobNotFoundError(ContentError):
    pass


class DigestMismatchError(ContentError):
    pass


@dataclass(frozen=True)
class Blob:
    """A blob in the content store."""

    digest: str
    size: int


class ContentStore:
    def __init__(self, root: Path, lock: FileLock) -> None:
        self.blobs_dir = root / "blobs" / ALGORITHM
        self.ingest_dir = root / "ingest"
        self._lock = lock

    def path(self, digest: str) -> Path:
        return self.blobs_dir / digest_hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise _not_found(digest) from None

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise _not_found(digest) from None

    def read_bytes(self, digest: str) -> bytes:
        """A whole blob; for manifests and configs, not layers (stream those)."""
        with self.open_blob(digest) as stream:
            return stream.read()

    def digests(self) -> Iterator[str]:
        """Every committed blob's digest (in no particular order)."""
        for entry in os.scandir(self.blobs_dir):
            name = entry.name
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                yield f"{ALGORITHM}:{name}"

    def ingest(self) -> "IngestWriter":
        """A writer for a new blob; use it as a context manager (no commit: nothing stays)."""
        return IngestWriter(self)

    def put_bytes(self, data: bytes, expected_digest: str | None = None, *,
                  sync_name: bool = True) -> Blob:
        with self.ingest() as writer:
            writer.write(data)
            return writer.commit(expected_digest, len(data), sync_name=sync_name)

    def sync_names(self) -> None:
        """Make the blobs committed with ``sync_name=False`` so far survive a power loss."""
        fsync_dir(self.blobs_dir)

    def put_stream(self, stream: BinaryIO, expected_digest: str | None = None,
                   expected_size: int | None = None) -> Blob:
        """Copy a stream into the store, chunk by chunk, hashing as it goes."""
        with self.ingest() as writer:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit(expected_digest, expected_size)

    def delete(self, digest: str) -> bool:
        """Remove a blob; False if it was not there. Nothing checks who still uses it: that
        is garbage collection's job (gc.py)."""
        with self._lock.shared():
            try:
                self.path(digest).unlink()
            except FileNotFoundError:
                return False
            return True

    def verify(self, digest: str) -> None:
        """Read the blob again and check that its bytes still have this digest."""
        hasher = Sha256()
        with self.open_blob(digest) as stream:
            while chunk := stream.read(CHUNK):
                hasher.update(chunk)
        actual = f"{ALGORITHM}:{hasher.hexdigest()}"
        if actual != digest:
            raise DigestMismatchError(
                f"blob {digest} is damaged: its content now has digest {actual}", digest=digest,
                hint="remove the images that use it and pull or build them again")

    def recover(self) -> list[Path]:
        """Remove temp files of writers that died. Call with the store lock held exclusive."""
        removed = []
        for entry in os.scandir(self.ingest_dir):
            path = Path(entry.path)
            if is_abandoned(path):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


class IngestWriter:
    """Streams one blob into ``ingest/``; ``commit`` makes it a blob, anything else drops it."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self._hasher = Sha256()
        self.size = 0
        self.temp_path = store.ingest_dir / os.urandom(16).hex()
        # Create and lock under the store lock: recovery never sees an unlocked live file.
        with store._lock.shared():
            self._lock_fd = create_held_open(self.temp_path, 0o644)
        self._out: BinaryIO | None = open(self.temp_path, "wb")
        self._closed = False

    def write(self, data: bytes) -> int:
        if self._out is None:
            raise ValueError("write to a closed ingest")
        try:
            self._out.write(data)
        except OSError as err:  # a full disk, a read-only store: say so, without a traceback
            raise _write_failed(err) from None
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        """The digest of the bytes written so far."""
        return f"{ALGORITHM}:{self._hasher.hexdigest()}"

    def commit(self, expected_digest: str | None = None,
               expected_size: int | None = None, *, sync_name: bool = True) -> Blob:
        """Verify, fsync and rename into place; on a mismatch nothing is kept.
        ``sync_name=False``: see the module doc."""
        if self._out is None:
            raise ValueError("commit of a closed ingest")
        try:
            if expected_digest is not None:
                validate_digest(expected_digest)
            digest = self.digest
            if expected_size is not None and self.size != expected_size:
                raise DigestMismatchError(
                    f"blob {expected_digest or digest} should be {expected_size} bytes but "
                    f"{self.size} were written", digest=expected_digest or digest,
                    hint="the download or input was cut short or altered: try again")
            if expected_digest is not None and digest != expected_digest:
                raise DigestMismatchError(
                    f"blob should have digest {expected_digest} but the {self.size} bytes "
                    f"written have {digest}", digest=expected_digest,
                    hint="the source sent other content than its descriptor says: try again, "
                         "or check the source")
            try:
                self._out.flush()
                os.fsync(self._out.fileno())
                self._out.close()
            except OSError as err:
                raise _write_failed(err) from None
            self._out = None
            target = self._store.path(digest)
            with self._store._lock.shared():
                if target.exists():
                    self.temp_path.unlink()  # same digest, same bytes: keep the one there
                else:
                    os.chmod(self.temp_path, 0o444)  # blobs are immutable
                    os.rename(self.temp_path, target)
                    if sync_name:
                        fsync_dir(target.parent)
            self._closed = True
            return Blob(digest, self.size)
        finally:
            if not self._closed:
                self.abort()
            else:
                os.close(self._lock_fd)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._out is not None:
            try:
                self._out.close()
            except OSError:  # the buffered rest cannot be written (a full disk): dropped anyway
                pass
            self._out = None
        self.temp_path.unlink(missing_ok=True)
        os.close(self._lock_fd)

    def __enter__(self) -> "IngestWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _write_failed(err: OSError) -> ContentError:
    hint = ("free some space (lamina system df, lamina image prune) and try again"
            if err.errno == errno.ENOSPC else None)
    return ContentError(f"cannot write a blob into the store: {err.strerror}", hint=hint)


def _not_found(digest: str) -> BlobNotFoundError:
    return BlobNotFoundError(f"blob {digest} is not in the local store", digest=digest,
                             hint="pull or build the image again to fetch it")
