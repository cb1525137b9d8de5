"""Pull: a registry's image into the store, through the one copy routine.

``RegistryImage`` is an ``Image`` (image/source.py) whose manifest is what the registry
served, raw, and whose blobs stream from the repository, so ``copy_image`` copies it as it
copies an archive. Pull adds what a network needs around it:

1. resolve the reference (a mirror first for docker.io, mirrors.py): tag or digest -> raw
   manifest; an index -> the manifest of the platform asked for (default: this machine's);
   then the config, checked against its digest;
2. fetch the layers the store lacks in parallel, each streamed into the content store and
   checked against its digest and size on the way (store/content.py), again from the start
   after a cut or damaged download, a few times;
3. meanwhile, unpack into snapshots (store/unpack.py, which checks each layer's diff ID),
   in order, each layer read from its download file as it is written (spool.py): a blob is
   fetched, written and read once, and unpacking runs alongside the downloads;
4. ``copy_image``: the config and the manifest, raw, and the checks of the whole image;
5. only then tag. Everything is written under a lease, so a pull that fails leaves no name
   and nothing a later command trusts: the next garbage collection removes what it wrote.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from ..errors import LaminaError
from ..image.descriptor import Descriptor
from ..image.digest import chain_ids
from ..image.manifest import Index, Manifest, parse_manifest
from ..image.platform import Platform, host_platform
from ..image.reference import ImageReference
from ..image.source import ImageBase, ImageError
from ..store import Store
from ..store.commit import copy_image
from ..store.content import CHUNK, ContentStore, DigestMismatchError, IngestWriter
from ..store.layout import ImageNotFoundError
from .client import Repository, Session
from .errors import RegistryError, TransferError, naming
from .mirrors import Endpoint, pull_endpoints
from .progress import LayerProgress, ProgressCallback, ignore
from .repodigests import RepoDigests
from .sources import BlobSources
from .spool import Spool

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

DOWNLOAD_WORKERS = 3   # Docker's max-concurrent-downloads
_WRITE_BEHIND = 8      # chunks received ahead of the ingest file's writing


class RegistryImage(ImageBase):
    """An image in a registry: its manifest as served, its blobs streamed on demand, or
    read from ``local`` (the store pulled into) when it has them already."""

    def __init__(self, repository: Repository, raw: bytes,
                 local: ContentStore | None = None) -> None:
        self.repository = repository
        self._raw = raw
        self._local = local

    def manifest_bytes(self) -> bytes:
        return self._raw

    def config_bytes(self) -> bytes:
        """The config, checked against its digest; a download cut short or damaged is tried
        again, a few times."""
        transport = self.repository.registry.transport
        return transport.retry(
            super().config_bytes, (TransferError, ImageError),
            lambda err: TransferError(
                f"config {self.manifest().config.digest} of {self.repository}: "
                f"{err.message} ({transport.attempts} attempts)",
                hint="the registry or the network damages downloads: try again later"))

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if self._local is not None and self._local.has(desc.digest):
            return self._local.open_blob(desc.digest)
        return self.repository.open_blob(desc.digest)  # type: ignore[return-value]


@dataclass(frozen=True)
class PulledImage:
    """An image a pull stored: the manifest for this platform, and what had to be downloaded."""

    reference: ImageReference  # as asked for, with the default tag
    digest: str                # the registry's digest: of the index when a tag names one
    manifest: Manifest         # of the platform pulled; its digest is the stored image's
    fetched: tuple[str, ...]   # the layer digests downloaded (the others were here)
    up_to_date: bool           # the name already meant this image
    endpoint: str              # where it came from (a mirror or the registry)


def resolve(repository: Repository, reference: str, platform: Platform,
            local: ContentStore | None = None) -> tuple[RegistryImage, str]:
    """The image a tag or digest names, the manifest for ``platform`` when it names an
    index; and the digest the registry knows it by."""
    raw, media_type = repository.get_manifest(reference)
    parsed = parse_manifest(raw, media_type)
    if isinstance(parsed, Index):
        chosen = parsed.select(platform)
        child, _ = repository.get_manifest(chosen.digest)
        return RegistryImage(repository, child, local), parsed.digest
    return RegistryImage(repository, raw, local), parsed.digest


def find_image(session: Session, ref: ImageReference, platform: Platform,
               local: ContentStore | None = None) -> tuple[RegistryImage, str, Endpoint]:
    """Resolve ``ref`` on the first endpoint that serves it: a mirror that fails is
    skipped, as Docker does, and the registry itself is asked last."""
    endpoints = pull_endpoints(ref, session.config)
    for endpoint in endpoints:
        repository = session.registry(endpoint).repository(ref.path)
        try:
            image, digest = resolve(repository, ref.digest or ref.tag or "latest", platform,
                                    local)
            return image, digest, endpoint
        except RegistryError:
            if not endpoint.mirror:
                raise
    raise AssertionError("the registry itself is always the last endpoint")


def pull_image(store: Store, ref: ImageReference, session: Session, *,
               platform: Platform | None = None, progress: ProgressCallback = ignore,
               unpack: bool = True) -> PulledImage:
    """Pull ``ref`` (``with_default_tag`` applied by the caller) into ``store`` and name it.
    A failure names ``ref``."""
    try:
        return _pull(store, ref, session, platform, progress, unpack)
    except LaminaError as err:
        raise naming(err, str(ref)) from None


def _pull(store: Store, ref: ImageReference, session: Session, platform: Platform | None,
          progress: ProgressCallback, unpack: bool) -> PulledImage:
    image, digest, endpoint = find_image(session, ref, platform or host_platform(),
                                         store.content)
    manifest = image.manifest()
    image.config_bytes()  # fetched and checked before any layer: a bad image fails early
    reference = str(ref)
    present = _present(store, ref)
    with store.roots.lease() as lease:
        # The snapshots too: until the manifest is stored, the leased image references
        # nothing for GC, and an image removed meanwhile may share the lower ones.
        lease.add(images=[manifest.digest],
                  blobs=[manifest.config.digest, *(d.digest for d in manifest.layers)],
                  snapshots=chain_ids(image.config().rootfs.diff_ids) if unpack else ())
        missing = [d for d in manifest.layers if not d.urls and not store.content.has(d.digest)]
        for desc in manifest.layers:
            if desc not in missing:
                progress(LayerProgress(reference, desc.digest, "Already exists"))
        with _Downloads(store, image, missing, reference, progress) as downloads:
            if unpack:
                # Each layer unpacks while it downloads, once those below it are
                # unpacked: unpacking overlaps the downloads.
                from ..store.unpack import unpack_image
                try:
                    unpack_image(store, _Arriving(image, store, downloads))
                except LaminaError:
                    # A failed download is what the user has to know about, not the
                    # unpack it cut short.
                    if downloads.failure is not None:
                        raise downloads.failure from None
                    raise
            downloads.finish()
        copy_image(store, image, lease=lease)  # every layer is in: the config and manifest
        for desc in missing:
            progress(LayerProgress(reference, desc.digest, "Pull complete"))
        if ref.digest is None:
            store.tag(ref, manifest.digest)
        else:
            store.add_image(manifest.digest)
    BlobSources(store.root, store.lock).record(
        endpoint.host, ref.path, [manifest.config.digest, *(d.digest for d in manifest.layers)])
    RepoDigests(store.root, store.lock).record(
        manifest.digest, ref.repository, digest,
        keep={entry.descriptor.digest for entry in store.index.list()})
    return PulledImage(ref, digest, manifest, tuple(d.digest for d in missing),
                       manifest.digest in present, str(endpoint))


def _present(store: Store, ref: ImageReference) -> set[str]:
    """The manifest digests that make this pull change nothing: the image the tag names
    now; for a digest, any image the store keeps."""
    if ref.digest is not None:
        return {entry.descriptor.digest for entry in store.index.list()}
    try:
        return {store.index.get(ref).digest}
    except ImageNotFoundError:
        return set()


class _Downloads:
    """The layers the store lacks, downloading a few at a time. The first failure stops
    the others (at their next chunk) and is the one reported."""

    def __init__(self, store: Store, image: RegistryImage, layers: list[Descriptor],
                 reference: str, progress: ProgressCallback) -> None:
        for desc in layers:
            progress(LayerProgress(reference, desc.digest, "Waiting", 0, desc.size))
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, min(DOWNLOAD_WORKERS, len(layers))),
                                        thread_name_prefix="lamina-pull")
        self._spools = {desc.digest: Spool(desc.digest) for desc in layers}
        self._futures = [self._pool.submit(self._run, store, image, desc, reference, progress)
                         for desc in layers]

    def _run(self, store: Store, image: RegistryImage, desc: Descriptor, reference: str,
             progress: ProgressCallback) -> None:
        spool = self._spools[desc.digest]
        try:
            _fetch_layer(store, image, desc, reference, progress, self._stop, spool)
        except BaseException as err:
            with self._lock:
                self._failure = self._failure or err
            self._stop.set()
            for other in self._spools.values():  # readers of any layer stop waiting
                other.fail(self._failure)
            raise

    def open(self, digest: str) -> BinaryIO | None:
        """The blob as it downloads, None if it is not one of these downloads."""
        spool = self._spools.get(digest)
        return spool.reader() if spool is not None else None  # type: ignore[return-value]

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def finish(self) -> None:
        wait(self._futures)
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> "_Downloads":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # nothing is left after finish(); after a failure, stop the rest
        self._pool.shutdown(wait=True, cancel_futures=True)
        for spool in self._spools.values():
            spool.close()


class _Arriving(ImageBase):
    """The image being pulled, its blobs read as they download (spool.py), or from the
    store for those it had."""

    def __init__(self, image: RegistryImage, store: Store, downloads: _Downloads) -> None:
        self._image = image
        self._store = store
        self._downloads = downloads

    def manifest_bytes(self) -> bytes:
        return self._image.manifest_bytes()

    def config_bytes(self) -> bytes:
        return self._image.config_bytes()

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._downloads.open(desc.digest) or self._store.content.open_blob(desc.digest)


def _fetch_layer(store: Store, image: RegistryImage, desc: Descriptor, reference: str,
                 progress: ProgressCallback, stop: threading.Event, spool: Spool) -> None:
    transport = image.repository.registry.transport
    for attempt in range(transport.attempts):
        try:
            with image.repository.open_blob(desc.digest) as stream, \
                    store.content.ingest() as writer:
                spool.begin(writer.temp_path)
                counted = _Counted(stream, desc, reference, progress, stop)
                with _WriteBehind(writer, spool) as behind:
                    while chunk := counted.read(CHUNK):
                        behind.write(chunk)
                writer.commit(desc.digest, desc.size)
            spool.complete()
            progress(LayerProgress(reference, desc.digest, "Download complete",
                                   desc.size, desc.size))
            return
        except (TransferError, DigestMismatchError) as err:
            if stop.is_set():
                raise
            if attempt == transport.attempts - 1:
                raise TransferError(
                    f"{reference}: layer {desc.digest}: {err.message} "
                    f"({transport.attempts} attempts)",
                    hint="the registry or the network damages downloads: try again later; "
                         "nothing of this layer was kept") from None
            time.sleep(transport.backoff * 2 ** attempt)


class _WriteBehind:
    """Writes a download's chunks into its ingest file (which hashes them) on a thread of
    its own, a few chunks behind: receiving overlaps hashing and writing (all three let go
    of the GIL), and the download is no longer one thread's sum of the three."""

    def __init__(self, writer: IngestWriter, spool: Spool) -> None:
        self._writer = writer
        self._spool = spool
        self._queue: queue.Queue[bytes | None] = queue.Queue(_WRITE_BEHIND)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lamina-pull-write",
                                        daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep taking chunks: write() must never block for good
            try:
                self._writer.write(chunk)
                self._spool.advance(len(chunk))
            except BaseException as err:  # raised again in the downloading thread
                self._error = err

    def __enter__(self) -> "_WriteBehind":
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


class _Counted:
    """Reads a download, telling ``progress`` how far it got; stops past the blob's size
    (the store then refuses the blob) and when another layer failed."""

    def __init__(self, stream: BinaryIO, desc: Descriptor, reference: str,
                 progress: ProgressCallback, stop: threading.Event) -> None:
        self._stream = stream
        self._desc = desc
        self._reference = reference
        self._progress = progress
        self._stop = stop
        self._done = 0

    def read(self, size: int = CHUNK) -> bytes:
        if self._stop.is_set():
            raise TransferError(f"{self._reference}: download of {self._desc.digest} stopped",
                                hint="another layer failed")
        left = self._desc.size + 1 - self._done  # one byte more shows a blob too long
        data = self._stream.read(min(size, left)) if left > 0 else b""
        self._done += len(data)
        if data:
            self._progress(LayerProgress(self._reference, self._desc.digest, "Downloading",
                                         self._done, self._desc.size))
        return data


def remote_tags(session: Session, ref: ImageReference) -> list[str]:
    """The tags of ``ref``'s repository, from the first endpoint that answers."""
    for endpoint in pull_endpoints(ref, session.config):
        try:
            return session.registry(endpoint).repository(ref.path).tags()
        except RegistryError:
            if not endpoint.mirror:
                raise
    raise AssertionError("the registry itself is always the last endpoint")

