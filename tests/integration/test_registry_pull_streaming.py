"""A pull unpacks each layer while it downloads (registry/spool.py): a download that breaks
off or arrives damaged after the unpack has read part of it is tried again, and the layer is
unpacked again from the new download, so the pull still gives the exact image."""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from lamina.api.check import check
from lamina.api.registry import pull, push
from lamina.registry.errors import TransferError
from lamina.store import Store
from lamina.store.layout import ImageNotFoundError
from lamina.testing.images import Step, make_image
from lamina.testing.proxy import ALWAYS
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, registry, source, target, proxy)
from tests.integration.test_registry_distribution import Distribution

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")

BIG = 12 << 20  # large enough that the unpack reads part of it before the fault


def pushed(source: Store, registry: Distribution, name: str, big_layer: int):
    """An image of a small layer and a big one (at ``big_layer``), pushed: its reference
    through the proxy is made by the caller."""
    big = Step("ADD big", {"big.bin": os.urandom(BIG), "dir/small": b"beside the big file\n"})
    small = Step("ADD small", {"etc/small.conf": b"small layer\n"})
    steps = [big, small] if big_layer == 0 else [small, big]
    built = make_image(source, steps, tag=f"{registry.host}/{name}:1")
    push(f"{registry.host}/{name}:1", store=source)
    return built, big.files["big.bin"]


def unpacked(store: Store, built, path: str) -> bytes:
    for lower in store.snapshots.lowers(built.chain_ids):
        if (lower / path).is_file():
            return (lower / path).read_bytes()
    raise AssertionError(f"{path} is in no layer")


@pytest.mark.parametrize("kind", ["drop", "corrupt"])
@pytest.mark.parametrize("big_layer", [0, 1])
def test_a_fault_in_a_big_layer_mid_unpack_is_retried_and_the_image_is_exact(
        kind, big_layer, source, target, registry, proxy):
    name = f"stream/{kind}{big_layer}"
    built, big = pushed(source, registry, name, big_layer)
    layer = built.manifest.layers[big_layer].digest
    fault = proxy.fail(kind, method="GET", path=f"/blobs/{layer}")
    result = pull(f"{proxy.host}/{name}:1", store=target)
    assert fault.fired == 1
    assert result.manifest_digest == built.digest
    assert hashlib.sha256(unpacked(target, built, "big.bin")).digest() == \
        hashlib.sha256(big).digest()
    assert unpacked(target, built, "etc/small.conf") == b"small layer\n"
    assert check(store=target).ok
    assert not any(target.content.ingest_dir.iterdir())


def test_a_big_layer_that_never_arrives_whole_fails_the_pull_and_keeps_nothing(
        source, target, registry, proxy):
    built, _ = pushed(source, registry, "stream/never", 0)
    layer = built.manifest.layers[0].digest
    proxy.fail("drop", method="GET", path=f"/blobs/{layer}", times=ALWAYS)
    reference = f"{proxy.host}/stream/never:1"
    with pytest.raises(TransferError) as failed:
        pull(reference, store=target)
    assert reference in str(failed.value) and layer in str(failed.value)
    with pytest.raises(ImageNotFoundError):
        target.resolve(reference)
    assert not target.content.has(layer)
    assert not any(target.content.ingest_dir.iterdir())
    assert check(store=target).ok
