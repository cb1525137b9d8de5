"""The content store: ingest then commit, a blob whole or absent, crashes cleaned up."""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import signal
import stat

import pytest

from lamina.image.digest import DigestError
from lamina.store import Store
from lamina.store.content import BlobNotFoundError, DigestMismatchError

FORK = multiprocessing.get_context("fork")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def ingest_files(store: Store) -> list[str]:
    return os.listdir(store.content.ingest_dir)


def test_a_blob_lives_where_the_oci_layout_says(store):
    blob = store.content.put_bytes(b"hello")
    assert blob.digest == digest_of(b"hello") and blob.size == 5
    path = store.root / "blobs" / "sha256" / hashlib.sha256(b"hello").hexdigest()
    assert store.content.path(blob.digest) == path and path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444  # blobs are immutable
    assert store.content.has(blob.digest) and store.content.size(blob.digest) == 5
    with store.content.open_blob(blob.digest) as stream:
        assert stream.read() == b"hello"
    assert list(store.content.digests()) == [blob.digest]
    assert ingest_files(store) == []


def test_streams_are_hashed_as_they_pass(store):
    data = os.urandom(3 * 1024 * 1024 + 17)
    blob = store.content.put_stream(io.BytesIO(data), digest_of(data), len(data))
    assert blob.digest == digest_of(data) and store.content.read_bytes(blob.digest) == data
    with store.content.ingest() as writer:
        writer.write(b"ab")
        assert writer.digest == digest_of(b"ab") and writer.size == 2
        writer.write(b"c")
        assert writer.commit().digest == digest_of(b"abc")


def test_wrong_digest_leaves_nothing(store):
    wrong = digest_of(b"something else")
    with pytest.raises(DigestMismatchError) as err:
        store.content.put_bytes(b"payload", expected_digest=wrong)
    assert wrong in str(err.value) and digest_of(b"payload") in str(err.value)
    assert err.value.hint
    assert not store.content.has(wrong) and not store.content.has(digest_of(b"payload"))
    assert list(store.content.digests()) == [] and ingest_files(store) == []


def test_wrong_size_leaves_nothing(store):
    with pytest.raises(DigestMismatchError, match="should be 10 bytes but 7 were written"):
        store.content.put_stream(io.BytesIO(b"payload"), expected_size=10)
    assert list(store.content.digests()) == [] and ingest_files(store) == []


def test_invalid_expected_digest_is_refused(store):
    with pytest.raises(DigestError):
        store.content.put_bytes(b"x", expected_digest="sha256:short")
    assert ingest_files(store) == []


def test_an_ingest_that_is_not_committed_leaves_nothing(store):
    with store.content.ingest() as writer:
        writer.write(b"half")
        assert len(ingest_files(store)) == 1
    assert ingest_files(store) == [] and list(store.content.digests()) == []


def test_the_same_content_twice_is_one_blob(store):
    first = store.content.put_bytes(b"same")
    second = store.content.put_bytes(b"same")
    assert first == second and list(store.content.digests()) == [first.digest]
    assert ingest_files(store) == []


def test_missing_blob_names_the_digest_and_what_to_do(store):
    missing = digest_of(b"nowhere")
    for call in (store.content.open_blob, store.content.size):
        with pytest.raises(BlobNotFoundError) as err:
            call(missing)
        assert missing in str(err.value) and "pull or build" in str(err.value)


def test_verify_finds_damaged_blobs(store):
    blob = store.content.put_bytes(b"original")
    store.content.verify(blob.digest)
    path = store.content.path(blob.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"damaged!")
    with pytest.raises(DigestMismatchError, match=f"blob {blob.digest} is damaged"):
        store.content.verify(blob.digest)


def test_delete(store):
    blob = store.content.put_bytes(b"bye")
    assert store.content.delete(blob.digest) is True
    assert store.content.delete(blob.digest) is False
    assert not store.content.has(blob.digest)


def _ingest_then_hang(root, conn) -> None:
    writer = Store.open(root).content.ingest()
    writer.write(b"x" * 100_000)
    conn.send(str(writer.temp_path))
    signal.pause()


def test_a_writer_killed_mid_ingest_is_cleaned_up_on_next_open(tmp_path):
    root = tmp_path / "root"
    Store.open(root)
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_ingest_then_hang, args=(root, child))
    proc.start()
    temp = parent.recv()
    assert os.path.exists(temp)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    store = Store.open(root)
    assert not os.path.exists(temp)
    assert [str(p) for p in store.recovered.ingests] == [temp]
    blob = store.content.put_bytes(b"still works")
    store.content.verify(blob.digest)
    assert list(store.content.digests()) == [blob.digest]


def _ingest_and_commit_when_told(root, conn) -> None:
    writer = Store.open(root).content.ingest()
    writer.write(b"in flight")
    conn.send(str(writer.temp_path))
    conn.recv()
    conn.send(writer.commit().digest)


def test_open_never_removes_a_live_writers_file(tmp_path):
    root = tmp_path / "root"
    Store.open(root)
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_ingest_and_commit_when_told, args=(root, child))
    proc.start()
    temp = parent.recv()
    store = Store.open(root)  # recovery runs while the other process is writing
    assert os.path.exists(temp) and store.recovered.ingests == ()
    parent.send("commit")
    digest = parent.recv()
    proc.join()
    assert proc.exitcode == 0
    assert store.content.read_bytes(digest) == b"in flight"
