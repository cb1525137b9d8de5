"""Snapshots: prepare, commit, races between makers, recovery after a crash."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal

import pytest

from lamina.image.digest import chain_ids
from lamina.store import Store
from lamina.store.snapshots import SnapshotError

FORK = multiprocessing.get_context("fork")
DIFF_IDS = ["sha256:" + hashlib.sha256(s).hexdigest() for s in (b"base", b"middle", b"top")]
CHAINS = chain_ids(DIFF_IDS)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def make(store: Store, level: int, content: str = "") -> None:
    fs = store.snapshots.prepare(CHAINS[level])
    (fs / f"file{level}").write_text(content or f"layer {level}")
    store.snapshots.commit(fs, CHAINS[level], CHAINS[level - 1] if level else None,
                           DIFF_IDS[level], 10 + level)


def leftovers(store: Store) -> list[str]:
    return [n for n in os.listdir(store.snapshots.dir) if n.startswith(".")]


def test_prepare_then_commit(store):
    assert not store.snapshots.exists(CHAINS[0])
    fs = store.snapshots.prepare(CHAINS[0])
    assert fs.is_dir() and fs.name == "fs" and fs.parent.parent == store.snapshots.inflight
    (fs / "hello").write_text("hi")
    info = store.snapshots.commit(fs, CHAINS[0], None, DIFF_IDS[0], 2)
    directory = store.snapshots.dir / CHAINS[0][7:]
    assert info.path == directory / "fs" == store.snapshots.path(CHAINS[0])
    assert (info.path / "hello").read_text() == "hi"
    assert (directory / "committed").is_file()
    assert json.loads((directory / "metadata.json").read_bytes()) == {
        "chain_id": CHAINS[0], "parent": None, "diff_id": DIFF_IDS[0], "size": 2}
    assert (info.chain_id, info.parent, info.diff_id, info.size) == (CHAINS[0], None,
                                                                     DIFF_IDS[0], 2)
    assert store.snapshots.exists(CHAINS[0]) and leftovers(store) == []


def test_stacks_list_and_lowers(store):
    for level in range(3):
        make(store, level)
    assert sorted(i.chain_id for i in store.snapshots.list()) == sorted(CHAINS)
    assert store.snapshots.info(CHAINS[2]).parent == CHAINS[1]
    lowers = store.snapshots.lowers(CHAINS)  # bottom first in, top first out
    assert [sorted(os.listdir(p)) for p in lowers] == [["file2"], ["file1"], ["file0"]]


def test_commit_checks_the_chain_id(store):
    fs = store.snapshots.prepare(CHAINS[1])
    with pytest.raises(SnapshotError, match="does not follow from parent"):
        store.snapshots.commit(fs, CHAINS[1], None, DIFF_IDS[1], 1)
    assert leftovers(store) == [] and not store.snapshots.exists(CHAINS[1])


def test_commit_needs_the_parent(store):
    fs = store.snapshots.prepare(CHAINS[1])
    with pytest.raises(SnapshotError, match="parent snapshot .* is gone"):
        store.snapshots.commit(fs, CHAINS[1], CHAINS[0], DIFF_IDS[1], 1)
    assert leftovers(store) == []


def test_unknown_snapshots_are_reported(store):
    with pytest.raises(SnapshotError, match=f"snapshot {CHAINS[0]} does not exist"):
        store.snapshots.path(CHAINS[0])
    with pytest.raises(SnapshotError):
        store.snapshots.lowers(CHAINS[:1])


def test_abort_and_remove(store):
    fs = store.snapshots.prepare(CHAINS[0])
    (fs / "x").write_text("x")
    store.snapshots.abort(fs)
    assert leftovers(store) == [] and not store.snapshots.exists(CHAINS[0])
    make(store, 0)
    assert store.snapshots.remove(CHAINS[0]) is True
    assert store.snapshots.remove(CHAINS[0]) is False
    assert os.listdir(store.snapshots.dir) == []


def test_the_first_commit_wins_a_race(tmp_path):
    first, second = Store.open(tmp_path / "root"), Store.open(tmp_path / "root")
    fs1 = first.snapshots.prepare(CHAINS[0])
    fs2 = second.snapshots.prepare(CHAINS[0])
    (fs1 / "who").write_text("first")
    (fs2 / "who").write_text("second")
    first.snapshots.commit(fs1, CHAINS[0], None, DIFF_IDS[0], 1)
    info = second.snapshots.commit(fs2, CHAINS[0], None, DIFF_IDS[0], 1)
    assert (info.path / "who").read_text() == "first"
    assert leftovers(first) == [] and len(first.snapshots.list()) == 1


def _prepare_then_hang(root, conn) -> None:
    fs = Store.open(root).snapshots.prepare(CHAINS[0])
    (fs / "partial").write_text("half unpacked")
    conn.send(str(fs.parent))
    signal.pause()


def test_a_maker_killed_mid_unpack_is_cleaned_up_on_next_open(tmp_path):
    root = tmp_path / "root"
    Store.open(root)
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_prepare_then_hang, args=(root, child))
    proc.start()
    staging = parent.recv()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert os.path.isdir(staging)
    store = Store.open(root)
    assert not os.path.exists(staging)
    assert [str(p) for p in store.recovered.snapshots] == [staging]
    make(store, 0)
    assert store.snapshots.exists(CHAINS[0])


def test_open_leaves_a_live_unpack_alone(tmp_path):
    maker = Store.open(tmp_path / "root")
    fs = maker.snapshots.prepare(CHAINS[0])
    other = Store.open(tmp_path / "root")  # its recovery must not take ours for dead
    assert fs.is_dir() and other.recovered.snapshots == ()
    maker.snapshots.commit(fs, CHAINS[0], None, DIFF_IDS[0], 1)
    assert other.snapshots.exists(CHAINS[0])


def test_half_made_and_half_removed_snapshots_are_cleaned_up(store):
    make(store, 0)
    unmarked = store.snapshots.dir / CHAINS[1][7:]
    (unmarked / "fs").mkdir(parents=True)  # as if the marker never reached the disk
    trash = store.snapshots.dir / ".trash-123"
    (trash / "fs" / "deep").mkdir(parents=True)
    stray = store.snapshots.dir / "stray-file"
    stray.write_text("?")
    (store.root / "locks" / "checked-boot").unlink()  # only a power loss does that: a new boot
    reopened = Store.open(store.root)
    assert sorted(reopened.recovered.snapshots) == sorted([unmarked, trash, stray])
    assert os.listdir(store.snapshots.dir) == [CHAINS[0][7:]]


def test_damaged_metadata_is_explained(store):
    make(store, 0)
    (store.snapshots.dir / CHAINS[0][7:] / "metadata.json").write_text("{}")
    with pytest.raises(SnapshotError, match="damaged metadata") as err:
        store.snapshots.info(CHAINS[0])
    assert "remove" in err.value.hint
