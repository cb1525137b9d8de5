"""Push: an image of the store to a registry; blobs first, the manifest last.

For each blob (layers in parallel, then the config is among them too):
1. ``HEAD``: a blob the repository has is not sent again, so a push that failed halfway
   and is run again sends only what is missing;
2. a mount from another repository of the same registry known to hold it (sources.py):
   no bytes move; a refused mount leaves an upload session, used for step 3;
3. an upload: one ``PUT`` with the whole blob, or chunks (``PATCH`` + ``PUT``) for big blobs
   or when asked (quirks.py); a failed upload starts again from a new session, a few times.
Then the manifest, raw, with its media type: the digest pushed is the digest stored. An
index is pushed after the manifests of its platforms (each by digest), every one of which
must be in the store.
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ..errors import LaminaError
from ..image.descriptor import Descriptor
from ..image.manifest import Index, Manifest, parse_manifest
from ..image.reference import ImageReference
from ..store import Store, StoredImage
from . import quirks
from .client import Repository, Session
from .errors import RateLimitedError, TransferError, UnavailableError
from .mirrors import registry_endpoint
from .progress import LayerProgress, ProgressCallback, ignore
from .sources import BlobSources

UPLOAD_WORKERS = 5    # Docker's max-concurrent-uploads
_RETRYABLE = (TransferError, UnavailableError, RateLimitedError)


@dataclass(frozen=True)
class PushedImage:
    reference: ImageReference  # with its tag
    digest: str                # of the manifest (or index) pushed
    size: int                  # of the manifest (or index) pushed, in bytes


def push_image(store: Store, ref: ImageReference, session: Session, *,
               progress: ProgressCallback = ignore,
               chunk_size: int | None = None) -> PushedImage:
    """Push the stored image named ``ref`` (``NAME:TAG``) to its registry."""
    assert ref.tag is not None and ref.digest is None, "push a NAME:TAG"
    desc = store.resolve(str(ref))
    endpoint = registry_endpoint(ref.domain)
    repository = session.registry(endpoint).repository(ref.path, push=True)
    pusher = _Pusher(store, repository, str(ref), progress, chunk_size)
    raw = store.content.read_bytes(desc.digest)
    parsed = parse_manifest(raw, desc.media_type)
    if isinstance(parsed, Index):
        for child in parsed.manifests:
            if not store.content.has(child.digest):
                raise LaminaError(f"{ref} is an index whose manifest for {child.platform} "
                                  "is not in the store", hint="push a single-platform image")
            manifest = StoredImage(store.content, child).manifest()
            pusher.push_blobs(manifest)
            repository.put_manifest(child.digest, manifest.raw, manifest.media_type)
    else:
        pusher.push_blobs(parsed)
    digest = repository.put_manifest(ref.tag, raw, parsed.media_type)
    return PushedImage(ref, digest, len(raw))


class _Pusher:
    def __init__(self, store: Store, repository: Repository, reference: str,
                 progress: ProgressCallback, chunk_size: int | None) -> None:
        self._store = store
        self._repository = repository
        self._reference = reference
        self._progress = progress
        self._chunk_size = chunk_size
        self._sources = BlobSources(store.root, store.lock)
        self._host = repository.registry.endpoint.host

    def push_blobs(self, manifest: Manifest) -> None:
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
                raise failed.exception()  # type: ignore[misc]
        self._sources.record(self._host, self._repository.name, [d.digest for d in blobs])

    def _push_blob(self, desc: Descriptor, shown: bool) -> None:
        report = self._report if shown else (lambda *args: None)
        repository = self._repository
        if repository.has_blob(desc.digest):
            report(desc, "Layer already exists")
            return
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
                return
            break
        transport = repository.registry.transport
        for attempt in range(transport.attempts):
            try:
                self._upload(desc, session, report)
                report(desc, "Pushed", desc.size)
                return
            except _RETRYABLE:
                if attempt == transport.attempts - 1:
                    raise
                session = None  # a failed session is not trusted: start a new one
                time.sleep(transport.backoff * 2 ** attempt)

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

    def _report(self, desc: Descriptor, status: str, current: int = 0) -> None:
        self._progress(LayerProgress(self._reference, desc.digest, status, current, desc.size))
