"""Images made by hand in a store, for tests: real gzip layers, a config with history (empty
layers included), a manifest, a tag, and optionally the snapshots an unpack would make.

    built = make_image(store, layers=3, tag="app:1")      # ADD, ENV, ADD, ENV, ADD, CMD
    built = make_image(store, [Step("RUN a", {"a": b"1"}), Step("ENV X=1")], unpack=True)
"""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass

from lamina.image import mediatypes as mt
from lamina.image.config import ContainerConfig, History, ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.digest import chain_ids
from lamina.image.manifest import Manifest, build_manifest
from lamina.image.platform import host_platform
from lamina.store import Store

CREATED = "2024-01-02T03:04:05Z"


@dataclass(frozen=True)
class Step:
    """One build step: ``files`` make its layer; None makes an empty layer (ENV, CMD, ...)."""

    created_by: str
    files: dict[str, bytes] | None = None
    comment: str = ""


@dataclass(frozen=True)
class BuiltImage:
    manifest: Manifest
    config_digest: str                 # the image ID
    diff_ids: tuple[str, ...]
    tar_sizes: tuple[int, ...]         # uncompressed size of each layer, bottom first
    steps: tuple[Step, ...] = ()

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @property
    def layer_digests(self) -> list[str]:
        return [d.digest for d in self.manifest.layers]

    @property
    def blobs(self) -> set[str]:
        return {self.digest, self.config_digest, *self.layer_digests}


def default_steps(layers: int, seed: str = "") -> list[Step]:
    """``layers`` ADD steps, each writing one file of its own size, with an ENV step after
    each but the last, and a CMD at the end: an empty layer between every two layers."""
    steps: list[Step] = []
    for i in range(layers):
        data = f"{seed}layer {i}\n".encode() * (100 * (i + 1))
        steps.append(Step(f"/bin/sh -c #(nop) ADD file:{i} in /data{i}", {f"data{i}": data}))
        steps.append(Step(f"/bin/sh -c #(nop)  ENV STEP={i}") if i < layers - 1
                     else Step('/bin/sh -c #(nop)  CMD ["/bin/sh"]'))
    return steps


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(store: Store, steps: list[Step] | None = None, *, layers: int = 2,
               tag: str | None = None, created: str = CREATED, seed: str = "",
               unpack: bool = False) -> BuiltImage:
    """Write a complete image into ``store`` (and tag it): ``steps``, else ``default_steps``.

    ``seed`` makes the content, so the digests, differ between images of the same shape.
    ``unpack`` also makes its snapshots, each recording its layer's uncompressed tar size.
    """
    steps = steps if steps is not None else default_steps(layers, seed)
    diff_ids, sizes, descs = [], [], []
    for step in steps:
        if step.files is None:
            continue
        tar = layer_tar(step.files)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        sizes.append(len(tar))
        blob = store.content.put_bytes(gzip.compress(tar, mtime=0))
        descs.append(Descriptor(mt.OCI_LAYER_GZIP, blob.digest, blob.size))
    platform = host_platform()
    config = ImageConfig(
        architecture=platform.architecture, os=platform.os, variant=platform.variant or None,
        created=created,
        config=ContainerConfig(env=("PATH=/usr/bin:/bin", f"SEED={seed}"), cmd=("/bin/sh",)),
        rootfs=RootFS(diff_ids=tuple(diff_ids)),
        history=tuple(History(created=created, created_by=s.created_by,
                              comment=s.comment or None, empty_layer=s.files is None)
                      for s in steps))
    config_blob = store.content.put_bytes(config.to_json())
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, config_blob.digest, config_blob.size),
                              descs)
    store.content.put_bytes(manifest.raw)
    if tag:
        store.tag(tag, manifest.digest)
    else:
        store.add_image(manifest.digest)
    built = BuiltImage(manifest, config_blob.digest, tuple(diff_ids), tuple(sizes), tuple(steps))
    if unpack:
        make_snapshots(store, built)
    return built


def make_snapshots(store: Store, built: BuiltImage) -> None:
    """The snapshots an unpack makes (a marker file in each; applying tars is not tested
    here), each recording its layer's uncompressed size."""
    parent = None
    for chain_id, diff_id, size in zip(built.chain_ids, built.diff_ids, built.tar_sizes):
        if not store.snapshots.exists(chain_id):
            fs = store.snapshots.prepare(chain_id)
            (fs / "layer").write_text(diff_id)
            store.snapshots.commit(fs, chain_id, parent, diff_id, size)
        parent = chain_id
