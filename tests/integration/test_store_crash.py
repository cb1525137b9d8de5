"""kill -9 at any moment leaves a store the next command can use (DESIGN: crash-safe writes).

Trial after trial, a ``lamina load``, ``import``, ``save`` or ``rmi`` runs on a store that
holds some images and is killed with SIGKILL after a random delay; then ``Store.open``
recovers and the test checks what a user relies on: the images that were there are whole
(every blob still has its digest), every name points at a complete image, nothing is left
in ingest/ or leases/, index.json reads. Load and rmi share layers with those images, so a
removal that took too much, or a load that named an image before its blobs were in, shows.
"""
from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lamina.api.archive import save
from lamina.image.config import History
from lamina.image.mutate import append_layer
from lamina.store import Store
from lamina.store.commit import commit_image, put_layer
from lamina.store.locks import TEMP_MARK

from ..helpers_images import BuiltImage, layer_tar, make_image

pytestmark = pytest.mark.slow

LAMINA = Path(sys.executable).with_name("lamina")
MIN_TRIALS = 50
TIME_BUDGET = 60.0    # seconds of trials once MIN_TRIALS are done...
HARD_LIMIT = 90.0     # ...and never more than this
KILL_WINDOW = 0.2     # the kill comes 0-200 ms after the start (most commands take less)


def noise(rng: random.Random, size: int) -> bytes:
    """Bytes gzip cannot shrink, so that compressing and hashing take a while."""
    return rng.randbytes(size)


def layered_on(store: Store, base: BuiltImage, tag: str, data: bytes) -> None:
    """An image of ``base``'s layers plus one layer holding ``data``, made with the API."""
    config = store.image(base.digest).config()
    with store.roots.lease() as lease:
        layer = put_layer(store, io.BytesIO(layer_tar({"data.bin": data})), lease=lease)
        config = append_layer(config, layer.diff_id, History(created_by="ADD data.bin /"))
        commit_image(store, config, [*base.manifest.layers, layer.descriptor], tags=[tag],
                     lease=lease)


def archive_of(tmp_path: Path, name: str, rng: random.Random, *tags: str) -> Path:
    """An archive of images ``tags``, each on the same base as the store's base:1."""
    source = Store.open(tmp_path / f"source-{name}")
    base = make_image(source, layers=2, seed="base")
    for tag in tags:
        layered_on(source, base, tag, noise(rng, 1_000_000))
    path = tmp_path / f"{name}.tar"
    save(list(tags), path, store=source)
    return path


def lamina(root: Path, *args: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([str(LAMINA), *args], stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "LAMINA_ROOT": str(root)})


def check_store(root: Path, before: dict[str, BuiltImage]) -> Store:
    """Recover, then check what a user relies on after a crash."""
    store = Store.open(root)
    assert list(store.content.ingest_dir.iterdir()) == []
    assert list(store.roots.leases_dir.iterdir()) == []
    assert [p for p in root.iterdir() if TEMP_MARK in p.name] == []
    for entry in store.index.list():  # index.json reads, and names only whole images
        store.image_descriptor(entry.descriptor.digest)
    for name, built in before.items():
        assert store.index.get(name).digest == built.digest, name
        for digest in built.blobs:
            store.content.verify(digest)
    return store


def test_kill_9_at_any_moment_leaves_a_usable_store(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    root = tmp_path / "root"
    store = Store.open(root)
    before = {"docker.io/library/base:1": make_image(store, layers=2, tag="base:1", seed="base"),
              "docker.io/library/other:1": make_image(store, layers=3, tag="other:1",
                                                      seed="other")}
    archive = archive_of(tmp_path, "archive", rng, "loaded/a:1", "loaded/b:1")
    compressed = tmp_path / "archive.tar.gz"
    compressed.write_bytes(gzip.compress(archive.read_bytes(), compresslevel=1))
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(layer_tar({"bin/tool": noise(rng, 3_000_000)}))
    out = tmp_path / "out" / "saved.tar"
    out.parent.mkdir()
    expected_save = io.BytesIO()
    save(["base:1", "other:1"], expected_save, store=store)

    outcomes: dict[str, list[int]] = {}
    start, trials = time.monotonic(), 0
    while trials < MIN_TRIALS or time.monotonic() - start < TIME_BUDGET:
        assert time.monotonic() - start < HARD_LIMIT, f"only {trials} trials in time (seed {seed})"
        removable = [e.name for e in store.index.list()
                     if e.name and e.name not in before]
        op = rng.choice(["load", "load-stdin", "import", "save", "rmi"])
        stdin = None
        if op == "load":
            args = ["load", "-i", str(archive)]
        elif op == "load-stdin":
            stdin = open(compressed, "rb")
            args = ["load"]
        elif op == "import":
            args = ["import", str(rootfs), f"imported:{trials}"]
        elif op == "save":
            args = ["save", "-o", str(out), "base:1", "other:1"]
        else:
            args = ["rmi", rng.choice(removable)] if removable else ["load", "-i", str(archive)]
        proc = lamina(root, *args, stdin=stdin)
        time.sleep(rng.uniform(0, KILL_WINDOW))
        proc.kill()
        _, err = proc.communicate()
        if stdin:
            stdin.close()
        assert proc.returncode in (0, -9), f"lamina {' '.join(args)} failed (seed {seed}):\n" \
                                           f"{err.decode()}"
        outcomes.setdefault(op, []).append(proc.returncode)

        store = check_store(root, before)
        if out.exists():  # a save is whole or absent: renamed into place at the end
            assert out.read_bytes() == expected_save.getvalue()
            out.unlink()
        for leftover in out.parent.iterdir():  # a killed save's temp file, in the user's folder
            leftover.unlink()
        trials += 1
        if trials % 10 == 0:  # collect what killed loads and imports left, then check again
            store.gc()
            store = check_store(root, before)

    killed = sum(code == -9 for codes in outcomes.values() for code in codes)

    assert trials >= MIN_TRIALS
    assert killed >= trials // 4, f"too few kills landed mid-way: {outcomes}"


def test_two_loads_at_once_both_succeed_while_gc_runs(tmp_path):
    rng = random.Random(7)
    first = archive_of(tmp_path, "first", rng, "first/a:1", "first/b:1")
    second = archive_of(tmp_path, "second", rng, "second/a:1")
    root = tmp_path / "root"
    store = Store.open(root)
    done = threading.Event()

    def collect() -> None:  # a GC at any moment keeps what the loads hold leases on
        while not done.is_set():
            store.gc()

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        procs = [lamina(root, "load", "-i", str(path)) for path in (first, second)]
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        done.set()
        collector.join()
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err.decode()
    store = check_store(root, {})
    assert sorted(e.name for e in store.index.list()) == [
        "docker.io/first/a:1", "docker.io/first/b:1", "docker.io/second/a:1"]
    for entry in store.index.list():
        image = store.image(entry.name)
        for digest in [image.digest(), image.manifest().config.digest,
                       *(layer.digest for layer in image.layers())]:
            store.content.verify(digest)
