"""Fixtures of the ``lamina run`` end-to-end tests (test_run_*.py); no tests of its own.

Each test has its own state root (``$LAMINA_ROOT`` = tmp_path/root) holding a busybox image
made from the busybox-static binary (PLATFORM.md section 4), and drives the real ``lamina``
script. Whatever a test leaves running is removed after it, and the test fails if a mount,
a network namespace, a runtime container or a network record of its root is left behind.
Containers use lamina's default bridge network; the session removes its bridge and the shared
iptables chains at the end when no container of anyone uses them any more. Traffic goes to
127.0.0.1 only.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lamina.runtime import netns
from lamina.runtime.crun import Runtime

LAMINA = Path(sys.executable).with_name("lamina")
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:app\napp:x:1000:\n"
OS_RELEASE = 'NAME="lamina busybox"\nID=busybox\n'
INDEX_HTML = "hello from lamina\n"

needs_runtime = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("crun") or not Path("/bin/busybox").exists()
    or not Path("/usr/lib/cni/bridge").exists(),
    reason="needs root, crun, busybox-static and the CNI plugins (make setup)")


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root file system tarball: busybox and its applets, passwd, group, a web page."""
    path = tmp_path_factory.mktemp("busybox") / "rootfs.tar"
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    with tarfile.open(path, "w") as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555),
                        ("dev", 0o755), ("tmp", 0o1777), ("root", 0o700), ("home/app", 0o755),
                        ("www", 0o755)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
                tar.addfile(info)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP),
                           ("etc/os-release", OS_RELEASE), ("www/index.html", INDEX_HTML)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def make_image(root: Path, busybox_tar: Path) -> Callable[..., str]:
    """Import the busybox root file system as ``name``, with Dockerfile ``changes``."""
    from lamina import api
    from lamina.store import Store

    def make(name: str = "busybox", changes: tuple[str, ...] = ()) -> str:
        api.import_image(busybox_tar, name, changes=changes, store=Store.open(root))
        return name
    return make


@pytest.fixture
def lamina(root: Path, make_image) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """Run the ``lamina`` script on the test's root, with a busybox image there."""
    make_image()
    env = {**os.environ, "LAMINA_ROOT": str(root), "TZ": "UTC"}

    def run(*args: str, input: str | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        return subprocess.run([str(LAMINA), *args], input=input, capture_output=True,
                              text=True, env=env, timeout=timeout)
    yield run
    ids = run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    assert_nothing_left(root)


def assert_nothing_left(root: Path) -> None:
    """No mount under ``root``, no runtime container of it, no network namespace or record."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(root))]
    bundles = [c["id"] for c in Runtime().list()
               if str(c.get("bundle", "")).startswith(str(root))]
    records = sorted(p.stem for p in (root / "networks").glob("*.json"))
    namespaces = [n for n in records if (netns.NETNS_DIR / f"lamina-{n}").exists()]
    containers = sorted(p.name for p in (root / "containers").glob("[0-9a-f]*"))
    assert (mounts, bundles, records, namespaces, containers) == ([], [], [], [], [])


@pytest.fixture(scope="session", autouse=True)
def default_network_teardown() -> Iterator[None]:
    """At the end, remove lamina's default bridge and idle chains if nobody uses them."""
    yield
    from lamina.runtime.netteardown import teardown_network
    from lamina.runtime.network import NetworkError
    try:
        teardown_network()
    except NetworkError:
        pass    # another test worker's (or a user's) containers still use it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 10.0) -> str:
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:     # until the server in the container listens
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def state(root: Path, container_id: str) -> dict:
    return json.loads((root / "containers" / container_id / "state.json").read_text())


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
