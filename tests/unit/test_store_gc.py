"""Garbage collection: tagged and registered content stays, the rest goes."""
from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from lamina.store import Roots, Store
from lamina.store.gc import GCError, usage

from .test_store_image import make_image, unpack

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def blobs_of(image) -> set[str]:
    manifest = image.manifest
    return {image.digest, manifest.config.digest, *(d.digest for d in manifest.layers)}


def test_gc_keeps_tagged_images_and_removes_the_rest(store):
    kept = make_image(store, [{"base": b"1"}, {"app": b"2"}], tag="kept")
    unpack(store, kept)
    stray = store.content.put_bytes(b"nobody uses me")
    gone = make_image(store, [{"other": b"3"}])  # written, never named
    unpack(store, gone)
    result = store.gc()
    assert set(result.removed_blobs) == blobs_of(gone) | {stray.digest}
    assert result.removed_snapshots == (gone.chain_ids[0],)
    assert set(store.content.digests()) == blobs_of(kept)
    assert [i.chain_id for i in store.snapshots.list()] == sorted(kept.chain_ids)
    assert store.image("kept").config().rootfs.diff_ids == kept.diff_ids
    assert store.gc().removed_blobs == ()


def test_bytes_freed_counts_blobs_and_snapshots(store):
    gone = make_image(store, [{"f": b"x" * 1000}])
    unpack(store, gone)  # the helper records 100 bytes per snapshot
    sizes = sum(store.content.size(d) for d in blobs_of(gone))
    assert store.gc().bytes_freed == sizes + 100


def test_untagging_frees_only_what_no_other_image_shares(store):
    base = {"base": b"shared base layer"}
    one = make_image(store, [base, {"one": b"1"}], tag="one")
    two = make_image(store, [base, {"two": b"2"}], tag="two")
    unpack(store, one)
    unpack(store, two)
    store.index.remove("one")
    result = store.gc()
    assert set(result.removed_blobs) == blobs_of(one) - blobs_of(two)
    assert result.removed_snapshots == (one.chain_ids[1],)
    assert store.snapshots.exists(one.chain_ids[0])  # the shared base stays


def test_untagged_images_in_the_index_are_kept(store):
    old = make_image(store, [{"v": b"1"}], tag="app")
    make_image(store, [{"v": b"2"}], tag="app")  # old is now <none>, as in Docker
    store.gc()
    assert blobs_of(old) <= set(store.content.digests())


def test_registered_roots_keep_content_until_removed(store):
    image = make_image(store, [{"cache": b"1"}])
    unpack(store, image)
    blob = store.content.put_bytes(b"cache record")
    store.roots.put("build-cache", Roots(images=frozenset({image.digest}),
                                         blobs=frozenset({blob.digest})))
    assert store.gc().removed_blobs == ()
    assert store.snapshots.exists(image.chain_ids[0])
    assert store.roots.remove("build-cache") is True
    result = store.gc()
    assert set(result.removed_blobs) == blobs_of(image) | {blob.digest}
    with pytest.raises(GCError, match="invalid GC root name"):
        store.roots.put("../escape", Roots())


def test_a_snapshot_root_keeps_its_parents(store):
    image = make_image(store, [{"a": b"1"}, {"b": b"2"}, {"c": b"3"}])
    unpack(store, image)
    result = store.gc(extra_roots=Roots(snapshots=frozenset({image.chain_ids[1]})))
    assert result.removed_snapshots == (image.chain_ids[2],)
    assert store.snapshots.exists(image.chain_ids[0])


def test_extra_roots_given_by_the_caller(store):
    image = make_image(store, [{"a": b"1"}])
    result = store.gc(extra_roots=Roots(images=frozenset({image.digest})))
    assert result.removed_blobs == ()


def test_a_lease_protects_an_operation_in_flight(store):
    with store.roots.lease() as lease:
        image = make_image(store, [{"pulled": b"layer"}])
        lease.add(images=[image.digest])
        assert store.gc().removed_blobs == ()
        store.tag("pulled", image.digest)
    assert os.listdir(store.roots.leases_dir) == []
    assert store.gc().removed_blobs == ()


def _lease_then_hang(root, digest, conn) -> None:
    lease = Store.open(root).roots.lease()
    lease.add(blobs=[digest])
    conn.send("leased")
    signal.pause()


def test_the_lease_of_a_dead_process_is_dropped_on_next_open(tmp_path):
    root = tmp_path / "root"
    blob = Store.open(root).content.put_bytes(b"leased blob")
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_lease_then_hang, args=(root, blob.digest, child))
    proc.start()
    parent.recv()
    live = Store.open(root)  # the owner is alive: its lease stays
    assert live.recovered.leases == () and live.gc().removed_blobs == ()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    store = Store.open(root)
    assert len(store.recovered.leases) == 2  # its .lock and .json
    assert store.gc().removed_blobs == (blob.digest,)


def test_gc_never_touches_writes_in_flight(store):
    make_image(store, [{"a": b"1"}], tag="a")
    with store.content.ingest() as writer:
        writer.write(b"half a layer")
        fs = store.snapshots.prepare(make_image(store, [{"b": b"2"}]).chain_ids[0])
        store.gc()
        assert writer.temp_path.exists() and fs.is_dir()
        store.snapshots.abort(fs)


def test_a_root_that_cannot_be_read_stops_gc(store):
    image = make_image(store, [{"a": b"1"}], tag="a")
    stray = store.content.put_bytes(b"stray")
    path = store.content.path(image.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"not a manifest")
    with pytest.raises(GCError, match=f"cannot read GC root {image.digest}"):
        store.gc()
    assert store.content.has(stray.digest)


def test_usage_tells_what_gc_would_free(store):
    kept = make_image(store, [{"k": b"kept"}], tag="k")
    unpack(store, kept)
    gone = make_image(store, [{"g": b"gone"}])
    unpack(store, gone)
    report = usage(store)
    assert set(report.blobs) == blobs_of(kept) | blobs_of(gone)
    assert report.referenced.blobs == frozenset(blobs_of(kept))
    assert report.referenced.snapshots == frozenset(kept.chain_ids)
    assert report.reclaimable_bytes == store.gc().bytes_freed


def test_an_empty_root_file_protects_nothing_and_a_damaged_one_stops_gc(store):
    """A root written without fsync comes back empty after a power loss: GC goes on (what it
    kept is checked again where it is used); any other damage stops GC, naming the file."""
    blob = store.content.put_bytes(b"cache record")
    store.roots.put("build-cache", Roots(blobs=frozenset({blob.digest})))
    root_file = next(store.roots.roots_dir.glob("*.json"))
    root_file.write_bytes(b"")
    assert store.gc().removed_blobs == (blob.digest,)
    root_file.write_bytes(b"{not json")
    with pytest.raises(GCError, match="is damaged"):
        store.gc()
