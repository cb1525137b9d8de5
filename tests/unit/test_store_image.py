"""Images in the store: tagging a complete image, finding it by name or ID, reading it back.

``make_image`` and ``unpack`` are used by the other store tests too.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

import pytest

from lamina.image import mediatypes as mt
from lamina.image.config import ContainerConfig, History, ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.digest import chain_ids
from lamina.image.manifest import Manifest, build_index, build_manifest
from lamina.image.platform import Platform, host_platform
from lamina.image.reference import ReferenceError
from lamina.image.source import Image
from lamina.store import Store
from lamina.store.layout import AmbiguousImageIDError, ImageNotFoundError
from lamina.store.root import StoreError
from lamina.testing.images import layer_tar


@dataclass(frozen=True)
class BuiltImage:
    manifest: Manifest
    config_digest: str
    diff_ids: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)


def make_image(store: Store, layers: list[dict[str, bytes]], *, tag: str | None = None,
               label: str = "", platform: Platform | None = None) -> BuiltImage:
    """Write a complete image (gzip layers, config, manifest) into the store."""
    platform = platform or host_platform()
    diff_ids, layer_descs = [], []
    for files in layers:
        tar = layer_tar(files)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        blob = store.content.put_bytes(gzip.compress(tar, mtime=0))
        layer_descs.append(Descriptor(mt.OCI_LAYER_GZIP, blob.digest, blob.size))
    config = ImageConfig(architecture=platform.architecture, os=platform.os,
                         variant=platform.variant or None,
                         config=ContainerConfig(cmd=("/bin/sh",),
                                                labels={"test": label} if label else None),
                         rootfs=RootFS(diff_ids=tuple(diff_ids)),
                         history=tuple(History(created_by=f"layer {i}")
                                       for i in range(len(layers))))
    config_blob = store.content.put_bytes(config.to_json())
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, config_blob.digest, config_blob.size),
                              layer_descs)
    store.content.put_bytes(manifest.raw)
    if tag:
        store.tag(tag, manifest.digest)
    return BuiltImage(manifest, config_blob.digest, tuple(diff_ids))


def unpack(store: Store, image: BuiltImage) -> list[str]:
    """Make the snapshots of an image (files written directly; apply is another module's job)."""
    parent = None
    for chain_id, diff_id in zip(image.chain_ids, image.diff_ids):
        if not store.snapshots.exists(chain_id):
            fs = store.snapshots.prepare(chain_id)
            (fs / "layer").write_text(diff_id)
            store.snapshots.commit(fs, chain_id, parent, diff_id, 100)
        parent = chain_id
    return image.chain_ids


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def test_a_stored_image_reads_back_as_an_image(store):
    built = make_image(store, [{"a.txt": b"a"}, {"b.txt": b"b"}], tag="example")
    image = store.image("example")
    assert all(callable(getattr(image, name, None)) for name in _interface(Image))
    assert image.digest() == built.digest and image.manifest_bytes() == built.manifest.raw
    assert image.config().rootfs.diff_ids == built.diff_ids
    layer = image.layers()[1]
    with image.open_blob(layer) as stream:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(stream.read()))) as tar:
            assert tar.getnames() == ["b.txt"]


def test_an_incomplete_image_cannot_be_tagged(store):
    built = make_image(store, [{"a": b"1"}])
    store.content.delete(built.manifest.layers[0].digest)
    with pytest.raises(StoreError, match="incomplete.*" + built.manifest.layers[0].digest):
        store.tag("x", built.digest)
    assert store.index.list() == []


def test_resolve_by_name_id_prefix_and_digest(store):
    built = make_image(store, [{"a": b"1"}], tag="localhost:5000/team/app:v1")
    desc = store.index.get("localhost:5000/team/app:v1")
    image_id = built.config_digest
    for text in ["localhost:5000/team/app:v1", image_id, image_id[7:], image_id[7:19],
                 image_id[:19], f"localhost:5000/team/app@{built.digest}", built.digest]:
        assert store.resolve(text).digest == desc.digest, text


def test_a_name_is_tried_before_an_id(store):
    by_id = make_image(store, [{"a": b"1"}])
    store.add_image(by_id.digest)
    prefix = by_id.config_digest[7:11]
    named = make_image(store, [{"b": b"2"}], tag=prefix)  # a tag that looks like the ID prefix
    assert store.resolve(prefix).digest == named.digest
    assert store.resolve("sha256:" + prefix).digest == by_id.digest


def test_unknown_images_are_reported(store):
    make_image(store, [{"a": b"1"}], tag="present")
    for text in ["absent", "abcdef", "sha256:" + "0" * 64, "0" * 64]:
        with pytest.raises(ImageNotFoundError) as err:
            store.resolve(text)
        assert "no such image" in str(err.value)
    for text in ["", "Upper"]:  # not a name, not an ID: the name's error is the useful one
        with pytest.raises(ReferenceError):
            store.resolve(text)


def test_ambiguous_id_prefix_is_an_error(store):
    seen: dict[str, str] = {}
    for n in range(40):  # two config digests sharing a first hex digit, surely
        built = make_image(store, [{"a": b"1"}], label=str(n))
        store.add_image(built.digest)
        first = built.config_digest[7]
        if first in seen:
            break
        seen[first] = built.digest
    with pytest.raises(AmbiguousImageIDError, match="matches 2 images") as err:
        store.resolve(first)
    assert "more characters" in err.value.hint


def test_an_index_resolves_to_the_host_platform(store):
    host = make_image(store, [{"a": b"host"}], platform=host_platform())
    other_platform = Platform("linux", "s390x")
    other = make_image(store, [{"a": b"other"}], platform=other_platform)
    index = build_index([other.manifest.descriptor(platform=other_platform),
                         host.manifest.descriptor(platform=host_platform())])
    store.content.put_bytes(index.raw)
    store.tag("multi:1", index.digest)
    assert store.image("multi:1").digest() == host.digest
    assert store.image("multi:1", other_platform).digest() == other.digest
    assert json.loads(store.image("multi:1").config_bytes())["architecture"] \
        == host_platform().architecture


def _interface(protocol: type) -> list[str]:
    """The methods an Image must have: those its Protocol class declares."""
    names = [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    assert names
    return names
