"""The build cache in a registry (``--cache-to/--cache-from type=registry,ref=REF``).

The cache goes as one OCI image manifest at ``REF``, the artifact store/cache.py defines for
local exports (``artifactType`` and config media type
``application/vnd.lamina.buildcache.config.v1+json``; the config is the JSON of the cache
records, the layers are the layer blobs they name), pushed the way an image is (push.py):
each blob only after a ``HEAD`` says the repository lacks it, plain layers compressed on
the way (gzip by default). A layer sent compressed carries the annotation
``containerd.io/uncompressed`` with the digest of the plain tar the records name, as
BuildKit's cache manifests do, so that the import can restore the exact blob.

Import trusts nothing the registry serves: the manifest and config are checked against
their digests (the config's is in the manifest), each layer is streamed into the content
store (decompressed when it was sent compressed) and must have the digest and size the
records name; what fails is left out with a warning, as for a local export. Only the
layers the store lacks are downloaded, a few at a time.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.descriptor import Descriptor
from ..image.digest import sha256_digest
from ..image.manifest import Manifest, parse_manifest
from ..image.reference import ImageReference
from ..store import Store
from ..store.cache import (EXPORT_MEDIA_TYPE, OCI_MANIFEST, BuildCache, CacheArtifact,
                           CacheRecord, read_cache_config, read_cache_manifest)
from ..store.content import CHUNK, ContentError
from .client import Repository, Session
from .compressed import DEFAULT, check_compression, compressed_media_type
from .errors import RegistryError, TransferError, naming
from .mirrors import registry_endpoint
from .progress import ProgressCallback, ignore
from .push import BlobPusher

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

UNCOMPRESSED = "containerd.io/uncompressed"
DOWNLOAD_WORKERS = 3
MAX_CONFIG_SIZE = 64 << 20


class CacheFormatError(RegistryError):
    """What the registry holds at the cache reference is no lamina build cache."""


@dataclass(frozen=True)
class PushedCache:
    """A build cache exported to a registry: where it went, and how many records it holds."""

    reference: ImageReference
    digest: str          # of the cache manifest pushed
    records: int


def push_build_cache(store: Store, records: Iterable[CacheRecord], ref: ImageReference,
                     session: Session, *, compression: str | None = DEFAULT,
                     progress: ProgressCallback = ignore) -> PushedCache:
    """Push ``records`` (and the layer blobs they name, all in ``store``) as the cache
    manifest tagged ``ref`` (``NAME:TAG``), replacing the cache tagged there before."""
    assert ref.tag is not None and ref.digest is None, "push the cache to a NAME:TAG"
    method = check_compression(compression)
    artifact = CacheArtifact.of(records)
    # Plain layers may leave compressed: each names the plain tar it stands for.
    annotations = {d.digest: {UNCOMPRESSED: d.digest} for d in artifact.layers
                   if method is not None and compressed_media_type(d.media_type, method)}
    raw = artifact.manifest(annotations)
    try:
        repository = session.registry(registry_endpoint(ref.domain)).repository(
            ref.path, push=True)
        with store.roots.lease() as lease:
            config = artifact.config_descriptor
            lease.add(blobs=[config.digest, *(d.digest for d in artifact.layers)])
            store.content.put_bytes(artifact.config, config.digest)
            manifest = parse_manifest(raw, OCI_MANIFEST)
            assert isinstance(manifest, Manifest)
            pusher = BlobPusher(store, repository, str(ref), progress, None, method, lease)
            sent = pusher.push_blobs(manifest)
            digest = repository.put_manifest(ref.tag, sent, OCI_MANIFEST)
    except LaminaError as err:
        raise naming(err, str(ref)) from None
    return PushedCache(ref, digest, artifact.count)


def pull_build_cache(store: Store, ref: ImageReference, session: Session, lease: Any, *,
                     key_of: Callable[[Mapping[str, Any]], str] | None = None
                     ) -> tuple[int, list[str]]:
    """Import the cache manifest at ``ref`` (a tag or digest) into the build cache of
    ``store``: (records imported, warnings). Raises a RegistryError when the registry
    cannot be reached or has nothing there, a CacheFormatError when that is no cache."""
    try:
        repository = session.registry(registry_endpoint(ref.domain)).repository(ref.path)
        raw, _ = repository.get_manifest(ref.digest or ref.tag or "latest")
        try:
            manifest = read_cache_manifest(raw)
            config_desc = Descriptor.from_json(manifest["config"])
            layers = [Descriptor.from_json(d) for d in manifest["layers"]]
        except (ValueError, KeyError, TypeError, AttributeError, LaminaError) as err:
            raise CacheFormatError(f"{ref} is not a lamina build cache "
                                   f"({getattr(err, 'message', None) or err})",
                                   hint="name a cache pushed with --cache-to "
                                        "type=registry,ref=REF") from None
        config = _read_config(repository, config_desc)
        try:
            raw_records = read_cache_config(config)
        except ValueError as err:
            raise CacheFormatError(f"the cache config of {ref}: {err}") from None
    except LaminaError as err:
        raise naming(err, str(ref)) from None
    # The blob each record's layer digest is fetched from: itself, or a compressed copy.
    sources: dict[str, Descriptor] = {}
    for desc in layers:
        plain = (desc.annotations or {}).get(UNCOMPRESSED)
        sources[plain if isinstance(plain, str) else desc.digest] = desc
    fetcher = _Fetcher(store, repository, sources, str(ref))
    return BuildCache(store).import_records(raw_records, set(sources), fetcher.fetch,
                                            str(ref), lease, key_of)


def _read_config(repository: Repository, desc: Descriptor) -> bytes:
    if desc.media_type != EXPORT_MEDIA_TYPE or desc.size > MAX_CONFIG_SIZE:
        raise CacheFormatError(f"the cache config {desc.digest} is not one lamina wrote")
    transport = repository.registry.transport
    for attempt in range(transport.attempts):
        with repository.open_blob(desc.digest) as response:
            data = response.read(desc.size + 1)
        if sha256_digest(data) == desc.digest:
            return data
        if attempt == transport.attempts - 1:
            raise TransferError(f"the cache config {desc.digest} does not match its digest",
                                hint="the registry or the network damages downloads: "
                                     "try again later")
        time.sleep(transport.backoff * 2 ** attempt)
    raise AssertionError("unreachable")


class _Fetcher:
    """Downloads the layers the records need, each into the store as the plain blob they
    name (decompressing a compressed copy on the way); a few at a time."""

    def __init__(self, store: Store, repository: Repository,
                 sources: dict[str, Descriptor], reference: str) -> None:
        self._store = store
        self._repository = repository
        self._sources = sources
        self._reference = reference
        self._lock = threading.Lock()

    def fetch(self, missing: list[Descriptor], warnings: list[str]) -> set[str]:
        from ..image.archive import DECOMPRESSION_ERRORS   # a damaged compressed copy too

        failed: set[str] = set()

        def one(desc: Descriptor) -> None:
            try:
                self._fetch(desc)
            except (LaminaError, ValueError, *DECOMPRESSION_ERRORS) as err:
                with self._lock:
                    failed.add(desc.digest)
                    warnings.append(
                        f"cache import from {self._reference}: layer {desc.digest} could "
                        f"not be fetched ({getattr(err, 'message', None) or err}): the "
                        "steps that need it are not imported")

        with ThreadPoolExecutor(max(1, min(DOWNLOAD_WORKERS, len(missing))),
                                thread_name_prefix="lamina-cache-pull") as pool:
            list(pool.map(one, missing))
        return failed

    def _fetch(self, desc: Descriptor) -> None:
        from ..image.archive import DECOMPRESSION_ERRORS   # OSError, EOFError, zlib, zstd

        source = self._sources[desc.digest]

        def fetch() -> None:
            with self._repository.open_blob(source.digest) as response:
                stream: BinaryIO = _Limited(response, source.size)  # type: ignore
                if source.digest != desc.digest:
                    stream = _decompressed(stream, source.media_type)
                self._store.content.put_stream(_Limited(stream, desc.size),  # type: ignore
                                               desc.digest, desc.size)

        self._repository.registry.transport.retry(
            fetch, (TransferError, ContentError, *DECOMPRESSION_ERRORS))


def _decompressed(stream: BinaryIO, media_type: str) -> BinaryIO:
    from ..layer.compress import open_decompressed

    if not mt.is_layer(media_type) or mt.layer_compression(media_type) is None:
        raise ValueError(f"a blob of media type {media_type} cannot stand for a plain layer")
    return open_decompressed(stream)


class _Limited:
    """At most ``size`` + 1 bytes of a stream: one byte more shows a blob too long (the
    store then refuses it), and an endless answer costs no more than that."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._left = size + 1

    def read(self, size: int = CHUNK) -> bytes:
        if self._left <= 0:
            return b""
        data = self._stream.read(self._left if size is None or size < 0
                                 else min(size, self._left))
        self._left -= len(data)
        return data
