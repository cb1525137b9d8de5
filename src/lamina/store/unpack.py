"""Unpack an image's layers into snapshots, each once, and give the overlay lower directories.

The layer blobs are checked as they stream: the compressed bytes against the manifest's
digest and the uncompressed tar against the config's diff ID. A layer that fails either check
leaves no snapshot behind.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LaminaError
from ..image.digest import chain_ids
from ..image.source import Image
from .root import Store, StoreError


def unpack_image(store: Store, image: Image) -> list[Path]:
    """Make sure every layer of ``image`` is a snapshot; return the lowers, topmost first.

    The caller holds a lease (or a tag) on the image, so GC keeps the blobs meanwhile; the
    snapshots it makes are kept by GC as long as an image or a root references their chain.
    """
    from ..layer.apply import apply_layer
    from ..layer.compress import DigestReader, open_decompressed

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
        staging = snapshots.prepare(chain_id)
        try:
            with image.open_blob(desc) as blob:
                packed = DigestReader(blob)
                tar = DigestReader(open_decompressed(packed))
                try:
                    stats = apply_layer(tar, staging, lowers=snapshots.lowers(chain[:i]))
                except LaminaError as err:
                    # Say which layer: the entry name alone does not tell the user what to fix.
                    raise StoreError(f"layer {desc.digest} of image {image.digest()}: {err}",
                                     hint="run lamina system check; pull or load the image "
                                          "again if it is damaged") from err
            if packed.digest != desc.digest:
                raise StoreError(f"layer {desc.digest} does not match its digest "
                                 f"(read {packed.digest})", hint="run lamina system check")
            if tar.digest != diff_id:
                raise StoreError(f"layer {desc.digest} unpacks to {tar.digest}, not to the "
                                 f"diff ID {diff_id} its image records",
                                 hint="the image is damaged: pull or load it again")
        except BaseException:
            snapshots.abort(staging)
            raise
        snapshots.commit(staging, chain_id, chain[i - 1] if i else None, diff_id,
                         stats.content_bytes)
    return snapshots.lowers(chain)
