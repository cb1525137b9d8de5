"""The container name index (containers/names/): unique names under concurrent creates, stores
made before the index, and names freed by removal or left behind by a crash."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil

import pytest

from lamina.runtime.containers import Container, ContainerStore, new_id, now
from lamina.runtime.errors import ContainerError
from lamina.runtime.options import RunOptions


def record(name: str = "") -> Container:
    return Container(id=new_id(), name=name, image="busybox", image_id="sha256:" + "1" * 64,
                     image_digest="sha256:" + "2" * 64, created=now(), argv=("true",),
                     image_config={}, options=json.loads(json.dumps(
                         dataclasses.asdict(RunOptions()))))


@pytest.fixture
def store(tmp_path) -> ContainerStore:
    return ContainerStore(tmp_path)


def _create_named(root: str, name: str, results) -> None:
    try:
        results.put(ContainerStore(root).create(record(name)).id)
    except ContainerError:
        results.put(None)


def test_only_one_of_many_concurrent_creates_gets_a_name(tmp_path):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_create_named, args=(str(tmp_path), "web", results))
             for _ in range(8)]
    try:
        for p in procs:
            p.start()
        created = [results.get(timeout=30) for _ in procs]
    finally:   # a create that hangs or dies must not outlive the test
        for p in [p for p in procs if p.pid is not None]:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    winners = [cid for cid in created if cid]
    assert len(winners) == 1
    assert ContainerStore(tmp_path).get("web").id == winners[0]


def test_a_store_made_before_the_index_keeps_its_names(store):
    old = store.create(record("old"))
    shutil.rmtree(store.dir / "names")          # as a store from before the index
    with pytest.raises(ContainerError, match='The container name "/old" is already in use'):
        store.create(record("old"))
    assert (store.dir / "names" / "old").read_text() == old.id
    assert store.get("old") == old


def test_removing_a_container_frees_its_name(store):
    first = store.create(record("job"))
    store.delete(first)
    assert not (store.dir / "names" / "job").exists()
    again = store.create(record("job"))
    assert store.get("job") == again != first


def test_a_name_whose_container_a_crash_removed_is_free(store):
    gone = store.create(record("left"))
    shutil.rmtree(store.path(gone.id))          # killed between the directory and the name
    assert (store.dir / "names" / "left").exists()
    assert store.create(record("left")).name == "left"


def test_random_names_are_unique_and_indexed(store):
    made = [store.create(record()) for _ in range(30)]
    assert len({c.name for c in made}) == 30
    assert all(store.get(c.name) == c for c in made)
