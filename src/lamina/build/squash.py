"""``lamina build --squash``: the layers a build made, merged into one over its base image.

The steps are built and cached one by one as always; only the exported image changes: the
layers above the base image (where the target's chain of FROMs starts) become one layer
(layer/squash.py), and the history keeps every entry, the squashed steps' ones marked
``empty_layer`` except the last, which now stands for the merged layer. The result is
recorded in the build cache under the target's key, so that a rebuild with ``--squash`` that
finds every step cached does not squash again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile

from ..image import mediatypes as mt
from ..image.config import ImageConfig
from ..image.descriptor import Descriptor
from ..store.cache import BuildCache, CacheRecord
from .cachekey import parts_digest
from .steps import ImageState, StepContext, ensure_lowers

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO


def squash_state(ctx: StepContext, state: ImageState, base_layers: int,
                 base_history: int) -> ImageState:
    """``state`` with its layers above the first ``base_layers`` merged into one."""
    if len(state.layers) - base_layers <= 1:
        return state   # nothing to merge
    cache = BuildCache(ctx.store)
    parts = {"parent": f"squash:{state.key}", "instruction": f"squash above {base_layers}",
             "args": [], "files": None}   # not "sha256:": no sibling of the next step
    key = parts_digest(parts)
    record = cache.get(key)
    if record is not None:
        return ImageState(ImageConfig.parse(record.config), record.layers, state.key)
    base = _base_state(state, base_layers)
    lowers = ensure_lowers(ctx, base) if base_layers else []
    with contextlib.ExitStack() as stack:
        layers = [_seekable(ctx, stack, desc) for desc in state.layers[base_layers:]]
        with ctx.store.content.ingest() as blob:
            from ..layer.squash import squash_layers
            from ..layer.whiteout import stat_in_layers

            squash_layers(layers, blob,
                          base_has=lambda path: stat_in_layers(lowers, path) is not None)
            digest, size = blob.digest, blob.size
            ctx.lease.add(blobs=[digest])
            blob.commit(digest, size)
    config = _squashed_config(state.config, base_layers, base_history, digest)
    squashed = ImageState(config, (*state.layers[:base_layers],
                                   Descriptor(mt.OCI_LAYER, digest, size)), state.key)
    cache.put(CacheRecord(key, parts, config.to_json(), squashed.layers, None,
                          {"step": "--squash"}))
    return squashed


def _squashed_config(config: ImageConfig, base_layers: int, base_history: int,
                     diff_id: str) -> ImageConfig:
    history = list(config.history)
    made = [i for i in range(base_history, len(history)) if not history[i].empty_layer]
    for i in made[:-1]:
        history[i] = dataclasses.replace(history[i], empty_layer=True)
    rootfs = dataclasses.replace(config.rootfs,
                                 diff_ids=(*config.rootfs.diff_ids[:base_layers], diff_id))
    return dataclasses.replace(config, rootfs=rootfs, history=tuple(history))


def _base_state(state: ImageState, base_layers: int) -> ImageState:
    rootfs = dataclasses.replace(state.config.rootfs,
                                 diff_ids=state.config.rootfs.diff_ids[:base_layers])
    return dataclasses.replace(state, layers=state.layers[:base_layers],
                               config=dataclasses.replace(state.config, rootfs=rootfs))


def _seekable(ctx: StepContext, stack: contextlib.ExitStack, desc: Descriptor) -> BinaryIO:
    """A layer's tar, open for seeking: the blob itself when it is stored uncompressed (as
    the builder writes them), else a decompressed copy in the build's scratch space."""
    from ..layer import detect_compression, open_decompressed

    blob = stack.enter_context(ctx.store.content.open_blob(desc.digest))
    if detect_compression(blob.read(4)) is None:
        return blob
    blob.seek(0)
    copy = stack.enter_context(tempfile.TemporaryFile(dir=ctx.state_dir))
    stream = open_decompressed(blob)
    while chunk := stream.read(1 << 20):
        copy.write(chunk)
    return copy
