"""Concurrency (issue 9, item 2): four builds of related Dockerfiles at once, sharing the
build cache, while a pull from a real registry (docker-registry on 127.0.0.1) and an rmi run
beside them, all through the ``lamina`` command: every command succeeds, and the store is
consistent afterwards (``system check``, every image whole, the cache still shared)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lamina.api import check
from lamina.api.registry import push
from lamina.store import Store
from tests.conftest_build import LAMINA, _check_nothing_left, busybox_layer, root, store  # noqa: F401
from tests.e2e.test_run_helpers import default_network_teardown  # noqa: F401
from tests.helpers_images import make_image
from tests.integration.test_registry_distribution import Distribution

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("docker-registry") is None,
                       reason="docker-registry is not installed (scripts/setup.sh)"),
]

COMMON = "FROM busybox\nRUN echo shared > /shared && sleep 0.3\nCOPY common.txt /common.txt\n"
VARIANTS = [
    "RUN echo one > /variant\n",
    "RUN echo two > /variant\nENV TWO=2\n",
    "COPY extra.txt /extra.txt\nRUN cat /extra.txt /shared > /variant\n",
    "RUN echo four > /variant\nCMD [\"cat\", \"/variant\"]\n",
]


@pytest.fixture
def registry(tmp_path):
    server = Distribution(tmp_path / "registry")
    yield server
    server.stop()


def start(root: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "LAMINA_ROOT": str(root), "DOCKER_CONFIG": str(root.parent / "docker")}
    return subprocess.Popen([str(LAMINA), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd, text=True)


def test_four_builds_a_pull_and_an_rmi_at_once(tmp_path, root, store, registry,
                                                record_property):
    # In the store: images to remove, one sharing its base layers with the pulled one.
    source = Store.open(tmp_path / "source")
    remote = f"{registry.host}/team/pulled:1"
    make_image(source, layers=3, tag=remote, seed="remote")
    push(remote, store=source)
    make_image(store, layers=2, tag="old/a:1", seed="remote")
    kept = make_image(store, layers=2, tag="old/kept:1", seed="kept")
    make_image(store, layers=1, tag="old/b:1", seed="b")

    contexts = []
    for i, variant in enumerate(VARIANTS):
        ctx = tmp_path / f"ctx{i}"
        ctx.mkdir()
        (ctx / "common.txt").write_text("the same in every context\n")
        (ctx / "extra.txt").write_text(f"extra {i}\n")
        (ctx / "Dockerfile").write_text(COMMON + variant)
        contexts.append(ctx)

    began = time.monotonic()
    procs = {f"build {i}": start(root, "build", "-t", f"app/v{i}:1", str(ctx))
             for i, ctx in enumerate(contexts)}
    procs["pull"] = start(root, "pull", remote)
    procs["rmi"] = start(root, "rmi", "old/a:1", "old/b:1")
    results = {name: proc.communicate(timeout=180) for name, proc in procs.items()}
    elapsed = time.monotonic() - began
    failed = {name: err for name, (_, err) in results.items() if procs[name].returncode != 0}
    assert failed == {}

    store = Store.open(root)
    report = check(store=store)
    assert report.ok, report.problems
    names = sorted(e.name for e in store.index.list() if e.name)
    assert names == sorted(["docker.io/library/busybox:latest", "docker.io/old/kept:1",
                            remote, *(f"docker.io/app/v{i}:1" for i in range(4))])
    assert store.index.get("old/kept:1").digest == kept.digest
    for digest in kept.blobs:
        store.content.verify(digest)

    # The builds shared their first steps: each image has the same lower layers ...
    layers = [store.image(f"app/v{i}:1").layers() for i in range(4)]
    assert all(image[:3] == layers[0][:3] for image in layers)
    # ... and a build again now comes whole from the cache, the images run.
    again = start(root, "build", "-t", "app/v0:again", str(contexts[0]))
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert store.index.get("app/v0:again").digest == store.index.get("app/v0:1").digest
    ran = start(root, "run", "--rm", "--network", "none", "app/v3:1")
    out, err = ran.communicate(timeout=60)
    assert (ran.returncode, out) == (0, "four\n"), err
    store.gc()
    assert check(store=store).ok
    line = (f"concurrency: 4 builds + pull + rmi at once, all {len(procs)} succeeded in "
            f"{elapsed:.1f}s, store consistent ({report.blobs} blobs, {report.images} images, "
            f"{report.snapshots} snapshots checked)")
    print("\n" + line)
    record_property("lamina_line", line)


def test_ps_during_a_build_leaves_the_runs_network_alone(tmp_path, root, store):
    """``ps`` cleans up networks of dead containers; a build's RUN container is not one."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN sleep 2 && ip -o -4 addr show eth0 | grep -q inet "
        "&& echo eth0 kept > /net\n")
    build = start(root, "build", "-t", "net:1", str(ctx))
    sweeps = 0
    while build.poll() is None:
        ps = start(root, "ps", "-a", "-q")
        out, err = ps.communicate(timeout=30)
        assert ps.returncode == 0, err
        sweeps += 1
        time.sleep(0.1)
    out, err = build.communicate()
    assert build.returncode == 0, err
    assert sweeps >= 3
    assert list((root / "networks").glob("*.json")) == []
