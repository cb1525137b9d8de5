"""Whole images and layers into the store: copy an image, store a layer, commit a new image.

- ``copy_image(store, source, lease=...)`` is the copy routine of load (and pull): the
  manifest and config are copied raw, so the manifest digest and the image ID survive; each
  layer streams in once, checked on the way against its blob digest and size *and* against
  the diff ID the config gives it (the layer is decompressed as it passes). Blobs the store
  already has are not read again.
- ``put_layer(store, tarball, lease=...)`` stores a layer from a tarball, as ``docker
  import`` does: gzip and zstd kept as they are, plain, bzip2 and xz gzip-compressed.
- ``commit_image(store, config, layers, tags=..., lease=...)`` writes a new image (import,
  build) whose layers are already stored: its config, an OCI manifest, then its names; the
  blobs' names are made durable (``ContentStore.sync_names``) before the image's.

All write under the caller's lease (gc.py), which they add each blob to before writing it: a
garbage collection running meanwhile keeps everything, and a crash leaves only unnamed blobs
that the next collection removes. Callers name images last, once every blob is in.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..image import mediatypes as mt
from ..image.config import ConfigError, ImageConfig
from ..image.descriptor import Descriptor
from ..image.manifest import Manifest
from ..image.mutate import assemble
from ..image.reference import ImageReference
from ..image.source import Image
from ..layer import LayerError
from .content import CHUNK, ContentError, DigestMismatchError, IngestWriter
from .root import Store

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:   # tarfile, gzip, zstandard cost start-up: imported where layers are read
    from typing import BinaryIO, Protocol

    from ..layer.compress import LayerBlobWriter
    from .roots import Lease

    class _Readable(Protocol):
        def read(self, size: int = -1, /) -> bytes: ...


class DiffIDMismatchError(DigestMismatchError):
    """A layer whose uncompressed content is not the diff ID the image config gives it."""


@dataclass(frozen=True)
class StoredLayer:
    """A layer put into the store."""

    descriptor: Descriptor  # of the blob, for the manifest
    diff_id: str            # of the tar inside, for the config


def copy_image(store: Store, source: Image, *, lease: Lease) -> Manifest:
    """Copy ``source`` into ``store`` without naming it; return its manifest.

    Raises ContentError (with the digest of the blob at fault) for content that is not what
    the manifest or config says; nothing of that blob stays.
    """
    manifest = source.manifest()
    config_bytes = source.config_bytes()  # checked against its descriptor by the source
    diff_ids = ImageConfig.parse(config_bytes).rootfs.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ConfigError(f"image {manifest.digest}: the config lists {len(diff_ids)} layers "
                          f"but the manifest {len(manifest.layers)}",
                          hint="the image is inconsistent: build or export it again")
    lease.add(images=[manifest.digest],
              blobs=[manifest.config.digest, *(layer.digest for layer in manifest.layers)])
    for layer, diff_id in zip(manifest.layers, diff_ids):
        if not store.content.has(layer.digest):
            with source.open_blob(layer) as stream:
                _copy_layer(store, stream, layer, diff_id)
    store.content.put_bytes(config_bytes, manifest.config.digest)
    store.content.put_bytes(manifest.raw, manifest.digest)
    return manifest


def put_layer(store: Store, tarball: BinaryIO, *, lease: Lease) -> StoredLayer:
    """Store a layer from a tarball: plain, gzip, bzip2, xz or zstd.

    As Docker does, a gzip or zstd tarball is kept byte for byte, and a plain, bzip2 or xz
    one is stored gzip-compressed. The tar is read through, so a file that is not a tar is
    refused (LayerError) and nothing is kept.
    """
    from ..image.archive import decompress, sniff_compression
    from ..layer.compress import DigestReader, LayerBlobWriter

    compression, raw = sniff_compression(tarball)
    with store.content.ingest() as blob:
        if compression in ("gzip", "zstd"):
            teed = _Tee(raw, blob)
            tar = DigestReader(decompress(compression, teed))
            _read_tar(tar, compression)
            _drain(teed)
            media_type, diff_id = mt.layer_media_type(compression), tar.digest
        else:
            writer = LayerBlobWriter(blob, "gzip")
            _read_tar(_Tee(decompress(compression, raw), writer), compression)
            media_type, diff_id = mt.layer_media_type("gzip"), writer.close().diff_id
        lease.add(blobs=[blob.digest])
        stored = blob.commit()
    return StoredLayer(Descriptor(media_type, stored.digest, stored.size), diff_id)


def commit_image(store: Store, config: ImageConfig | bytes, layers: Sequence[Descriptor], *,
                 tags: Iterable[str | ImageReference] = (), lease: Lease) -> Descriptor:
    """Write a new image whose layer blobs are in the store already; name it ``tags``.

    ``config`` as an ImageConfig is written as canonical JSON, as bytes it is kept as is.
    Each tag moves to the new image (the image it named before stays, maybe untagged); with
    no tag the image is kept untagged. Returns the manifest descriptor.
    """
    config_bytes, manifest = assemble(config, layers)
    lease.add(images=[manifest.digest],
              blobs=[manifest.config.digest, *(layer.digest for layer in layers)])
    # One fsync of the blobs folder before the names, for these two and for layers committed
    # with sync_name=False (a build's): after a power loss a named image has all its blobs.
    store.content.put_bytes(config_bytes, manifest.config.digest, sync_name=False)
    store.content.put_bytes(manifest.raw, manifest.digest, sync_name=False)
    store.content.sync_names()
    # Every blob was just written: name the image without reading its manifest back.
    desc = manifest.descriptor()
    tags = list(tags)
    for tag in tags:
        store.index.set_tag(tag, desc)
    if not tags:
        store.index.add(desc)
    return desc


def _copy_layer(store: Store, stream: BinaryIO, desc: Descriptor, diff_id: str) -> None:
    from ..image.archive import DECOMPRESSION_ERRORS, decompress
    from ..layer.compress import DigestReader

    with store.content.ingest() as writer:
        raw = _Tee(stream, writer)
        try:
            tar = DigestReader(decompress(mt.layer_compression(desc.media_type), raw))
            _drain(tar)
        except DECOMPRESSION_ERRORS as err:
            raise ContentError(f"layer {desc.digest} cannot be decompressed: {err}",
                               digest=desc.digest,
                               hint="the layer is damaged or not what its media type says") \
                from None
        _drain(raw)  # bytes after the end of the compressed data are blob bytes too
        # A wrong blob is reported as such by commit. But when the blob is the one the
        # manifest names, or the manifest only repeats the diff ID (the plain layers of an
        # old docker save archive), a tar other than the config says is the config's fault.
        blob_named = (writer.digest, writer.size) == (desc.digest, desc.size)
        if (blob_named or desc.digest == diff_id) and tar.digest != diff_id:
            raise DiffIDMismatchError(
                f"layer {desc.digest} holds a tar with digest {tar.digest}, but the image "
                f"config gives it diff ID {diff_id}", digest=desc.digest,
                hint="the image config does not match its layers: export the image again")
        writer.commit(desc.digest, desc.size)


def _read_tar(stream: _Readable, compression: str | None) -> None:
    """Read a tar through to its end (and the padding after it), checking its headers."""
    import tarfile

    from ..image.archive import DECOMPRESSION_ERRORS

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for _ in tar:
                pass
        _drain(stream)
    except tarfile.TarError as err:
        raise LayerError(f"not a tar archive ({err})",
                         hint="give a tar of a root file system, plain or compressed with "
                              "gzip, bzip2, xz or zstd") from None
    except DECOMPRESSION_ERRORS as err:
        raise LayerError(f"the {compression} data cannot be decompressed ({err})",
                         hint="the file is damaged or cut short") from None


def _drain(stream: _Readable) -> None:
    while stream.read(CHUNK):
        pass


class _Tee:
    """Reads ``source`` and writes every byte read into ``sink`` as well."""

    def __init__(self, source: _Readable, sink: "IngestWriter | LayerBlobWriter") -> None:
        self._source = source
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._sink.write(data)
        return data
