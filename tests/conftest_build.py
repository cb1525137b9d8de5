"""Fixtures of the build tests: a store with a busybox base image, and ways to build.

A test module loads them with ``pytest_plugins = ["tests.conftest_build"]``.

- ``busybox_layer``: a gzip tar of a busybox root file system, made once per session from
  ``/bin/busybox`` (its applets as symlinks, /etc/passwd with root, app and nobody, and
  /etc/removeme for tests that delete a file of the base);
- ``store``: a fresh store at ``$LAMINA_ROOT`` = a temp folder, with ``busybox:latest``
  (the test is skipped without root, crun and busybox-static);
- ``lamina``: the ``lamina`` command on that store (``lamina("build", ...)``);
- ``build``: the Python API on that store, with a plain progress display into a string;
- ``image_files(name)``, ``layer_members(name, index)``: what a built image holds;
- every test checks afterwards that the build left no mount, container dir or network.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lamina.store import Store

LAMINA = Path(sys.executable).with_name("lamina")
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n"

CAN_BUILD = os.geteuid() == 0 and shutil.which("crun") and Path("/bin/busybox").exists()


@pytest.fixture(scope="session")
def busybox_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755,
                data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data) if data else None)
        for name in ("bin", "etc", "proc", "sys", "dev", "root", "home", "home/app", "var"):
            add(name)
        add("tmp", mode=0o1777)
        add("bin/busybox", tarfile.REGTYPE, data=Path("/bin/busybox").read_bytes())
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD)
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP)
        add("etc/removeme", tarfile.REGTYPE, 0o644, b"from the base\n")
    return gzip.compress(buf.getvalue(), mtime=0)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "root"
    monkeypatch.setenv("LAMINA_ROOT", str(path))
    return path


@pytest.fixture
def store(root, busybox_layer) -> Store:
    from lamina.api import import_image

    if not CAN_BUILD:
        pytest.skip("needs root, crun and busybox-static")
    store = Store.open(root)
    import_image(io.BytesIO(busybox_layer), "busybox:latest", changes=['CMD ["sh"]'],
                 store=store)
    yield store
    _check_nothing_left(root)


@pytest.fixture
def lamina(root, store):
    def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LAMINA_ROOT": str(root)}
        out = subprocess.run([str(LAMINA), *args], input=stdin, capture_output=True,
                             env=env, timeout=120, cwd=cwd)
        done = subprocess.CompletedProcess(out.args, out.returncode,
                                           out.stdout.decode("utf-8", "replace"),
                                           out.stderr.decode("utf-8", "replace"))
        if check and done.returncode != 0:
            raise AssertionError(f"lamina {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stderr}")
        return done
    return run


class Built:
    """A build through the API: the result and what the plain progress display showed."""

    def __init__(self, result, log: str) -> None:
        self.result = result
        self.log = log

    @property
    def image_id(self) -> str:
        return self.result.image_id

    def cached(self) -> list[bool]:
        """cached or not, for each step that makes a layer (RUN, COPY, ADD)."""
        return [s.cached for s in self.result.steps if s.layer]


@pytest.fixture
def build(store):
    from lamina.api.build import build as api_build
    from lamina.build.progress import PlainProgress

    def run(context, dockerfile: str | None = None, **kwargs) -> Built:
        if dockerfile is not None:
            (Path(context) / "Dockerfile").write_text(dockerfile)
        log = io.StringIO()
        result = api_build(context, progress=PlainProgress(log), store=store, **kwargs)
        return Built(result, log.getvalue())
    return run


@pytest.fixture
def image_files(store):
    return lambda name: files_of(store, name)


@pytest.fixture
def layer_members(store):
    return lambda name, index=-1: members_of(store, name, index)


def files_of(store: Store, name: str) -> dict[str, tuple[str, int, int, int, bytes]]:
    """The root file system of an image as unpacked: path -> (kind, mode, uid, gid, data)
    for every entry of the stacked layers (the topmost version of each path)."""
    from lamina.layer.whiteout import is_opaque, is_whiteout
    from lamina.store.unpack import unpack_image

    lowers = unpack_image(store, store.image(name))
    seen: dict[str, tuple[str, int, int, int, bytes] | None] = {}
    hidden: set[str] = set()   # directories made opaque above: lower content gone
    for lower in lowers:   # topmost first
        opaque = []
        for top, dirs, files in os.walk(lower):
            rel_top = os.path.relpath(top, lower)
            rel_top = "" if rel_top == "." else rel_top
            for name_ in dirs + files:
                rel = f"{rel_top}/{name_}" if rel_top else name_
                if rel in seen or any(rel.startswith(h + "/") for h in hidden):
                    continue
                path = os.path.join(top, name_)
                st = os.lstat(path)
                if is_whiteout(st):
                    seen[rel] = None
                    continue
                kind = ("d" if os.path.isdir(path) and not os.path.islink(path)
                        else "l" if os.path.islink(path) else "f")
                data = (os.readlink(path).encode() if kind == "l" else
                        Path(path).read_bytes() if kind == "f" else b"")
                seen[rel] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid, data)
                if kind == "d" and is_opaque(path):
                    opaque.append(rel)
        hidden.update(opaque)
    # Entries below a deleted directory are gone too.
    deleted = {rel for rel, v in seen.items() if v is None}
    return {rel: v for rel, v in seen.items()
            if v is not None and not any(rel.startswith(d + "/") for d in deleted)}


def members_of(store: Store, name: str, index: int = -1) -> dict[str, tarfile.TarInfo]:
    """The entries of one layer tar of an image (default: the top layer)."""
    from lamina.layer import open_decompressed

    image = store.image(name)
    with image.open_blob(image.layers()[index]) as blob, \
            tarfile.open(fileobj=open_decompressed(blob), mode="r|") as tar:
        return {m.name: m for m in tar}


def _check_nothing_left(root: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(root))]
    builds = list((root / "builds").iterdir()) if (root / "builds").exists() else []
    networks = list((root / "networks").glob("*.json")) if (root / "networks").exists() else []
    assert (mounts, builds, networks) == ([], [], []), "a build left something behind"
