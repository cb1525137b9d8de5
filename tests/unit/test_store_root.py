"""The state root: where it is, what a first open creates, what every open repairs."""
from __future__ import annotations

import os
import threading

import pytest

from lamina.image import mediatypes as mt
from lamina.image.descriptor import Descriptor
from lamina.store import Store, default_root
from lamina.store.locks import FileLock, atomic_write
from lamina.store.root import StoreError

LAYOUT = ["blobs", "index.json", "ingest", "leases", "locks", "oci-layout", "roots", "snapshots"]


def test_lamina_root_overrides_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("LAMINA_ROOT", raising=False)
    assert str(default_root()) == "/var/lib/lamina"
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    assert Store.open().root == tmp_path / "mine"
    assert sorted(os.listdir(tmp_path / "mine")) == LAYOUT


def test_first_open_creates_the_layout_and_later_opens_keep_it(tmp_path):
    root = tmp_path / "a" / "b"
    store = Store.open(root)
    assert sorted(os.listdir(root)) == LAYOUT
    assert (root / "blobs" / "sha256").is_dir()
    assert oct(os.stat(root / "snapshots").st_mode & 0o777) == "0o700"
    store.index.set_tag("kept", _descriptor(store))
    again = Store.open(root)
    assert again.index.get("kept") and again.recovered.temp_files == ()


def _descriptor(store):
    blob = store.content.put_bytes(b"{}")
    return Descriptor(mt.OCI_MANIFEST, blob.digest, blob.size)


def test_a_root_that_cannot_be_made_says_what_to_do(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(StoreError, match="cannot create the lamina store") as err:
        Store.open(tmp_path / "file" / "root")
    assert "LAMINA_ROOT" in err.value.hint


def test_temp_files_of_interrupted_writes_are_removed(tmp_path):
    store = Store.open(tmp_path / "root")
    stale = [store.root / ".index.json.tmp-0123", store.roots.roots_dir / ".x.json.tmp-4567"]
    for path in stale:
        path.write_text("half")
    assert sorted(Store.open(store.root).recovered.temp_files) == sorted(stale)
    assert not any(p.exists() for p in stale)


def test_atomic_write_replaces_whole(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and os.listdir(tmp_path) == ["f.json"]


def test_file_lock_excludes_other_threads_and_nests(tmp_path):
    lock = FileLock(tmp_path / "lock")
    order: list[str] = []

    def take_shared() -> None:
        with lock.shared():
            order.append("other")

    with lock.exclusive():
        with lock.shared():  # nesting in the same thread is fine
            pass
        other = threading.Thread(target=take_shared)
        other.start()
        other.join(0.2)
        assert order == []  # blocked while we hold it exclusive
        order.append("me")
    other.join(5)
    assert order == ["me", "other"]
    with lock.shared():
        with pytest.raises(RuntimeError, match="cannot upgrade"):
            with lock.exclusive():
                pass
