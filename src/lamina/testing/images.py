"""Images made by hand in a store, for tests: real gzip layers, a config with history (empty
layers included), a manifest, a name, and optionally the snapshots an unpack would make.
No container runs and no Dockerfile is read, so they take milliseconds and need no root.

    image = random_image(size=4096, layers=3, seed=1, tag="app:1", store=store)
    built = make_image(store, [Step("RUN a", {"a": b"1"}), Step("ENV X=1")], unpack=True)

The same arguments give the same bytes, hence the same digests, on any machine.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from ..image import mediatypes as mt
from ..image.config import ContainerConfig, History, ImageConfig, RootFS
from ..image.descriptor import Descriptor
from ..image.digest import chain_ids, sha256_digest
from ..image.manifest import Manifest, build_manifest
from ..image.platform import host_platform

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..store import Store

__all__ = ["CREATED", "BuiltImage", "Step", "default_steps", "layer_tar", "make_image",
           "make_snapshots", "random_image"]

CREATED = "2024-01-02T03:04:05Z"    # every made image's date: digests must not depend on now


@dataclass(frozen=True)
class Step:
    """One build step: ``files`` make its layer; None makes an empty layer (ENV, CMD, ...)."""

    created_by: str
    files: dict[str, bytes] | None = None
    comment: str = ""


@dataclass(frozen=True)
class BuiltImage:
    """What ``make_image`` and ``random_image`` wrote."""

    manifest: Manifest
    config_digest: str                 # the image ID
    diff_ids: tuple[str, ...]
    tar_sizes: tuple[int, ...]         # uncompressed size of each layer, bottom first
    steps: tuple[Step, ...] = ()

    @property
    def digest(self) -> str:
        """The manifest digest (what a registry and ``repo@sha256:...`` name)."""
        return self.manifest.digest

    @property
    def image_id(self) -> str:
        return self.config_digest

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
    """An uncompressed layer tar of regular files (mode 0644, sorted, times zero)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(store: "Store | str | os.PathLike[str] | None", steps: Sequence[Step] | None = None,
               *, layers: int = 2, tag: str | None = None, created: str = CREATED,
               seed: str = "", unpack: bool = False) -> BuiltImage:
    """Write a complete image into ``store`` (a Store, a state root folder, or None for
    ``$LAMINA_ROOT``) and name it ``tag`` (else keep it untagged): ``steps``, else
    ``default_steps(layers, seed)``.

    ``seed`` makes the content, so the digests, differ between images of the same shape.
    ``unpack`` also makes its snapshots, for tests of sizes and garbage collection only: they
    hold a marker file, not the layer's files, so a container of that image would see the
    markers (leave it False for an image to run: ``run`` unpacks the real layers).
    """
    store = _store(store)
    steps = list(steps) if steps is not None else default_steps(layers, seed)
    diff_ids, sizes, descs = [], [], []
    for step in steps:
        if step.files is None:
            continue
        tar = layer_tar(step.files)
        diff_ids.append(sha256_digest(tar))
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


def random_image(size: int = 1024, layers: int = 1, *, sizes: Sequence[int] | None = None,
                 seed: int | str = 0, tag: str | None = None,
                 store: "Store | str | os.PathLike[str] | None" = None) -> BuiltImage:
    """An image of ``layers`` layers, each one file of ``size`` random bytes (or one layer per
    entry of ``sizes``), written into ``store`` (a Store, a state root folder, or None for
    ``$LAMINA_ROOT``) and named ``tag``. The bytes come from ``seed``: the same seed gives the
    same digests, another seed other ones. Random bytes do not compress, so the blobs are
    about as big as the files: what a test of transfer or disk usage wants."""
    sizes = list(sizes) if sizes is not None else [size] * layers
    if not sizes or any(not isinstance(n, int) or n < 0 for n in sizes):
        raise UsageError(f"random_image: invalid layer sizes {sizes}",
                         hint="give size= and layers= (1 or more), or sizes=[bytes, ...]")
    rng = random.Random(f"lamina-random-image:{seed}")
    steps = []
    for i, n in enumerate(sizes):
        data = rng.randbytes(n)
        name = f"random/{i}-{hashlib.sha256(data).hexdigest()[:12]}"
        steps.append(Step(f"/bin/sh -c #(nop) ADD file:{name} in /{name}", {name: data}))
    steps.append(Step('/bin/sh -c #(nop)  CMD ["/bin/sh"]'))
    return make_image(store, steps, tag=tag, seed=str(seed))


def make_snapshots(store: "Store", built: BuiltImage) -> None:
    """The snapshots an unpack makes (a marker file in each; applying tars is not tested
    here), each recording its layer's uncompressed size."""
    parent = None
    for chain_id, diff_id, size in zip(built.chain_ids, built.diff_ids, built.tar_sizes):
        if not store.snapshots.exists(chain_id):
            fs = store.snapshots.prepare(chain_id)
            (fs / "layer").write_text(diff_id)
            store.snapshots.commit(fs, chain_id, parent, diff_id, size)
        parent = chain_id


def _store(store: "Store | str | os.PathLike[str] | None") -> "Store":
    from ..store import Store

    if isinstance(store, Store):
        return store
    return Store.open(store)
