"""Push: an image of the store to a registry; blobs first, the manifest last.

For each blob (layers in parallel, then the config is among them too):
1. ``HEAD``: a blob the repository has is not sent again, so a push that failed halfway
   and is run again sends only what is missing;
2. a mount from another repository of the same registry known to hold it (sources.py):
   no bytes move; a refused mount leaves an upload session, used for step 3;
3. an upload: one ``PUT`` with the whole blob, or chunks (``PATCH`` + ``PUT``) for big blobs
   or when asked (quirks.py); a failed upload starts again from a new session, a few times.
Plain (uncompressed) layers, as builds store them, are compressed on the way (gzip by
default, as Docker does; compressed.py), the compressed blob kept and reused by later pushes.
Then the manifest, with its media type: raw when no layer was compressed (the digest pushed
is the digest stored), else with those layers' descriptors rewritten (a new digest, as with
Docker). An index is pushed after the manifests of its platforms (each by digest), every one
of which must be in the store; it is rewritten too when their digests changed. The digest
pushed is recorded as a RepoDigest of the local image (repodigests.py).
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ..errors import LaminaError
from ..image.descriptor import Descriptor
from ..image.digest import sha256_digest
from ..image.manifest import Index, Manifest, parse_manifest
from ..image.reference import ImageReference
from ..store import Store, StoredImage
from ..store.roots import Lease
from . import quirks
from .client import Repository, Session
from .compressed import (DEFAULT, CompressedLayers, check_compression, compressed_media_type,
                         rewrite_index, rewrite_manifest)
from .errors import RateLimitedError, TransferError, UnavailableError, naming
from .mirrors import registry_endpoint
from .progress import LayerProgress, ProgressCallback, ignore
from .repodigests import RepoDigests
from .sources import BlobSources

UPLOAD_WORKERS = 5    # Docker's max-concurrent-uploads
_RETRYABLE = (TransferError, UnavailableError, RateLimitedError)


@dataclass(frozen=True)
class PushedImage:
    """A manifest (or index) a push sent, as the registry now knows it."""

    reference: ImageReference  # with its tag
    digest: str                # of the manifest (or index) pushed
    size: int                  # of the manifest (or index) pushed, in bytes


def push_image(store: Store, ref: ImageReference, session: Session, *,
               progress: ProgressCallback = ignore,
               chunk_size: int | None = None,
               compression: str | None = DEFAULT) -> PushedImage:
    """Push the stored image named ``ref`` (``NAME:TAG``) to its registry; plain layers
    compressed with ``compression`` (``"gzip"``, ``"zstd"``, or ``"none"``/None: as stored)."""
    assert ref.tag is not None and ref.digest is None, "push a NAME:TAG"
    try:
        return _push(store, ref, session, progress, chunk_size, check_compression(compression))
    except LaminaError as err:
        raise naming(err, str(ref)) from None


def _push(store: Store, ref: ImageReference, session: Session, progress: ProgressCallback,
          chunk_size: int | None, method: str | None) -> PushedImage:
    desc = store.resolve(str(ref))
    endpoint = registry_endpoint(ref.domain)
    repository = session.registry(endpoint).repository(ref.path, push=True)
    with store.roots.lease() as lease:
        lease.add(images=[desc.digest])
        pusher = BlobPusher(store, repository, str(ref), progress, chunk_size, method, lease)
        raw = store.content.read_bytes(desc.digest)
        parsed = parse_manifest(raw, desc.media_type)
        if isinstance(parsed, Index):
            replaced: dict[str, tuple[str, int]] = {}
            for child in parsed.manifests:
                if not store.content.has(child.digest):
                    raise LaminaError(f"{ref} is an index whose manifest for {child.platform} "
                                      "is not in the store", hint="push a single-platform image")
                manifest = StoredImage(store.content, child).manifest()
                sent = pusher.push_blobs(manifest)
                digest = repository.put_manifest(sha256_digest(sent), sent, manifest.media_type)
                if digest != child.digest:
                    replaced[child.digest] = (digest, len(sent))
            if replaced:
                raw = rewrite_index(raw, replaced)
        else:
            raw = pusher.push_blobs(parsed)
        digest = repository.put_manifest(ref.tag, raw, parsed.media_type)
    RepoDigests(store.root, store.lock).record(
        desc.digest, ref.repository, digest,
        keep={entry.descriptor.digest for entry in store.index.list()})
    return PushedImage(ref, digest, len(raw))


class BlobPusher:
    """Sends a manifest's blobs to a repository (HEAD first, then a cross-repository mount,
    then an upload, compressing plain layers on the way); image pushes and build-cache
    exports share it."""

    def __init__(self, store: Store, repository: Repository, reference: str,
                 progress: ProgressCallback, chunk_size: int | None,
                 compression: str | None, lease: Lease) -> None:
        self._compression = compression
        self._compressed = CompressedLayers(store)
        self._lease = lease
        self._lease_lock = threading.Lock()
        self._store = store
        self._repository = repository
        self._reference = reference
        self._progress = progress
        self._chunk_size = chunk_size
        self._sources = BlobSources(store.root, store.lock)
        self._host = repository.registry.endpoint.host

    def push_blobs(self, manifest: Manifest) -> bytes:
        """Send the blobs of ``manifest`` the repository lacks; return the manifest to push:
        ``manifest.raw``, or a rewrite naming the compressed layers sent instead."""
        layers = [d for d in manifest.layers if not d.urls]  # foreign layers stay where they are
        for desc in layers:
            self._report(desc, "Preparing")
        blobs = [*layers, manifest.config]
        with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="lamina-push") as pool:
            futures = [pool.submit(self._push_blob, desc, desc in layers) for desc in blobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                raise naming(failed.exception(), self._reference)  # type: ignore[arg-type]
        sent = [future.result() for future in futures]
        self._sources.record(self._host, self._repository.name, [d.digest for d in sent])
        replaced = {old.digest: new for old, new in zip(blobs, sent) if new.digest != old.digest}
        return rewrite_manifest(manifest.raw, replaced) if replaced else manifest.raw

    def _blob_to_send(self, desc: Descriptor, report) -> Descriptor:
        """``desc``, or its compressed blob when it is a plain layer and push compresses."""
        if self._compression is None or \
                compressed_media_type(desc.media_type, self._compression) is None:
            return desc
        report(desc, "Compressing")
        blob, _ = self._compressed.compressed(desc, self._compression)
        with self._lease_lock:
            self._lease.add(blobs=[blob.digest])  # no GC removes it before it is sent
        return blob

    def _push_blob(self, layer: Descriptor, shown: bool) -> Descriptor:
        """Send one blob unless the repository has it; return the descriptor sent."""
        report = self._report if shown else (lambda *args: None)
        desc = self._blob_to_send(layer, report)
        if desc is not layer:
            # progress keeps the layer's ID, with the size of what is sent
            report = lambda _d, status, current=0: self._report(  # noqa: E731
                layer, status, current, desc.size)
        repository = self._repository
        if repository.has_blob(desc.digest):
            report(desc, "Layer already exists")
            return desc
        session = None
        for source in self._sources.repositories(self._host, desc.digest):
            if source == repository.name:
                continue  # the HEAD said it is gone from there
            try:
                session = repository.mount(desc.digest, source)
            except LaminaError:
                continue  # no pull access there, or gone: try the next, or upload
            if session is None:
                report(desc, f"Mounted from {source}")
                return desc
            break
        # the first attempt may continue the mount's session; a failed session is not
        # trusted, so each later attempt starts a new one
        sessions = iter([session])
        repository.registry.transport.retry(
            lambda: self._upload(desc, next(sessions, None), report), _RETRYABLE)
        report(desc, "Pushed", desc.size)
        return desc

    def _upload(self, desc: Descriptor, session: str | None, report) -> None:
        minimum = 0
        if session is None:
            session, minimum = self._repository.start_upload()
        chunk = self._chunk_size
        if chunk is None and desc.size > quirks.MONOLITHIC_LIMIT:
            chunk = quirks.DEFAULT_CHUNK_SIZE
        if chunk is not None:
            chunk = max(chunk, minimum)
        sent = 0

        def advance(count: int) -> None:
            nonlocal sent
            sent += count
            report(desc, "Pushing", sent)

        self._repository.upload(session, lambda: self._store.content.open_blob(desc.digest),
                                desc.size, desc.digest, chunk_size=chunk, progress=advance)

    def _report(self, desc: Descriptor, status: str, current: int = 0,
                total: int | None = None) -> None:
        self._progress(LayerProgress(self._reference, desc.digest, status, current,
                                     desc.size if total is None else total))

