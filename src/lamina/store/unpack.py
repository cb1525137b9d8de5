"""Unpack an image's layers into snapshots, each once, and give the overlay lower directories.

The layer blobs are checked as they stream: the compressed bytes against the manifest's
digest (unless the stream checks them itself: a pull's download) and the uncompressed tar
against the config's diff ID. A layer that fails either check leaves no snapshot behind.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LaminaError
from ..image.descriptor import Descriptor
from ..image.digest import chain_ids
from ..image.source import Image
from .root import Store, StoreError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:   # the layer code loads only when a layer is unpacked
    from ..layer import LayerStats


class BlobRestarted(LaminaError):
    """A blob stream broke off and its source serves it again from the start (a download
    tried again): the layer is unpacked again from scratch."""


def unpack_image(store: Store, image: Image) -> list[Path]:
    """Make sure every layer of ``image`` is a snapshot; return the lowers, topmost first.

    The caller holds a lease (or a tag) on the image, so GC keeps the blobs meanwhile; the
    snapshots it makes are kept by GC as long as an image or a root references their chain.
    """
    layers = image.layers()
    diff_ids = list(image.config().rootfs.diff_ids)
    if len(layers) != len(diff_ids):
        raise StoreError(
            f"image {image.digest()} has {len(layers)} layers but its config lists "
            f"{len(diff_ids)} diff IDs", hint="the image is damaged: pull or load it again")
    chain = chain_ids(diff_ids)
    snapshots = store.snapshots
    for i, (desc, diff_id, chain_id) in enumerate(zip(layers, diff_ids, chain)):
        if snapshots.exists(chain_id):
            continue
        while True:
            staging = snapshots.prepare(chain_id)
            try:
                stats = _apply_blob(image, desc, diff_id, staging, snapshots.lowers(chain[:i]))
            except BlobRestarted:
                snapshots.abort(staging)
                continue  # the source serves the blob again from its start
            except BaseException:
                snapshots.abort(staging)
                raise
            break
        snapshots.commit(staging, chain_id, chain[i - 1] if i else None, diff_id,
                         stats.content_bytes)
    return snapshots.lowers(chain)


def _apply_blob(image: Image, desc: Descriptor, diff_id: str, staging: Path,
                lowers: list[Path]) -> LayerStats:
    from ..layer.apply import apply_layer
    from ..layer.compress import DigestReader, open_decompressed

    with image.open_blob(desc) as blob:
        # A stream that checks its own digest (a pull's download) is not hashed twice.
        packed = None if getattr(blob, "digest_checked", False) else DigestReader(blob)
        tar = DigestReader(open_decompressed(packed or blob))
        try:
            stats = apply_layer(tar, staging, lowers=lowers)
        except BlobRestarted:
            raise
        except LaminaError as err:
            # A source that may serve the blob again (a download tried again) tells whether
            # these bytes were final: else this raises BlobRestarted or the source's error.
            settle = getattr(blob, "settle", None)
            if settle is not None:
                settle()
            # Say which layer: the entry name alone does not tell the user what to fix.
            raise StoreError(f"layer {desc.digest} of image {image.digest()}: {err}",
                             hint="run lamina system check; pull or load the image "
                                  "again if it is damaged") from err
    if packed is not None and packed.digest != desc.digest:
        raise StoreError(f"layer {desc.digest} does not match its digest "
                         f"(read {packed.digest})", hint="run lamina system check")
    if tar.digest != diff_id:
        raise StoreError(f"layer {desc.digest} unpacks to {tar.digest}, not to the "
                         f"diff ID {diff_id} its image records",
                         hint="the image is damaged: pull or load it again")
    return stats
