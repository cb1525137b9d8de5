"""GC roots: what garbage collection must keep, registered in files (see gc.py).

- ``roots/<name>.json``: lasting roots (the build cache, a container keeping its image),
  written with ``RootsRegistry.put(name, Roots(...))`` and dropped with ``remove(name)``;
- ``leases/<id>.json``: the content of an operation in flight, until it ends or its process dies.

A lease file is a log: each ``Lease.add`` that adds something appends one line (the roots it
adds, as JSON) with ``O_APPEND``, and the lease is the union of its lines. An append is one
small write, made under the store lock held shared; GC reads under the lock held exclusive, so
it never sees half a line (a reader under the shared lock, ``system df``, skips an unfinished
last line). The lease's files are made at its first add that adds something: an operation
that adds nothing (a build that is all cache hits) writes nothing.

Apart from gc.py, which marks and sweeps: registering a root (every ``lamina run`` does) need
not import the image model that collecting reads.
"""
from __future__ import annotations

import errno
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import LaminaError
from ..image.digest import canonical_json, validate_digest
from .locks import FileLock, atomic_write, create_held_open, is_abandoned, write_volatile

_ROOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class GCError(LaminaError):
    pass


@dataclass(frozen=True)
class Roots:
    """Content that garbage collection must keep: images, single blobs and snapshots."""

    images: frozenset[str] = field(default_factory=frozenset)     # manifest or index digests
    blobs: frozenset[str] = field(default_factory=frozenset)      # just these blobs
    snapshots: frozenset[str] = field(default_factory=frozenset)  # chain IDs (and parents)

    def __post_init__(self) -> None:
        for name in ("images", "blobs", "snapshots"):
            values = frozenset(getattr(self, name))
            for value in values:
                validate_digest(value)
            object.__setattr__(self, name, values)

    def __or__(self, other: "Roots") -> "Roots":
        return Roots(self.images | other.images, self.blobs | other.blobs,
                     self.snapshots | other.snapshots)

    def to_json(self) -> bytes:
        return canonical_json({"images": sorted(self.images), "blobs": sorted(self.blobs),
                               "snapshots": sorted(self.snapshots)})

    @classmethod
    def from_json(cls, raw: bytes) -> "Roots":
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("a roots file is a JSON object")
        return cls(frozenset(obj.get("images", ())), frozenset(obj.get("blobs", ())),
                   frozenset(obj.get("snapshots", ())))


class RootsRegistry:
    def __init__(self, root: Path, lock: FileLock) -> None:
        self.roots_dir = root / "roots"
        self.leases_dir = root / "leases"
        # Temp files of root writes go to ingest/, whose leftovers recovery removes: roots/
        # grows with the build cache, and so need not be listed at every Store.open.
        self._tmp_dir = root / "ingest"
        self._lock = lock

    def put(self, name: str, roots: Roots, *, durable: bool = True) -> None:
        """Register (or replace) the lasting roots called ``name``. ``durable=False`` skips the
        fsyncs, for a root whose owner does not outlive a crash either (a ``--rm`` container:
        the next command's sweep removes what a crash left of it), or whose loss is only a
        cache miss (a build cache record's)."""
        path = self._root_file(name)
        data = roots.to_json()
        with self._lock.shared():
            if durable:
                atomic_write(path, data, tmp_dir=self._tmp_dir)
                return
            try:
                if path.read_bytes() == data:
                    return  # a rebuild (--no-cache) roots the same blobs: nothing to write
            except FileNotFoundError:
                pass
            # GC reads the roots under the lock held exclusive: the moment without the file
            # that write_volatile takes (see there) is never seen.
            write_volatile(path, data, tmp_dir=self._tmp_dir)

    def remove(self, name: str) -> bool:
        with self._lock.shared():
            try:
                self._root_file(name).unlink()
            except FileNotFoundError:
                return False
            return True

    def load(self) -> Roots:
        """The union of every registered root and lease (a lease just ended counts too)."""
        total = Roots()
        for directory in (self.roots_dir, self.leases_dir):
            for entry in os.scandir(directory):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    try:
                        data = Path(entry.path).read_bytes()
                    except FileNotFoundError:
                        continue  # a lease that ended meanwhile
                    if not data:
                        # Only a root written without fsync (a cache record's, a --rm
                        # container's) comes back empty, after a power loss: what it kept is
                        # checked again where it is used, so it protects nothing now.
                        continue
                    try:
                        if directory is self.leases_dir:
                            total |= _lease_roots(data)
                        else:
                            total |= Roots.from_json(data)
                    except (ValueError, LaminaError) as err:
                        raise GCError(f"GC root file {entry.path} is damaged: {err}",
                                      hint="fix or remove the file, then collect again") from None
        return total

    def lease(self) -> "Lease":
        return Lease(self)

    def recover(self) -> list[Path]:
        """Drop the leases of dead processes. Call with the store lock held exclusive."""
        removed = []
        for entry in os.scandir(self.leases_dir):
            path = Path(entry.path)
            if entry.name.endswith(".lock"):
                stale = is_abandoned(path)
            else:  # a .json whose .lock is gone lost its owner too
                stale = entry.name.endswith(".json") and not path.with_suffix(".lock").exists()
            for item in (path.with_suffix(".json"), path.with_suffix(".lock")) if stale else ():
                if item.exists():
                    item.unlink()
                    removed.append(item)
        return removed

    def _root_file(self, name: str) -> Path:
        if not _ROOT_NAME.fullmatch(name):
            raise GCError(f"invalid GC root name {name!r}",
                          hint="use letters, digits, '.', '_' and '-'")
        return self.roots_dir / f"{name}.json"


def _lease_roots(data: bytes) -> Roots:
    """The union of a lease file's lines; an unfinished last line (being appended while a
    reader holds the store lock shared only) is not there yet."""
    total = Roots()
    for line in data.split(b"\n")[:-1]:
        if line:
            total |= Roots.from_json(line)
    return total


class Lease:
    """Temporary roots for one operation in flight; see the module docstring."""

    def __init__(self, registry: RootsRegistry) -> None:
        self._registry = registry
        self._roots = Roots()
        name = os.urandom(16).hex()
        self._file = registry.leases_dir / f"{name}.json"
        self._lock_file = registry.leases_dir / f"{name}.lock"
        self._lock_fd = -1   # the files are made at the first add that adds something
        self._released = False
        self._adding = threading.Lock()   # threads of one operation may share the lease

    def add(self, *, images: Iterable[str] = (), blobs: Iterable[str] = (),
            snapshots: Iterable[str] = ()) -> None:
        wanted = Roots(frozenset(images), frozenset(blobs), frozenset(snapshots))
        with self._adding:
            self._append(wanted)

    def _append(self, wanted: Roots) -> None:
        held = self._roots
        new = Roots(wanted.images - held.images, wanted.blobs - held.blobs,
                    wanted.snapshots - held.snapshots)
        if not (new.images or new.blobs or new.snapshots):
            return  # already leased: nothing to write
        if self._released:
            return  # as before: an ended lease protects nothing
        line = new.to_json() + b"\n"
        # Other processes (a GC) read it from the page cache; after a crash it is void: no fsync.
        with self._registry._lock.shared():
            if self._lock_fd < 0:
                # Create and lock under the store lock, so recovery never takes it for
                # abandoned; the .json comes after its .lock (a .json alone is a dead one's).
                self._lock_fd = create_held_open(self._lock_file)
            fd = os.open(self._file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            try:
                written = os.write(fd, line)
                if written != len(line):  # a full disk: take the torn line back
                    os.ftruncate(fd, os.fstat(fd).st_size - written)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._file))
            finally:
                os.close(fd)
        self._roots = held | new

    def release(self) -> None:
        with self._adding:
            self._released = True
            if self._lock_fd < 0:
                return
            with self._registry._lock.shared():
                self._file.unlink(missing_ok=True)
                self._lock_file.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
