"""Faults between lamina and the real registry: a proxy (lamina.testing.proxy) in front of
``docker-registry`` drops a connection mid-body, flips a byte, or answers 500 or 429 at a
chosen request. Each pull and push either succeeds after a retry or fails with a message
naming the reference; a failed pull leaves no name, and ``system check`` stays clean."""
from __future__ import annotations

import shutil
import time

import pytest

from lamina.api.check import check
from lamina.api.registry import pull, push
from lamina.registry.errors import RateLimitedError, TransferError, UnavailableError
from lamina.store import Store
from lamina.store.layout import ImageNotFoundError
from lamina.testing.proxy import ALWAYS
from tests.helpers_images import make_image
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, registry, source, target, proxy)
from tests.integration.test_registry_distribution import Distribution

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")


_counter = iter(range(1000))


def pushed_image(source: Store, registry: Distribution, layers: int = 3):
    """An image of its own (content and repository), pushed straight to the registry."""
    n = next(_counter)
    reference = f"{registry.host}/faults/app{n}:1"
    built = make_image(source, layers=layers, tag=reference, seed=f"faults-{n}-{time.time()}")
    push(reference, store=source)
    return f"faults/app{n}:1", built


def assert_clean(store: Store) -> None:
    report = check(store=store)
    assert report.ok, [f"{p.subject}: {p.message}" for p in report.problems]
    assert not any(store.content.ingest_dir.iterdir()), "an ingest was left behind"


def assert_no_name(store: Store, reference: str) -> None:
    with pytest.raises(ImageNotFoundError):
        store.resolve(reference)


# -- pull ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["drop", "corrupt", "500", "429"])
def test_pull_succeeds_after_one_fault_on_a_layer(kind, source, target, registry, proxy):
    name, built = pushed_image(source, registry)
    layer = built.manifest.layers[1].digest
    fault = proxy.fail(kind, method="GET", path=f"/blobs/{layer}")
    reference = f"{proxy.host}/{name}"
    pulled = pull(reference, store=target)
    assert fault.fired == 1
    assert pulled.manifest_digest == built.digest
    assert len(proxy.requests("GET", f"/blobs/{layer}")) == 2  # the failure, then the retry
    assert target.resolve(reference).digest == built.digest
    assert_clean(target)


@pytest.mark.parametrize("kind", ["drop", "corrupt", "500"])
def test_pull_succeeds_after_one_fault_on_the_manifest_or_config(kind, source, target,
                                                                  registry, proxy):
    name, built = pushed_image(source, registry)
    manifest = proxy.fail(kind, method="GET", path="/manifests/1$")
    config = proxy.fail(kind, method="GET", path=f"/blobs/{built.manifest.config.digest}")
    pulled = pull(f"{proxy.host}/{name}", store=target)
    assert (manifest.fired, config.fired) == (1, 1)
    assert pulled.image_id == built.config_digest
    assert_clean(target)


def test_pull_waits_as_429_retry_after_asks(source, target, registry, proxy):
    name, built = pushed_image(source, registry, layers=1)
    proxy.fail("429", method="GET", path="/manifests/", retry_after=1)
    started = time.monotonic()
    pull(f"{proxy.host}/{name}", store=target)
    assert time.monotonic() - started >= 1.0


def test_pull_of_an_always_damaged_layer_fails_naming_the_reference_and_keeps_nothing(
        source, target, registry, proxy):
    name, built = pushed_image(source, registry)
    layer = built.manifest.layers[2].digest
    proxy.fail("corrupt", method="GET", path=f"/blobs/{layer}", times=ALWAYS)
    reference = f"{proxy.host}/{name}"
    with pytest.raises(TransferError) as caught:
        pull(reference, store=target)
    message = str(caught.value)
    assert reference in message and layer in message
    assert "attempts" in message
    assert_no_name(target, reference)
    assert not target.content.has(layer)
    target.gc()
    assert_clean(target)
    # A later pull without the fault trusts nothing of the failed one and succeeds.
    proxy.clear()
    assert pull(reference, store=target).manifest_digest == built.digest
    assert_clean(target)
    for desc in target.image(reference).layers():
        target.content.verify(desc.digest)


def test_pull_of_a_layer_always_cut_short_fails_clearly(source, target, registry, proxy):
    name, built = pushed_image(source, registry)
    layer = built.manifest.layers[0].digest
    proxy.fail("drop", method="GET", path=f"/blobs/{layer}", times=ALWAYS)
    reference = f"{proxy.host}/{name}"
    with pytest.raises(TransferError, match="cut short") as caught:
        pull(reference, store=target)
    assert reference in str(caught.value)
    assert_no_name(target, reference)
    assert_clean(target)


def test_pull_from_a_registry_failing_with_500_fails_clearly(source, target, registry, proxy):
    name, _ = pushed_image(source, registry, layers=1)
    proxy.fail("500", path="/manifests/", times=ALWAYS)
    reference = f"{proxy.host}/{name}"
    with pytest.raises(UnavailableError, match="failed with 500") as caught:
        pull(reference, store=target)
    assert reference in str(caught.value)
    assert_no_name(target, reference)
    assert_clean(target)


def test_pull_rate_limited_for_long_fails_at_once_naming_the_wait(source, target, registry,
                                                                   proxy):
    name, _ = pushed_image(source, registry, layers=1)
    proxy.fail("429", path="/manifests/", times=ALWAYS, retry_after=3600)
    reference = f"{proxy.host}/{name}"
    started = time.monotonic()
    with pytest.raises(RateLimitedError, match="429") as caught:
        pull(reference, store=target)
    assert time.monotonic() - started < 10
    assert reference in str(caught.value) and "3600" in str(caught.value)
    assert_no_name(target, reference)
    assert_clean(target)


def test_pull_whose_layer_fails_midway_leaves_nothing_for_unpack_to_trust(
        source, target, registry, proxy):
    name, built = pushed_image(source, registry, layers=3)
    proxy.fail("500", method="GET", path=f"/blobs/{built.manifest.layers[2].digest}",
               times=ALWAYS)
    reference = f"{proxy.host}/{name}"
    with pytest.raises(UnavailableError):
        pull(reference, store=target)
    assert_no_name(target, reference)
    assert_clean(target)
    proxy.clear()
    pull(reference, store=target)
    assert_clean(target)


# -- push ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["drop", "500", "429"])
def test_push_succeeds_after_one_fault_on_an_upload(kind, source, target, registry, proxy):
    reference = f"{proxy.host}/faults/push-{kind}:1"
    built = make_image(source, layers=3, tag=reference, seed=f"push-{kind}-{time.time()}")
    fault = proxy.fail(kind, method="PUT", path="/blobs/uploads/")
    pushed = push(reference, store=source)
    assert fault.fired == 1
    assert pushed.digest == built.digest
    assert pull(f"{registry.host}/faults/push-{kind}:1", store=target).manifest_digest \
        == built.digest
    assert_clean(source)


@pytest.mark.parametrize("kind", ["500", "429"])
def test_push_succeeds_after_one_fault_on_a_head_or_the_manifest(kind, source, registry,
                                                                  proxy):
    reference = f"{proxy.host}/faults/manifest-{kind}:1"
    built = make_image(source, layers=2, tag=reference, seed=f"manifest-{kind}-{time.time()}")
    head = proxy.fail(kind, method="HEAD", path="/blobs/")
    manifest = proxy.fail(kind, method="PUT", path="/manifests/")
    assert push(reference, store=source).digest == built.digest
    assert (head.fired, manifest.fired) == (1, 1)


def test_push_in_chunks_survives_a_dropped_chunk(source, target, registry, proxy):
    reference = f"{proxy.host}/faults/chunks:1"
    built = make_image(source, layers=2, tag=reference, seed=f"chunks-{time.time()}")
    fault = proxy.fail("drop", method="PATCH", nth=2)
    push(reference, store=source, chunk_size=64)
    assert fault.fired == 1
    assert pull(f"{registry.host}/faults/chunks:1", store=target).manifest_digest == built.digest


def test_failed_push_names_the_reference_and_a_retry_sends_no_blob_again(source, registry,
                                                                         proxy):
    reference = f"{proxy.host}/faults/retry:1"
    built = make_image(source, layers=3, tag=reference, seed=f"retry-{time.time()}")
    proxy.fail("500", method="PUT", path="/manifests/", times=ALWAYS)
    with pytest.raises(UnavailableError, match="failed with 500") as caught:
        push(reference, store=source)
    assert reference in str(caught.value)
    assert len(proxy.requests("POST", "/blobs/uploads/")) == 4  # 3 layers and the config
    proxy.clear()
    proxy.log.clear()
    assert push(reference, store=source).digest == built.digest
    assert proxy.requests("POST", "/blobs/uploads/") == []
    assert proxy.requests("PUT", "/blobs/") == []
    assert_clean(source)


def test_push_to_an_always_failing_upload_fails_clearly(source, registry, proxy):
    reference = f"{proxy.host}/faults/broken:1"
    make_image(source, layers=1, tag=reference, seed=f"broken-{time.time()}")
    proxy.fail("drop", method="PUT", path="/blobs/uploads/", times=ALWAYS)
    with pytest.raises(UnavailableError) as caught:
        push(reference, store=source)
    assert reference in str(caught.value)
    assert_clean(source)
