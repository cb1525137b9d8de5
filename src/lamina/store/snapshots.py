"""Snapshots: each layer unpacked once, keyed by its chain ID, shared by every image and
container that stacks it (containerd's snapshotter vocabulary: prepare, commit, remove).

On disk, ``snapshots/<chain-id hex>/`` holds ``fs/`` (the layer's own files, with whiteouts in
overlayfs form, ready to be a lowerdir), ``metadata.json`` and the ``committed`` marker.
A snapshot is made in ``snapshots/.inflight/.staging-*/`` (locked by its maker while it
lives), then renamed into place whole; one being removed is first renamed to
``snapshots/.inflight/.trash-*``. So what a killed process can leave is all in ``.inflight/``,
which exists only while something is in it: every ``Store.open`` looks there, not at
``snapshots/``, which grows with the store.

Nothing of a snapshot is fsynced. Its files never were (fsyncing every file of a layer costs
more than unpacking it), so durability was never what made a snapshot trustworthy: it can
always be unpacked again from its layer blob, which is durable. Syncing only metadata.json,
the marker and the rename (3 fsyncs, ~0.7 ms a snapshot) bought nothing a crash of the
process needs (the page cache keeps every write of a killed process) and not enough for a
power loss (the files may be lost anyway). So a power loss is handled by recovery instead:
the first ``Store.open`` after a boot (root.py) runs ``recover(full=True)``, which removes every
snapshot whose marker, metadata (missing, empty, torn, or naming another chain ID) or parent
is gone; they are unpacked again when needed. Other opens only clean what a killed process
can leave in ``.inflight/``: the staging dirs of dead makers, and trash.

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
from .locks import FileLock, is_abandoned, lock_held_open

COMMITTED_MARKER = "committed"
METADATA_FILE = "metadata.json"
INFLIGHT_DIR = ".inflight"
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
        self.inflight = self.dir / INFLIGHT_DIR
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
        staging = self.inflight / \
            f"{STAGING_PREFIX}{digest_hex(chain_id)[:12]}-{os.urandom(8).hex()}"
        # Create and lock under the store lock, so recovery never takes it for abandoned.
        with self._lock.shared():
            self._inflight_call(staging.mkdir, 0o700)
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
            # No fsync (see the module docstring): recovery after a boot checks these.
            with open(directory / METADATA_FILE, "wb") as out:
                out.write(canonical_json(meta))
            os.close(os.open(directory / COMMITTED_MARKER,
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
            target = self._dir_of(chain_id)
            ours = True
            with self._lock.shared():
                if parent_chain_id is not None and not self.exists(parent_chain_id):
                    raise SnapshotError(
                        f"parent snapshot {parent_chain_id} of {chain_id} is gone",
                        chain_id=chain_id, hint="unpack the image again")
                try:
                    os.rename(directory, target)
                except OSError as err:
                    if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    _rmtree(directory)  # another process won the race
                    ours = False
        except BaseException:
            self.abort(staging)
            raise
        self._release(staging)
        self._tidy()
        if not ours:
            return self.info(chain_id)
        return SnapshotInfo(chain_id, parent_chain_id, diff_id, size, target / "fs")

    def abort(self, staging: Path) -> None:
        """Drop a prepared directory that will not be committed."""
        if staging in self._staging:
            _rmtree(staging.parent)
            self._release(staging)
            self._tidy()

    def remove(self, chain_id: str) -> bool:
        """Remove a snapshot; False if it was not there. Callers check that nothing uses it
        (garbage collection does, gc.py)."""
        source = self._dir_of(chain_id)
        trash = self.inflight / f"{TRASH_PREFIX}{os.urandom(8).hex()}"
        with self._lock.shared():
            if not source.is_dir():
                return False
            try:   # gone at once; the slow delete comes after
                self._inflight_call(os.rename, source, trash)
            except FileNotFoundError:
                return False
        _rmtree(trash)
        self._tidy()
        return True

    def _inflight_call(self, make, *args) -> None:
        """``make(*args)`` creating an entry of ``.inflight/``, which is made when missing: the
        last maker to leave removes it (``_tidy``), so a store at rest has none."""
        for _ in range(100):   # another process may remove it between our two steps
            try:
                make(*args)
                return
            except FileNotFoundError:
                if self.inflight.is_dir():
                    raise   # not .inflight/ that was missing
                try:
                    self.inflight.mkdir(mode=0o700)
                except FileExistsError:
                    pass
        raise SnapshotError(f"cannot make a directory in {self.inflight}: it keeps vanishing")

    def _tidy(self) -> None:
        """Remove ``.inflight/`` if nothing is in it."""
        try:
            os.rmdir(self.inflight)
        except OSError:   # in use by another maker (or already gone)
            pass

    def in_flight(self) -> bool:
        """Whether anything is being made or removed, or was left so by a killed process
        (cheap: one small folder listed, no lock)."""
        try:
            return bool(os.listdir(self.inflight))
        except FileNotFoundError:
            return False

    def recover(self, *, full: bool = True) -> list[Path]:
        """Remove staging dirs of dead makers and half-deleted snapshots; with ``full`` (after
        a power loss, see the module docstring) also every snapshot that is not whole: no
        marker, metadata missing, empty, torn or not its own, or its parent gone.

        Call with the store lock held exclusive.
        """
        removed = []
        try:
            names = os.listdir(self.inflight)
        except FileNotFoundError:
            names = []
        for name in names:
            path = self.inflight / name
            if not name.startswith(STAGING_PREFIX) or is_abandoned(path):
                _rmtree(path)
                removed.append(path)
        if names:
            self._tidy()
        if not full:
            return removed
        whole: dict[str, str | None] = {}   # chain ID -> parent, of the snapshots kept so far
        for entry in os.scandir(self.dir):
            path = Path(entry.path)
            if entry.name == INFLIGHT_DIR:
                continue
            if entry.name.startswith(STAGING_PREFIX):   # where lamina made them before
                stale = is_abandoned(path)
            elif entry.name.startswith(TRASH_PREFIX):
                stale = True
            else:
                meta = _whole_metadata(path, entry.name)
                stale = meta is None
                if meta is not None:
                    whole[meta["chain_id"]] = meta["parent"]
            if stale:
                _rmtree(path)
                removed.append(path)
        orphans = [c for c in whole if not _stands(c, whole)]
        for chain_id in orphans:   # a lower layer that went makes the stack above it wrong
            path = self._dir_of(chain_id)
            _rmtree(path)
            removed.append(path)
        return removed

    def _release(self, staging: Path) -> None:
        os.close(self._staging.pop(staging))


def _whole_metadata(path: Path, name: str) -> dict | None:
    """The metadata of the snapshot directory ``path`` if it is whole: marker and fs/ there,
    metadata valid and naming this directory's chain ID; None otherwise."""
    try:
        if not (path / COMMITTED_MARKER).is_file() or not (path / "fs").is_dir():
            return None
        meta = json.loads((path / METADATA_FILE).read_bytes())
        chain_id = meta["chain_id"]
        parent = meta["parent"]
        if chain_id != f"sha256:{name}" \
                or not (parent is None or isinstance(parent, str)) \
                or not isinstance(meta["diff_id"], str) or not isinstance(meta["size"], int):
            return None
    except (OSError, ValueError, KeyError, TypeError):   # a power loss leaves it empty or torn
        return None
    return meta


def _stands(chain_id: str, whole: dict[str, str | None]) -> bool:
    """Whether every snapshot below ``chain_id`` is among ``whole``."""
    seen = set()
    parent = whole.get(chain_id)
    while parent is not None:
        if parent not in whole or parent in seen:
            return False
        seen.add(parent)
        parent = whole[parent]
    return True


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
