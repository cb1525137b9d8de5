"""Snapshots: each layer unpacked once, keyed by its chain ID, shared by every image and
container that stacks it (containerd's snapshotter vocabulary: prepare, commit, remove).

On disk, ``snapshots/<chain-id hex>/`` holds ``fs/`` (the layer's own files, with whiteouts in
overlayfs form, ready to be a lowerdir), ``metadata.json`` and the ``committed`` marker.
A snapshot is made in ``snapshots/.staging-*/`` (locked by its maker while it lives), then
renamed into place whole; a directory without the marker is half-made and recovery removes it.

The snapshotter never unpacks anything itself: the caller fills the prepared directory
(``lamina.layer.apply.apply_layer(stream, target, lowers=snapshots.lowers(parents))``).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from ..image.digest import canonical_json, digest_hex, sha256_digest, validate_digest
from .locks import FileLock, fsync_dir, is_abandoned, lock_held_open

COMMITTED_MARKER = "committed"
METADATA_FILE = "metadata.json"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


class SnapshotError(LaminaError):
    def __init__(self, message: str, *, chain_id: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.chain_id = chain_id


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot."""

    chain_id: str
    parent: str | None     # chain ID of the layers below; None for a bottom layer
    diff_id: str           # digest of this layer's uncompressed tar
    size: int              # bytes the caller measured when unpacking
    path: Path             # the fs directory


class Snapshotter:
    def __init__(self, root: Path, lock: FileLock) -> None:
        self.dir = root / "snapshots"
        self._lock = lock
        self._staging: dict[Path, int] = {}  # staging fs dir -> fd holding its lock

    def _dir_of(self, chain_id: str) -> Path:
        return self.dir / digest_hex(chain_id)

    def exists(self, chain_id: str) -> bool:
        return (self._dir_of(chain_id) / COMMITTED_MARKER).is_file()

    def path(self, chain_id: str) -> Path:
        """The fs directory of a committed snapshot."""
        if not self.exists(chain_id):
            raise _not_found(chain_id)
        return self._dir_of(chain_id) / "fs"

    def info(self, chain_id: str) -> SnapshotInfo:
        directory = self._dir_of(chain_id)
        try:
            meta = json.loads((directory / METADATA_FILE).read_bytes())
            return SnapshotInfo(meta["chain_id"], meta["parent"], meta["diff_id"], meta["size"],
                                directory / "fs")
        except FileNotFoundError:
            raise _not_found(chain_id) from None
        except (ValueError, KeyError, TypeError):
            raise SnapshotError(f"snapshot {chain_id} has damaged metadata", chain_id=chain_id,
                                hint=f"remove {directory}; it is unpacked again when needed") \
                from None

    def list(self) -> list[SnapshotInfo]:
        result = []
        for entry in sorted(os.scandir(self.dir), key=lambda e: e.name):
            if not entry.name.startswith(".") and os.path.isfile(
                    os.path.join(entry.path, COMMITTED_MARKER)):
                result.append(self.info(f"sha256:{entry.name}"))
        return result

    def lowers(self, chain_ids: list[str]) -> list[Path]:
        """fs paths for an overlay ``lowerdir``: ``chain_ids`` bottom first, result top first."""
        return [self.path(chain_id) for chain_id in reversed(chain_ids)]

    def prepare(self, chain_id: str) -> Path:
        """A new empty directory to unpack the layer into; pass it to ``commit`` or ``abort``.

        Check ``exists`` first: preparing a snapshot that exists works but wastes the unpack.
        """
        validate_digest(chain_id)
        staging = self.dir / f"{STAGING_PREFIX}{digest_hex(chain_id)[:12]}-{os.urandom(8).hex()}"
        # Create and lock under the store lock, so recovery never takes it for abandoned.
        with self._lock.shared():
            staging.mkdir(mode=0o700)
            fd = lock_held_open(staging, directory=True)
        fs = staging / "fs"
        fs.mkdir(mode=0o755)
        self._staging[fs] = fd
        return fs

    def commit(self, staging: Path, chain_id: str, parent_chain_id: str | None,
               diff_id: str, size: int) -> SnapshotInfo:
        """Make the prepared directory the snapshot ``chain_id``, atomically.

        If another process committed the same chain ID first, ours is discarded and theirs
        returned: both unpacked the same layer onto the same parents.
        """
        fd = self._staging.get(staging)
        if fd is None:
            raise SnapshotError(f"{staging} was not prepared by this snapshotter",
                                chain_id=chain_id)
        try:
            expected = diff_id if parent_chain_id is None else sha256_digest(
                f"{parent_chain_id} {diff_id}".encode())
            if validate_digest(chain_id) != expected:
                raise SnapshotError(
                    f"chain ID {chain_id} does not follow from parent {parent_chain_id} and "
                    f"diff ID {diff_id} (expected {expected})", chain_id=chain_id)
            meta = {"chain_id": chain_id, "parent": parent_chain_id, "diff_id": diff_id,
                    "size": size}
            directory = staging.parent
            _write_synced(directory / METADATA_FILE, canonical_json(meta))
            # Empty: no data to sync; the fsync of its directory makes it durable.
            os.close(os.open(directory / COMMITTED_MARKER,
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
            fsync_dir(directory)
            target = self._dir_of(chain_id)
            with self._lock.shared():
                if parent_chain_id is not None and not self.exists(parent_chain_id):
                    raise SnapshotError(
                        f"parent snapshot {parent_chain_id} of {chain_id} is gone",
                        chain_id=chain_id, hint="unpack the image again")
                try:
                    os.rename(directory, target)
                    fsync_dir(self.dir)
                except OSError as err:
                    if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    _rmtree(directory)  # another process won the race
        except BaseException:
            self.abort(staging)
            raise
        self._release(staging)
        return self.info(chain_id)

    def abort(self, staging: Path) -> None:
        """Drop a prepared directory that will not be committed."""
        if staging in self._staging:
            _rmtree(staging.parent)
            self._release(staging)

    def remove(self, chain_id: str) -> bool:
        """Remove a snapshot; False if it was not there. Callers check that nothing uses it
        (garbage collection does, gc.py)."""
        source = self._dir_of(chain_id)
        trash = self.dir / f"{TRASH_PREFIX}{os.urandom(8).hex()}"
        with self._lock.shared():
            try:
                os.rename(source, trash)  # gone at once; the slow delete comes after
            except FileNotFoundError:
                return False
        _rmtree(trash)
        return True

    def recover(self) -> list[Path]:
        """Remove staging dirs of dead makers, half-deleted and half-made snapshots.

        Call with the store lock held exclusive.
        """
        removed = []
        for entry in os.scandir(self.dir):
            path = Path(entry.path)
            if entry.name.startswith(STAGING_PREFIX):
                stale = is_abandoned(path)
            else:
                stale = entry.name.startswith(TRASH_PREFIX) or not (
                    path / COMMITTED_MARKER).is_file()
            if stale:
                _rmtree(path)
                removed.append(path)
        return removed

    def _release(self, staging: Path) -> None:
        os.close(self._staging.pop(staging))


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _rmtree(path: Path) -> None:
    """Remove a tree (or a stray file) if it is there, even where a layer made directories
    read-only, which stops a non-root user: then make every directory writable and retry."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except PermissionError:
        os.chmod(path, stat.S_IRWXU)
        for dirpath, dirnames, _files in os.walk(path):  # top-down: fixed before entered
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    os.chmod(child, stat.S_IRWXU)
        shutil.rmtree(path)


def _not_found(chain_id: str) -> SnapshotError:
    return SnapshotError(f"snapshot {chain_id} does not exist", chain_id=chain_id,
                         hint="unpack the image again (it happens when the image is used)")
