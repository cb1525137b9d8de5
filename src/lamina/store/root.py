"""The state root: where everything lamina keeps lives, and the one way to open it.

    <root>/                       $LAMINA_ROOT, else /var/lib/lamina
      oci-layout, index.json      an OCI image layout (layout.py): skopeo and umoci read it
      blobs/sha256/<hex>          content (content.py)
      ingest/<random>             blobs being written
      snapshots/<chain hex>/      unpacked layers (snapshots.py); .inflight/ those in the making
      roots/<name>.json           extra GC roots; leases/ the roots of operations in flight (gc.py)
      locks/store.lock            shared by mutations, exclusive for recovery and GC (locks.py)
      locks/index.lock            index.json read-modify-write
      locks/checked-boot          the boot ID of the last full recovery (see below)

``Store.open`` creates what is missing and, every time, recovers from crashes: under the
exclusive store lock it removes what dead processes left half done. Live writers keep their
temp files locked, so another process's work in flight is never touched. What a killed
process can leave is in small folders: ingest/, leases/, snapshots/.inflight/ and the root
(roots/ and snapshots/, which grow with the store, hold no temp files). An open that finds
those empty has nothing to recover and takes no lock. The first open after a boot
(``locks/checked-boot`` holds the boot ID of the last one) also checks every snapshot, since
only a power loss can leave one torn (snapshots.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.descriptor import Descriptor
from ..image.manifest import Index, Manifest, parse_manifest
from ..image.platform import Platform, host_platform
from ..image.reference import ImageReference, ReferenceError
from ..image.source import ImageBase
from .content import ContentStore
from .layout import ImageIndex, ImageNotFoundError
from .locks import TEMP_MARK, FileLock, atomic_write
from .roots import Roots, RootsRegistry
from .snapshots import Snapshotter

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO
    from .gc import GCResult

DEFAULT_ROOT = Path("/var/lib/lamina")
ROOT_ENV = "LAMINA_ROOT"


class StoreError(LaminaError):
    pass


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


@dataclass(frozen=True)
class Recovered:
    """What ``Store.open`` cleaned up after crashed processes."""

    ingests: tuple[Path, ...] = ()
    snapshots: tuple[Path, ...] = ()
    leases: tuple[Path, ...] = ()
    temp_files: tuple[Path, ...] = ()


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = FileLock(root / "locks" / "store.lock")
        self.content = ContentStore(root, self.lock)
        self.index = ImageIndex(root, self.lock, self.content)
        self.snapshots = Snapshotter(root, self.lock)
        self.roots = RootsRegistry(root, self.lock)
        self.recovered = Recovered()

    @classmethod
    def open(cls, root: Path | None = None) -> "Store":
        """Open (creating on first use) the store at ``root``, default ``default_root()``."""
        store = cls(Path(root) if root is not None else default_root())
        try:
            names = set(os.listdir(store.root))
        except OSError:   # missing, or not usable: _make_dirs says why
            names = set()
        # Ready: no first open, nothing went missing, writable (a read-only root goes the
        # locked way, whose error says so clearly).
        ready = _LAYOUT <= names and os.access(store.root / "locks", os.W_OK)
        if not ready:
            store._make_dirs()
        try:
            boot = _boot_id()
            checked = store.root / "locks" / "checked-boot"
            full = boot is None or _read_or_none(checked) != boot
            if not ready or full or store._in_flight(names):
                with store.lock.exclusive():
                    store.index.create()
                    store.recovered = store._recover(full=full)
                    if full and boot is not None:
                        atomic_write(checked, boot)   # durable: after what recovery removed
        except OSError as err:  # a read-only or full state root: a clear error, no traceback
            raise StoreError(f"cannot use the lamina store at {store.root}: {err.strerror}",
                             hint="the state root must be writable, with some free space "
                                  f"(remount it read-write, or set {ROOT_ENV})") from None
        return store

    def _make_dirs(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for sub in ("locks", "blobs/sha256", "ingest", "roots", "leases"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            # Unpacked layers may hold setuid files: only root may walk there.
            (self.root / "snapshots").mkdir(mode=0o700, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the lamina store at {self.root}: {err.strerror}",
                             hint=f"run as root, or set {ROOT_ENV} to a directory you own") \
                from None

    def _in_flight(self, root_names: set[str]) -> bool:
        """Whether a process is writing, or a dead one left something to clean: any temp
        file, ingest, lease, staging or trash directory (names only, no lock needed)."""
        if any(name.startswith(".") and TEMP_MARK in name for name in root_names):
            return True
        for directory in (self.content.ingest_dir, self.roots.leases_dir):
            with os.scandir(directory) as entries:
                if any(True for _ in entries):
                    return True
        # (roots/ is not listed: its writers put their temp files in ingest/)
        return self.snapshots.in_flight()

    def _recover(self, *, full: bool = True) -> Recovered:
        temp_files = []
        for directory in (self.root, self.root / "locks", self.roots.roots_dir,
                          self.roots.leases_dir):
            for entry in os.scandir(directory):
                if entry.name.startswith(".") and TEMP_MARK in entry.name:
                    os.unlink(entry.path)
                    temp_files.append(Path(entry.path))
        return Recovered(tuple(self.content.recover()), tuple(self.snapshots.recover(full=full)),
                         tuple(self.roots.recover()), tuple(temp_files))

    def image_descriptor(self, digest: str) -> Descriptor:
        """The descriptor of a stored manifest or index, checked to be complete here."""
        parsed = parse_manifest(self.content.read_bytes(digest))
        if isinstance(parsed, Manifest):
            needed = [parsed.config, *(d for d in parsed.layers if not d.urls)]
            missing = [d.digest for d in needed if not self.content.has(d.digest)]
            if missing:
                raise StoreError(f"image {digest} is incomplete: blob {missing[0]} is missing"
                                 + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                 hint="write every blob of an image before naming it")
        return parsed.descriptor()

    def tag(self, ref: str | ImageReference, digest: str) -> Descriptor | None:
        """Name the stored image with manifest ``digest``; return what the name meant before."""
        return self.index.set_tag(ref, self.image_descriptor(digest))

    def add_image(self, digest: str) -> Descriptor:
        """Keep the stored image with manifest ``digest`` without a name (``<none>``)."""
        desc = self.image_descriptor(digest)
        self.index.add(desc)
        return desc

    def resolve(self, name_or_id: str) -> Descriptor:
        """Find an image as Docker does: a name (``busybox``, ``name@sha256:...``), then an
        image ID or a unique prefix of one (``sha256:0a1b``, ``0a1b``)."""
        if name_or_id.startswith("sha256:"):  # else it would read as repository "sha256"
            return self._by_id_or_digest(name_or_id)
        try:
            ref = ImageReference.parse(name_or_id)
        except ReferenceError:
            if _is_hex(name_or_id):  # 64 hex characters: a full ID
                return self._by_id_or_digest(name_or_id)
            raise
        if ref.digest is not None:
            for entry in self.index.list():
                if entry.descriptor.digest == ref.digest:
                    return entry.descriptor
            raise ImageNotFoundError(f"no such image: {name_or_id}", reference=name_or_id,
                                     hint="pull it first")
        try:
            return self.index.get(name_or_id)
        except ImageNotFoundError:
            if _is_hex(name_or_id):
                try:
                    return self.index.find_by_id(name_or_id)
                except ImageNotFoundError:
                    pass
            raise

    def _by_id_or_digest(self, text: str) -> Descriptor:
        try:
            return self.index.find_by_id(text)
        except ImageNotFoundError:
            for entry in self.index.list():  # a full manifest digest names an image too
                if entry.descriptor.digest == text:
                    return entry.descriptor
            raise

    def image(self, name_or_id: str, platform: Platform | None = None) -> "StoredImage":
        """A stored image as an ``Image``; for an index, its manifest for ``platform``
        (default: this machine's)."""
        desc = self.resolve(name_or_id)
        if mt.is_index(desc.media_type):
            index = parse_manifest(self.content.read_bytes(desc.digest), desc.media_type)
            assert isinstance(index, Index)
            desc = index.select(platform or host_platform())
        return StoredImage(self.content, desc)

    def gc(self, extra_roots: Roots | None = None) -> GCResult:
        """Remove what no root reaches (see gc.py)."""
        from .gc import collect     # here: opening the store (every `run`) never collects
        return collect(self, extra_roots)


_LAYOUT = {"blobs", "index.json", "ingest", "leases", "locks", "oci-layout", "roots",
           "snapshots"}
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _boot_id() -> bytes | None:
    """This boot's ID: a power loss (or any reboot) changes it. None where it cannot be read."""
    try:
        with open(_BOOT_ID, "rb") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


class StoredImage(ImageBase):
    """An image in the local content store."""

    def __init__(self, content: ContentStore, descriptor: Descriptor) -> None:
        self._content = content
        self.descriptor = descriptor

    def manifest_bytes(self) -> bytes:
        return self._content.read_bytes(self.descriptor.digest)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._content.open_blob(desc.digest)
