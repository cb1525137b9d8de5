"""A full disk and a read-only store (issue 9, item 5): a build, a load and a pull that run
out of space on a small tmpfs used as the state root fail cleanly, with a message that says
so and no traceback, and the store is intact afterwards (``system check``, the images that
were there whole, nothing mounted); a read-only state root gives a clear error.

Each test mounts its own tmpfs (``size=8m``) and unmounts it in a finalizer.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.api import check
from lamina.api.archive import save
from lamina.api.registry import push
from lamina.store import Store
from tests.conftest_build import CAN_BUILD, busybox_layer  # noqa: F401
from tests.e2e.test_run_helpers import default_network_teardown  # noqa: F401
from tests.helpers_images import BuiltImage, make_image

LAMINA = Path(sys.executable).with_name("lamina")

pytestmark = [pytest.mark.skipif(not CAN_BUILD, reason="needs root, crun and busybox-static")]


def _mounted_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path) + "/")]


@pytest.fixture
def small_root(tmp_path):
    """An 8 MiB tmpfs as the state root, with busybox:latest in it."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        for mount in reversed(_mounted_under(root)):   # a failed run's leftovers, if any
            subprocess.run(["umount", "-l", mount], check=False)
        subprocess.run(["umount", str(root)], check=False) .returncode == 0 or \
            subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.fixture
def base(small_root, busybox_layer) -> BuiltImage:
    from lamina.api import import_image
    store = Store.open(small_root)
    import_image(io.BytesIO(busybox_layer), "busybox:latest", changes=['CMD ["sh"]'],
                 store=store)
    return store.index.get("busybox:latest")


def lamina(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAMINA_ROOT": str(root), "DOCKER_CONFIG": str(root.parent / "docker")}
    return subprocess.run([str(LAMINA), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture(autouse=True)
def _figures(record_property):
    yield
    for line in FAILURES:
        record_property("lamina_line", line)
    FAILURES.clear()


FAILURES: list[str] = []


def assert_clean_failure(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    text = out.stderr.lower()
    assert any(w.lower() in text for w in words), out.stderr
    said = next(line for line in out.stderr.splitlines()
                if any(w.lower() in line.lower() for w in words))
    print(f"\n  lamina {out.args[1]}: {said.strip()[:160]}", end="")
    FAILURES.append(f"fault: lamina {out.args[1]} failed cleanly: {said.strip()[:150]}")


def assert_intact(root: Path, base_desc, expected_names: set[str]) -> None:
    assert _mounted_under(root) == []
    store = Store.open(root)
    store.gc()
    report = check(store=store)
    assert report.ok, report.problems
    assert store.index.get("busybox:latest").digest == base_desc.digest
    names = {e.name for e in store.index.list() if e.name}
    assert names == expected_names
    assert list(store.content.ingest_dir.iterdir()) == []
    out = lamina(root, "run", "--rm", "--network", "none", "busybox", "echo", "still runs")
    assert (out.returncode, out.stdout) == (0, "still runs\n"), out.stderr


NO_SPACE = ("no space left on device", "not enough space", "disk is full", "free")
BUSYBOX = {"docker.io/library/busybox:latest"}


def test_build_copy_that_fills_the_disk_fails_cleanly(small_root, base, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big.bin").write_bytes(os.urandom(12 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    out = lamina(small_root, "build", "-t", "toobig:1", str(ctx))
    assert_clean_failure(out, *NO_SPACE)
    assert_intact(small_root, base, BUSYBOX)


def test_build_whose_layer_does_not_fit_fails_cleanly(small_root, base, tmp_path):
    # The RUN's own writes fit; the layer made of them (another copy) does not.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    size = free_bytes(small_root) * 6 // 10
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN head -c {size} /dev/urandom > /noise\n")
    out = lamina(small_root, "build", "-t", "toobig:1", str(ctx))
    assert_clean_failure(out, *NO_SPACE)
    assert_intact(small_root, base, BUSYBOX)


def test_load_that_fills_the_disk_fails_cleanly(small_root, base, tmp_path):
    source = Store.open(tmp_path / "source")
    from tests.helpers_images import Step
    make_image(source, [Step("ADD noise /", {"noise": os.urandom(10 << 20)})], tag="big/img:1")
    archive = tmp_path / "big.tar"
    save(["big/img:1"], archive, store=source)
    out = lamina(small_root, "load", "-i", str(archive))
    assert_clean_failure(out, *NO_SPACE)
    assert_intact(small_root, base, BUSYBOX)


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="needs docker-registry")
def test_pull_that_fills_the_disk_fails_cleanly(small_root, base, tmp_path):
    from tests.helpers_images import Step
    from tests.integration.test_registry_distribution import Distribution
    server = Distribution(tmp_path / "registry")
    try:
        source = Store.open(tmp_path / "source")
        remote = f"{server.host}/big/img:1"
        make_image(source, [Step("ADD noise /", {"noise": os.urandom(10 << 20)})], tag=remote)
        push(remote, store=source)
        out = lamina(small_root, "pull", remote)
    finally:
        server.stop()
    assert_clean_failure(out, *NO_SPACE)
    assert_intact(small_root, base, BUSYBOX)


def test_read_only_state_root_gives_a_clear_error(small_root, base, tmp_path, busybox_layer):
    tar = tmp_path / "rootfs.tar.gz"
    tar.write_bytes(busybox_layer)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_root)], check=True)
    try:
        results = {
            "import": lamina(small_root, "import", str(tar), "other:1"),
            "build": lamina(small_root, "build", "-t", "x:1", str(ctx)),
            "rmi": lamina(small_root, "rmi", "busybox:latest"),
            "run": lamina(small_root, "run", "--rm", "--network", "none", "busybox", "true"),
        }
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_root)], check=True)
    for name, out in results.items():
        assert_clean_failure(out, "read-only file system")
    assert_intact(small_root, base, BUSYBOX)
