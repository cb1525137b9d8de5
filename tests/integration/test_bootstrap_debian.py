"""`lamina bootstrap debian`: a Debian base image from Debian's mirror with mmdebstrap.

The slow tests download about 30 MB from deb.debian.org. When the mirror cannot be reached
they fail with mmdebstrap's message; they never pass without having built the image.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lamina.api import history
from lamina.api.bootstrap import BootstrapError, bootstrap_debian
from lamina.bootstrap.debian import DebianSpec
from lamina.errors import UsageError
from lamina.runtime import RunOptions, run_container
from lamina.store import Store
from lamina.store.unpack import unpack_image

needs_mmdebstrap = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mmdebstrap") or not shutil.which("crun"),
    reason="needs root, mmdebstrap and crun")


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    """debian:bookworm, minbase, bootstrapped once for the module: (store, result, progress)."""
    root = tmp_path_factory.mktemp("debian") / "root"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAMINA_ROOT", str(root))
        made = bootstrap_debian("bookworm", progress=lines.append)
    return Store.open(root), made, lines


@pytest.fixture
def rootfs(bootstrapped) -> Path:
    store, made, _ = bootstrapped
    (layer,) = unpack_image(store, store.image(made.image_id))
    return layer


@pytest.mark.slow
@needs_mmdebstrap
def test_minbase_is_tagged_for_the_suite_and_slim(bootstrapped):
    store, made, progress = bootstrapped
    assert made.tags == ("debian:bookworm", "debian:bookworm-slim")
    assert store.image("debian:bookworm").digest() == store.image("debian:bookworm-slim").digest()
    image = store.image("debian:bookworm")
    assert len(image.layers()) == 1
    assert image.config().config.cmd == ("bash",)
    assert [row.created_by for row in history("debian:bookworm", store=store)] == [
        'CMD ["bash"]', "MMDEBSTRAP --variant=minbase bookworm"]
    assert made.size < 100_000_000       # slim: Docker's bookworm-slim is 75 MB
    assert "installing essential packages..." in progress
    assert not any(line.startswith("Get:") for line in progress)   # apt's noise is left out


@pytest.mark.slow
@needs_mmdebstrap
def test_it_runs_debian_12(bootstrapped, rootfs, tmp_path, capfd):
    store, made, _ = bootstrapped
    config = store.image(made.image_id).config().to_dict()["config"]
    status = run_container(state_dir=tmp_path / "state", lowers=[rootfs], image_config=config,
                           options=RunOptions(command=["cat", "/etc/os-release"], remove=True,
                                              network_mode="none"))
    assert status == 0
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in capfd.readouterr().out


@pytest.mark.slow
@needs_mmdebstrap
def test_no_host_data_and_no_apt_caches(rootfs):
    etc = rootfs / "etc"
    assert not (etc / "resolv.conf").exists() and not (etc / "hostname").exists()
    host_resolv = Path("/etc/resolv.conf").read_text().strip()
    assert not host_resolv or all(host_resolv not in p.read_text(errors="replace")
                                  for p in etc.rglob("*") if p.is_file() and not p.is_symlink())
    assert list((rootfs / "dev").iterdir()) == []
    assert sorted(p.name for p in (rootfs / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert not list((rootfs / "var/cache/apt").glob("*.bin"))
    assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))
    assert (etc / "apt/apt.conf.d/docker-clean").is_file()     # later RUN layers stay lean
    docs = {p.name for p in (rootfs / "usr/share/doc").rglob("*")
            if p.is_file() and not p.is_symlink()}
    assert docs == {"copyright"}                                 # slim: licences only
    assert not list(rootfs.glob("usr/share/man/man*/*"))


@pytest.mark.slow
@needs_mmdebstrap
def test_an_unreachable_mirror_fails_with_mmdebstrap_message(tmp_path):
    store = Store.open(tmp_path / "root")
    with pytest.raises(BootstrapError) as info:
        bootstrap_debian("bookworm", mirrors=["http://127.0.0.1:9/debian"], store=store)
    message = str(info.value)
    assert "mmdebstrap failed" in message and "127.0.0.1:9" in message
    assert store.index.list() == []


# --- what is asked of mmdebstrap (no download) -----------------------------------------------

def test_the_command_line():
    cmd = DebianSpec("bookworm", "minbase", ("python3-flask", "curl")).command(Path("/t.tar"))
    assert cmd[:3] == ["mmdebstrap", "--variant=minbase", "--format=tar"]
    assert "--include=python3-flask,curl" in cmd
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in cmd        # minbase is the -slim image
    assert cmd[cmd.index("--"):] == [
        "--", "bookworm", "/t.tar", "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main"]
    standard = DebianSpec("sid", "standard", mirrors=("http://mirror.example/debian",))
    cmd = standard.command(Path("/t.tar"))
    assert not any(arg.startswith("--dpkgopt") for arg in cmd)
    assert cmd[-3:] == ["sid", "/t.tar", "http://mirror.example/debian"]


@pytest.mark.parametrize("spec, complaint", [
    (dict(suite="Bookworm; rm -rf /"), "not a Debian suite"),
    (dict(variant="fat"), "unknown variant"),
    (dict(mirrors=("/etc/apt/sources.list",)), "neither a URL"),
])
def test_bad_requests_are_refused_before_any_work(spec, complaint):
    with pytest.raises(UsageError, match=complaint):
        DebianSpec(**spec)
