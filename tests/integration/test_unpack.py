"""An image's layers become snapshots once, verified as they stream."""
from __future__ import annotations

import os

import pytest

from lamina.store import Store
from lamina.errors import LaminaError
from lamina.store.unpack import unpack_image
from tests.helpers_images import Step, make_image


@pytest.fixture
def store(tmp_path):
    return Store.open(tmp_path / "root")


def test_each_layer_becomes_a_snapshot_with_its_files(store):
    built = make_image(store, layers=3, tag="app:1")
    lowers = unpack_image(store, store.image("app:1"))
    assert len(lowers) == 3
    # Topmost first: the last layer's file is in the first lower dir.
    assert [sorted(os.listdir(p)) for p in lowers] == [["data2"], ["data1"], ["data0"]]
    assert (lowers[2] / "data0").read_bytes() == b"layer 0\n" * 100
    assert [store.snapshots.exists(c) for c in built.chain_ids] == [True] * 3


def test_shared_layers_are_unpacked_once(store):
    steps = [Step("ADD base", {"base.txt": b"base"}), Step("ADD a", {"a.txt": b"a"})]
    make_image(store, steps, tag="one:1")
    first = unpack_image(store, store.image("one:1"))
    inode = os.stat(first[-1] / "base.txt").st_ino
    make_image(store, [steps[0], Step("ADD b", {"b.txt": b"b"})], tag="two:1")
    second = unpack_image(store, store.image("two:1"))
    assert second[-1] == first[-1]
    assert os.stat(second[-1] / "base.txt").st_ino == inode


def test_a_damaged_blob_leaves_no_snapshot(store):
    built = make_image(store, layers=1, tag="bad:1")
    blob = store.content.path(built.layer_digests[0])
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF   # inside the gzip trailer's CRC/size: the tar may still read
    blob.write_bytes(bytes(data))
    with pytest.raises(LaminaError) as info:
        unpack_image(store, store.image("bad:1"))
    assert built.layer_digests[0] in str(info.value)
    assert not store.snapshots.exists(built.chain_ids[0])
    assert not store.snapshots.inflight.exists()    # no staging or trash left behind
