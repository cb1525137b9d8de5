"""Image names in index.json: an OCI image layout other tools can read, safe under concurrency."""
from __future__ import annotations

import hashlib
import json
import multiprocessing

import pytest

from lamina.image import mediatypes as mt
from lamina.image.descriptor import REF_NAME_ANNOTATION, Descriptor
from lamina.image.manifest import Index, parse_manifest
from lamina.image.reference import ReferenceError
from lamina.store import Store
from lamina.store.layout import ImageNotFoundError, LayoutError

FORK = multiprocessing.get_context("fork")


def desc(n: int) -> Descriptor:
    return Descriptor(mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
                      100 + n)


A, B = desc(1), desc(2)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def index_json(store: Store) -> dict:
    return json.loads((store.root / "index.json").read_bytes())


def test_a_new_store_is_an_empty_oci_layout(store):
    assert json.loads((store.root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = parse_manifest((store.root / "index.json").read_bytes())
    assert isinstance(index, Index) and index.media_type == mt.OCI_INDEX
    assert index.manifests == () and store.index.list() == []


def test_a_tag_is_an_annotated_descriptor_with_the_full_name(store):
    assert store.index.set_tag("busybox", A) is None
    (entry,) = index_json(store)["manifests"]
    assert entry["annotations"] == {REF_NAME_ANNOTATION: "docker.io/library/busybox:latest"}
    assert entry["digest"] == A.digest and entry["size"] == A.size
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox:latest",
                 "index.docker.io/library/busybox"):
        assert store.index.get(name).digest == A.digest


def test_an_image_can_have_several_tags(store):
    for name in ("app:1", "app:latest", "localhost:5000/app:1"):
        store.index.set_tag(name, A)
    assert sorted(store.index.names_of(A.digest)) == [
        "docker.io/library/app:1", "docker.io/library/app:latest", "localhost:5000/app:1"]
    assert len(store.index.list()) == 3


def test_moving_a_tag_leaves_the_old_image_untagged(store):
    store.index.set_tag("app", A)
    previous = store.index.set_tag("app", B)
    assert previous is not None and previous.digest == A.digest
    entries = {e.descriptor.digest: e.name for e in store.index.list()}
    assert entries == {A.digest: None, B.digest: "docker.io/library/app:latest"}
    # Tagging the untagged image again replaces its untagged entry.
    store.index.set_tag("old", A)
    assert sorted((e.name or "") for e in store.index.list()) == [
        "docker.io/library/app:latest", "docker.io/library/old:latest"]


def test_setting_a_tag_again_changes_nothing(store):
    store.index.set_tag("app", A)
    before = (store.root / "index.json").stat().st_ino
    assert store.index.set_tag("app", A) is None
    assert (store.root / "index.json").stat().st_ino == before


def test_removing_tags(store):
    store.index.set_tag("app:1", A)
    store.index.set_tag("app:2", A)
    assert store.index.remove("app:1").digest == A.digest
    assert store.index.names_of(A.digest) == ["docker.io/library/app:2"]
    store.index.remove("app:2")  # the last name: the image goes too (docker rmi)
    assert store.index.list() == []
    with pytest.raises(ImageNotFoundError, match="no such image: docker.io/library/app:2"):
        store.index.remove("app:2")


def test_untagged_images_and_removal_by_digest(store):
    store.index.add(A)
    store.index.add(A)
    assert [(e.name, e.descriptor.digest) for e in store.index.list()] == [(None, A.digest)]
    store.index.set_tag("x", B)
    store.index.set_tag("y", B)
    assert sorted(store.index.remove_image(B.digest)) == ["docker.io/library/x:latest",
                                                          "docker.io/library/y:latest"]
    assert [e.descriptor.digest for e in store.index.list()] == [A.digest]


def test_bad_tags_are_refused(store):
    with pytest.raises(LayoutError, match="has a digest"):
        store.index.set_tag(f"app@{A.digest}", A)
    with pytest.raises(ReferenceError):
        store.index.set_tag("Upper/Case", A)
    with pytest.raises(ImageNotFoundError) as err:
        store.index.get("missing")
    assert "lamina images" in err.value.hint


def test_a_damaged_index_is_explained(store):
    (store.root / "index.json").write_text("{ nope")
    with pytest.raises(LayoutError, match="index.json is damaged") as err:
        store.index.list()
    assert "tag the images again" in err.value.hint


def test_a_foreign_layout_version_is_refused(tmp_path):
    root = tmp_path / "other"
    root.mkdir()
    (root / "oci-layout").write_text('{"imageLayoutVersion": "9.9"}')
    with pytest.raises(LayoutError, match="not an OCI image layout version 1.0.0"):
        Store.open(root)


def _tag_many(root, worker: int, count: int) -> None:
    store = Store.open(root)
    for n in range(count):
        store.index.set_tag(f"localhost/w{worker}:t{n}", desc(worker * 1000 + n))


def test_concurrent_taggers_lose_nothing(tmp_path):
    root = tmp_path / "root"
    Store.open(root)
    procs = [FORK.Process(target=_tag_many, args=(root, w, 100)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    assert [p.exitcode for p in procs] == [0, 0]
    index = parse_manifest((root / "index.json").read_bytes())  # valid JSON, valid index
    names = {d.ref_name: d.digest for d in index.manifests}
    assert len(names) == 200
    for w in (1, 2):
        for n in range(100):
            assert names[f"localhost/w{w}:t{n}"] == desc(w * 1000 + n).digest
