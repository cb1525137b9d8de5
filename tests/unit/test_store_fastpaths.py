"""The store's cheap paths keep its promises: leases that write only what is new, roots and
records rewritten without a flush, snapshots committed without fsync (a power loss is caught
by the first open after the boot), index.json parsed once while it does not change, and an
open that takes no lock when nothing is in flight."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from lamina.image.digest import chain_ids
from lamina.store import Roots, Store
from lamina.store.cache import BuildCache, CacheRecord
from lamina.store.gc import GCError

from .test_store_image import make_image

DIFF_IDS = ["sha256:" + hashlib.sha256(s).hexdigest() for s in (b"base", b"middle", b"top")]
CHAINS = chain_ids(DIFF_IDS)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def lease_files(store: Store) -> list[str]:
    return sorted(os.listdir(store.roots.leases_dir))


# ------------------------------------------------------------------ leases

def test_a_lease_that_adds_nothing_writes_nothing(store):
    blob = store.content.put_bytes(b"kept")
    with store.roots.lease() as lease:
        lease.add()
        assert lease_files(store) == []
        lease.add(blobs=[blob.digest])
        files = lease_files(store)
        assert len(files) == 2   # its .lock and .json
        json_file = store.roots.leases_dir / next(f for f in files if f.endswith(".json"))
        before = json_file.read_bytes()
        lease.add(blobs=[blob.digest])   # already held: the file stays as it is
        assert json_file.read_bytes() == before
    assert lease_files(store) == []


def test_gc_keeps_the_union_of_every_add(store):
    first, second = store.content.put_bytes(b"one"), store.content.put_bytes(b"two")
    stray = store.content.put_bytes(b"nobody")
    with store.roots.lease() as lease:
        lease.add(blobs=[first.digest])
        lease.add(blobs=[first.digest, second.digest])
        assert store.roots.load().blobs == {first.digest, second.digest}
        assert store.gc().removed_blobs == (stray.digest,)
        assert store.content.has(first.digest) and store.content.has(second.digest)
    assert set(store.gc().removed_blobs) == {first.digest, second.digest}


def test_an_unfinished_last_line_is_not_read_but_a_damaged_line_is_reported(store):
    blob = store.content.put_bytes(b"leased")
    with store.roots.lease() as lease:
        lease.add(blobs=[blob.digest])
        path = next(store.roots.leases_dir.glob("*.json"))
        with open(path, "ab") as out:   # as a reader holding the lock shared may see it
            out.write(b'{"blobs":["sha256:')
        assert store.roots.load().blobs == {blob.digest}
        with open(path, "ab") as out:
            out.write(b'\n')
        with pytest.raises(GCError, match="is damaged") as err:
            store.roots.load()
        assert "remove the file" in err.value.hint


# ------------------------------------------------------------------ roots and records

def test_a_root_rewritten_with_the_same_content_is_left_alone(store):
    blob = store.content.put_bytes(b"cached")
    store.roots.put("cache-x", Roots(blobs=frozenset([blob.digest])), durable=False)
    path = store.roots.roots_dir / "cache-x.json"
    inode = path.stat().st_ino
    store.roots.put("cache-x", Roots(blobs=frozenset([blob.digest])), durable=False)
    assert path.stat().st_ino == inode
    other = store.content.put_bytes(b"other")
    store.roots.put("cache-x", Roots(blobs=frozenset([other.digest])), durable=False)
    assert store.roots.load().blobs == {other.digest}
    assert os.listdir(store.roots.roots_dir) == ["cache-x.json"]   # no temp file left


def test_a_record_put_again_replaces_the_old_one(store):
    cache = BuildCache(store)
    image = make_image(store, [{"f": b"1"}])
    layers = image.manifest.layers
    key = "sha256:" + "ab" * 32
    for config in (b'{"n":1}', b'{"n":2}'):   # as a --no-cache rebuild does
        cache.put(CacheRecord(key, {"step": "RUN x"}, config, layers), snapshots=())
    found = cache.get(key)
    assert found is not None and found.config == b'{"n":2}'
    assert os.listdir(cache.dir / "records") == [key[7:] + ".json"]
    store.gc()   # the record's root keeps its layer (the untagged manifest goes)
    assert all(store.content.has(d.digest) for d in layers)
    assert cache.get(key) is not None


# ------------------------------------------------------------------ snapshots

def make(store: Store, level: int) -> None:
    fs = store.snapshots.prepare(CHAINS[level])
    (fs / f"file{level}").write_text(f"layer {level}")
    info = store.snapshots.commit(fs, CHAINS[level], CHAINS[level - 1] if level else None,
                                  DIFF_IDS[level], 10 + level)
    assert info == store.snapshots.info(CHAINS[level])   # what commit returns is what is kept


def new_boot(store: Store) -> None:
    """What a power loss changes for the store: the next open runs in another boot."""
    (store.root / "locks" / "checked-boot").unlink()


@pytest.mark.parametrize("damage", ["empty", "torn", "missing", "no marker", "other chain"])
def test_after_a_power_loss_a_torn_snapshot_is_absent_and_made_again(store, damage):
    make(store, 0)
    make(store, 1)
    make(store, 2)
    directory = store.snapshots.dir / CHAINS[1][7:]
    meta = directory / "metadata.json"
    if damage == "empty":
        meta.write_bytes(b"")
    elif damage == "torn":
        meta.write_bytes(meta.read_bytes()[:20])
    elif damage == "missing":
        meta.unlink()
    elif damage == "no marker":
        (directory / "committed").unlink()
    else:
        data = json.loads(meta.read_bytes())
        meta.write_text(json.dumps({**data, "chain_id": CHAINS[0]}))
    new_boot(store)
    reopened = Store.open(store.root)
    # the damaged one, and the one above it, which stood on it
    assert sorted(reopened.recovered.snapshots) == sorted(
        store.snapshots.dir / c[7:] for c in CHAINS[1:])
    assert [s.chain_id for s in reopened.snapshots.list()] == [CHAINS[0]]
    make(reopened, 1)   # unpacked again when needed
    assert reopened.snapshots.exists(CHAINS[1])


def test_a_new_boot_keeps_whole_snapshots(store):
    make(store, 0)
    make(store, 1)
    new_boot(store)
    reopened = Store.open(store.root)
    assert reopened.recovered.snapshots == ()
    assert [s.chain_id for s in reopened.snapshots.list()] == sorted(CHAINS[:2])


# ------------------------------------------------------------------ index.json, open

def test_a_tag_made_by_another_process_is_seen(store):
    first = make_image(store, [{"a": b"1"}])
    second = make_image(store, [{"a": b"2"}])   # same sizes: only the content differs
    other = Store.open(store.root)
    other.tag("app", first.digest)
    assert store.index.get("app").digest == first.digest
    other.tag("app", second.digest)
    assert store.index.get("app").digest == second.digest
    store.tag("mine", first.digest)   # our own write is read back right too
    assert {e.name for e in other.index.list()} >= {
        "docker.io/library/app:latest", "docker.io/library/mine:latest"}
    assert store.index.names_of(first.digest) == ["docker.io/library/mine:latest"]


def test_an_open_with_nothing_in_flight_changes_nothing(store):
    make(store, 0)
    before = sorted(os.listdir(store.root)), sorted(os.listdir(store.snapshots.dir))
    again = Store.open(store.root)
    assert again.recovered.snapshots == () and again.recovered.temp_files == ()
    assert (sorted(os.listdir(store.root)), sorted(os.listdir(store.snapshots.dir))) == before


def test_an_open_cleans_a_killed_writers_leftovers_without_a_new_boot(store):
    make(store, 0)
    trash = store.snapshots.inflight / ".trash-0123"   # a removal killed half way
    (trash / "fs").mkdir(parents=True)
    again = Store.open(store.root)
    assert again.recovered.snapshots == (trash,)
    assert again.snapshots.exists(CHAINS[0])
    assert os.listdir(store.snapshots.dir) == [CHAINS[0][7:]]
    temp = store.content.ingest_dir / ".cache-x.json.tmp-0123"   # a root write killed
    temp.write_text("half")
    assert Store.open(store.root).recovered.ingests == (temp,)
    assert os.listdir(store.content.ingest_dir) == []


def test_writing_roots_leaves_no_temp_file_and_gc_sees_every_root(store):
    blob = store.content.put_bytes(b"kept by a container")
    store.roots.put("container-x", Roots(blobs=frozenset([blob.digest])))
    store.roots.put("container-x", Roots(blobs=frozenset([blob.digest])), durable=False)
    assert os.listdir(store.roots.roots_dir) == ["container-x.json"]
    assert os.listdir(store.content.ingest_dir) == []
    assert store.gc().removed_blobs == ()


def test_a_snapshot_is_made_and_removed_through_the_inflight_folder(store):
    fs = store.snapshots.prepare(CHAINS[0])
    assert fs.parent.parent == store.snapshots.inflight
    other = Store.open(store.root)   # a live maker's staging dir is left alone
    assert other.recovered.snapshots == () and fs.is_dir()
    store.snapshots.commit(fs, CHAINS[0], None, DIFF_IDS[0], 1)
    assert store.snapshots.remove(CHAINS[0]) and not store.snapshots.exists(CHAINS[0])
    assert os.listdir(store.snapshots.dir) == []   # .inflight/ went with its last entry


def test_a_layout_missing_a_folder_is_made_whole_again(store):
    os.rmdir(store.roots.leases_dir)
    again = Store.open(store.root)
    assert again.roots.leases_dir.is_dir()
    with again.roots.lease() as lease:
        lease.add(blobs=[again.content.put_bytes(b"x").digest])
