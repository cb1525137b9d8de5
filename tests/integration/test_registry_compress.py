"""Compress on push: plain layers (as builds store them) leave gzip-compressed, as Docker
sends them; the compressed blob is kept and reused; the manifest pushed names the compressed
layers, so its digest differs from the local one and is recorded as a RepoDigest."""
from __future__ import annotations

import json
import shutil
import time

import pytest

from lamina.api.check import check
from lamina.api.images import inspect
from lamina.api.registry import pull, push
from lamina.image import mediatypes as mt
from lamina.image.config import ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.digest import chain_ids, sha256_digest
from lamina.image.manifest import build_index, build_manifest
from lamina.image.platform import Platform, host_platform
from lamina.layer import compress as layer_compress
from lamina.registry import compressed
from lamina.registry.repodigests import RepoDigests
from lamina.store import Store
from tests.helpers_images import layer_tar, make_image
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, registry, source, target)
from tests.integration.test_registry_distribution import Distribution, skopeo

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")


@pytest.fixture
def compressions(monkeypatch) -> list[str]:
    """The compressions LayerBlobWriter made (so a test sees what was compressed again)."""
    made: list[str] = []
    real = layer_compress.LayerBlobWriter

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, sink, compression="gzip", **kwargs):
            made.append(compression)
            super().__init__(sink, compression, **kwargs)

    monkeypatch.setattr(compressed, "LayerBlobWriter", Counting)
    return made


def plain_image(store: Store, reference: str, *, docker: bool = False, seed: str = "",
                platform: Platform | None = None, tag: bool = True):
    """An image whose layers are plain tars (what a build stores); returns (tars, manifest)."""
    tars = [layer_tar({f"f{i}": f"{seed} layer {i}\n".encode() * 400}) for i in range(3)]
    layer_type = mt.DOCKER_LAYER if docker else mt.OCI_LAYER
    layers = []
    for tar in tars:
        blob = store.content.put_bytes(tar)
        layers.append(Descriptor(layer_type, blob.digest, blob.size))
    platform = platform or host_platform()
    config = ImageConfig(architecture=platform.architecture, os=platform.os,
                         variant=platform.variant or None,
                         rootfs=RootFS(diff_ids=tuple(sha256_digest(t) for t in tars)))
    config_blob = store.content.put_bytes(config.to_json())
    config_desc = Descriptor(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, config_blob.digest,
                             config_blob.size)
    manifest = build_manifest(config_desc, layers,
                              media_type=mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST)
    store.content.put_bytes(manifest.raw)
    if tag:
        store.tag(reference, manifest.digest)
    return tars, manifest


def remote_manifest(reference: str) -> dict:
    return json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}"))


def test_plain_layers_are_pushed_gzip_compressed(source, target, registry, compressions):
    reference = f"{registry.host}/compress/plain:1"
    tars, local = plain_image(source, reference, seed="plain")
    pushed = push(reference, store=source)
    assert pushed.digest != local.digest           # as with Docker: the manifest changed
    assert compressions == ["gzip"] * 3
    remote = remote_manifest(reference)
    assert [layer["mediaType"] for layer in remote["layers"]] == [mt.OCI_LAYER_GZIP] * 3
    assert remote["config"]["digest"] == local.config.digest  # same config, same diff IDs
    for layer, tar in zip(remote["layers"], tars):
        assert layer["size"] < len(tar)
    # skopeo copies it (it checks the digests and diff IDs)
    skopeo("copy", "--src-tls-verify=false", f"docker://{reference}",
           f"oci:{source.root.parent / 'copied'}:x")
    # lamina pulls it: the same image ID, the files there
    pulled = pull(reference, store=target)
    assert pulled.digest == pushed.digest
    assert pulled.image_id == local.config.digest
    assert [d.media_type for d in target.image(reference).layers()] == [mt.OCI_LAYER_GZIP] * 3
    lowers = target.snapshots.lowers(chain_ids(sha256_digest(t) for t in tars))
    assert (lowers[-1] / "f0").read_bytes() == b"plain layer 0\n" * 400
    # the pushed digest is a RepoDigest on both sides
    repo_digest = f"{registry.host}/compress/plain@{pushed.digest}"
    assert inspect(reference, store=source)["RepoDigests"] == [repo_digest]
    assert inspect(reference, store=target)["RepoDigests"] == [repo_digest]
    for store in (source, target):
        report = check(store=store)
        assert report.ok, report.problems


def test_a_second_push_reuses_the_compressed_blobs(source, registry, compressions):
    first = f"{registry.host}/compress/again:1"
    plain_image(source, first, seed="again")
    pushed = push(first, store=source)
    second = f"{registry.host}/compress/other:2"
    source.tag(second, source.resolve(first).digest)
    assert push(second, store=source).digest == pushed.digest
    assert compressions == ["gzip"] * 3            # not compressed again
    mapping = json.loads((source.root / f"{compressed.RECORD}.json").read_bytes())
    assert len(mapping) == 3 and all("gzip" in entry for entry in mapping.values())
    # Two repositories now hold the image: both are RepoDigests, the newest first.
    assert inspect(second, store=source)["RepoDigests"] == [
        f"{registry.host}/compress/other@{pushed.digest}",
        f"{registry.host}/compress/again@{pushed.digest}"]


def test_compressed_blobs_collected_by_gc_are_made_again(source, registry, compressions):
    reference = f"{registry.host}/compress/gc:1"
    plain_image(source, reference, seed="gc")
    pushed = push(reference, store=source)
    source.gc()                                    # nothing names the compressed blobs
    assert push(reference, store=source).digest == pushed.digest  # gzip is deterministic
    assert compressions == ["gzip"] * 6


def test_zstd_and_none_on_request(source, target, registry):
    reference = f"{registry.host}/compress/zstd:1"
    tars, local = plain_image(source, reference, seed="zstd")
    push(reference, store=source, compression="zstd")
    assert [layer["mediaType"] for layer in remote_manifest(reference)["layers"]] == \
        [mt.OCI_LAYER_ZSTD] * 3
    assert pull(reference, store=target).image_id == local.config.digest
    plain = f"{registry.host}/compress/none:1"
    source.tag(plain, local.digest)
    assert push(plain, store=source, compression="none").digest == local.digest
    with pytest.raises(Exception, match="unknown compression"):
        push(plain, store=source, compression="brotli")


def test_docker_manifests_get_docker_gzip_layers(source, target, registry):
    reference = f"{registry.host}/compress/docker:1"
    tars, local = plain_image(source, reference, docker=True, seed="docker")
    pushed = push(reference, store=source)
    remote = remote_manifest(reference)
    assert remote["mediaType"] == mt.DOCKER_MANIFEST
    assert [layer["mediaType"] for layer in remote["layers"]] == [mt.DOCKER_LAYER_GZIP] * 3
    assert pull(reference, store=target).digest == pushed.digest


def test_compressed_layers_go_as_they_are(source, registry, compressions):
    reference = f"{registry.host}/compress/gzipped:1"
    built = make_image(source, layers=2, tag=reference, seed=f"gz-{time.time()}")
    assert push(reference, store=source).digest == built.digest
    assert compressions == []
    assert inspect(reference, store=source)["RepoDigests"] == [
        f"{registry.host}/compress/gzipped@{built.digest}"]


def test_an_index_is_rewritten_with_its_compressed_manifests(source, target, registry):
    reference = f"{registry.host}/compress/multi:1"
    mine = host_platform()
    other = Platform("linux", "s390x") if mine.architecture != "s390x" else \
        Platform("linux", "amd64")
    _, local_mine = plain_image(source, reference, seed="multi-a", platform=mine, tag=False)
    _, local_other = plain_image(source, reference, seed="multi-b", platform=other, tag=False)
    index = build_index([local_mine.descriptor(platform=mine),
                         local_other.descriptor(platform=other)])
    source.content.put_bytes(index.raw)
    source.tag(reference, index.digest)
    pushed = push(reference, store=source)
    remote = remote_manifest(reference)
    assert pushed.digest != index.digest
    assert {m["digest"] for m in remote["manifests"]}.isdisjoint(
        {local_mine.digest, local_other.digest})
    pulled = pull(reference, store=target)
    assert pulled.digest == pushed.digest
    assert pulled.image_id == local_mine.config.digest
    assert inspect(reference, store=source)["RepoDigests"] == [
        f"{registry.host}/compress/multi@{pushed.digest}"]


def test_repodigests_file_drops_images_that_are_gone(source, tmp_path):
    digests = RepoDigests(source.root, source.lock)
    digests.record("sha256:" + "a" * 64, "example.com/a", "sha256:" + "1" * 64)
    digests.record("sha256:" + "b" * 64, "example.com/b", "sha256:" + "2" * 64,
                   keep={"sha256:" + "b" * 64})
    assert digests.of("sha256:" + "a" * 64) == []
    assert digests.familiar_of("sha256:" + "b" * 64) == ["example.com/b@sha256:" + "2" * 64]
    digests.record("sha256:" + "c" * 64, "docker.io/library/busybox", "sha256:" + "3" * 64)
    assert digests.familiar_of("sha256:" + "c" * 64) == ["busybox@sha256:" + "3" * 64]
