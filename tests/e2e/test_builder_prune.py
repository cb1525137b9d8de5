"""``lamina builder prune``: build cache records go (all with -a, else the unused for 48 h,
the oldest first down to --keep-storage), then the layers nothing else keeps."""
from __future__ import annotations

import os
import time

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina

DOCKERFILE = "FROM busybox\nRUN head -c 100000 /bin/busybox > /blob\nRUN echo two > /two\n"


def _age_records(store, hours: float) -> None:
    old = time.time() - hours * 3600
    for path in (store.root / "buildcache" / "records").iterdir():
        os.utime(path, (old, old))


def test_prune_all_removes_every_record_and_its_layers(lamina, build, store, tmp_path):
    build(tmp_path, DOCKERFILE, tags=["gone"])
    lamina("rmi", "gone")   # now only the cache keeps the layers
    df = lamina("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Size}}").stdout
    row = next(line for line in df.splitlines() if line.startswith("Build Cache"))
    assert row.split("|")[1] != "0" and row.split("|")[2] != "0B"

    refused = lamina("builder", "prune", "-a", check=False)
    assert refused.returncode != 0 and "-f" in refused.stderr

    out = lamina("builder", "prune", "-a", "-f").stdout
    assert out.splitlines()[0].split() == ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED"]
    total = out.splitlines()[-1]
    assert total.startswith("Total:") and total.split()[-1] not in ("0B",)
    assert not list((store.root / "buildcache" / "records").glob("*.json"))
    assert not list((store.root / "roots").glob("cache-*.json"))
    df = lamina("system", "df", "--format", "{{.Type}}|{{.TotalCount}}").stdout
    assert "Build Cache|0" in df
    # Nothing is cached now: the next build runs every step again.
    assert build(tmp_path, DOCKERFILE).cached() == [False, False]
    assert lamina("builder", "prune", "-a", "-f").stdout.splitlines()[-1].startswith("Total:")


def test_default_prune_keeps_recent_cache_and_tagged_images(lamina, build, store, tmp_path):
    build(tmp_path, DOCKERFILE, tags=["kept"])
    out = lamina("builder", "prune", "-f").stdout
    assert out.strip() == "Total:\t0B"
    assert build(tmp_path, DOCKERFILE).cached() == [True, True]

    _age_records(store, 49)
    out = lamina("builder", "prune", "-f").stdout
    assert out.splitlines()[-1].startswith("Total:")
    assert not list((store.root / "buildcache" / "records").glob("*.json"))
    # The tagged image keeps its layers: it is whole and runs.
    assert lamina("run", "--rm", "kept", "cat", "/two").stdout == "two\n"


def test_keep_storage_removes_the_oldest_first(lamina, build, store, tmp_path):
    build(tmp_path, DOCKERFILE)
    records = sorted((store.root / "buildcache" / "records").iterdir())
    # age them in build order: the big RUN layer oldest
    from lamina.store.cache import BuildCache
    cache = BuildCache(store)
    by_size = sorted(((cache.own_size(r), r) for r, _ in cache.records()), key=lambda x: x[0])
    big = by_size[-1][1]
    for path in records:
        age = 100 if path.name.startswith(big.key[7:]) else 50
        stamp = time.time() - age * 3600
        os.utime(path, (stamp, stamp))
    lamina("builder", "prune", "-f", "--keep-storage", "10kb")
    left = [p.name for p in (store.root / "buildcache" / "records").iterdir()]
    assert f"{big.key[7:]}.json" not in left and left   # the big, oldest one went, not all
    bad = lamina("builder", "prune", "-f", "--keep-storage", "lots", check=False)
    assert bad.returncode != 0 and "invalid size" in bad.stderr
