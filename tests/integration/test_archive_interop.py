"""Archives between lamina and the real tools: skopeo, umoci and, where a daemon runs, docker.

lamina is driven as a user drives it (the ``lamina`` script, ``$LAMINA_ROOT`` a temp folder);
what it stored is checked through the store API.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lamina.image.manifest import parse_manifest
from lamina.store import Store

from ..unit.test_archive import ROOTFS, legacy_archive
from ..helpers_images import Step, layer_tar, make_image

pytestmark = pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")),
                                reason="needs skopeo and umoci (scripts/setup.sh installs them)")
LAMINA = Path(sys.executable).with_name("lamina")


def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(args, capture_output=True, input=stdin, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stderr.decode()}"
    return done.stdout.decode()


def lamina(root: Path, *args: str, stdin: bytes | None = None) -> str:
    return run(str(LAMINA), *args, env={"LAMINA_ROOT": str(root)}, stdin=stdin)


def verify_image(store: Store, name: str) -> None:
    """What ``lamina inspect`` would show is there, and every blob has its digest."""
    image = store.image(name)
    for digest in [image.digest(), image.manifest().config.digest,
                   *(layer.digest for layer in image.layers())]:
        store.content.verify(digest)
    assert len(image.config().rootfs.diff_ids) == len(image.layers())


@pytest.fixture
def saved(tmp_path) -> tuple[Path, Store]:
    """A two-layer image app:1 saved by ``lamina save -o``, and the store it came from."""
    store = Store.open(tmp_path / "root")
    make_image(store, [Step("ADD base /", {"etc/base": b"base\n"}), Step("ENV A=1"),
                       Step("ADD app /", {"app/run": b"echo app\n"})], tag="app:1")
    lamina(store.root, "save", "-o", str(tmp_path / "app.tar"), "app:1")
    return tmp_path / "app.tar", store


def test_skopeo_reads_a_saved_archive_as_a_docker_archive(saved, tmp_path):
    archive, store = saved
    config = store.image("app:1").config()
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}"))
    # skopeo hands out docker-archive layers uncompressed: their digests are the diff IDs.
    assert info["Layers"] == list(config.rootfs.diff_ids)
    assert info["RepoTags"] == [] and info["Architecture"] == config.architecture
    raw_config = run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}")
    assert raw_config.encode() == store.image("app:1").config_bytes()


def test_skopeo_copies_a_saved_archive_to_an_oci_layout(saved, tmp_path):
    archive, store = saved
    run("skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{tmp_path / 'oci'}:app")
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    index = parse_manifest((tmp_path / "oci" / "index.json").read_bytes())
    manifest = parse_manifest((blobs / index.manifests[0].digest[7:]).read_bytes())
    # Converting to OCI, skopeo writes the config again (other key order): same content.
    copied = json.loads((blobs / manifest.config.digest[7:]).read_bytes())
    assert copied == json.loads(store.image("app:1").config_bytes())
    assert len(manifest.layers) == 2


def test_skopeo_reads_a_saved_archive_as_an_oci_archive(saved):
    archive, store = saved
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}:1"))
    assert info["Digest"] == store.image("app:1").digest()  # the manifest, byte for byte


def test_umoci_unpacks_the_extracted_layout(saved, tmp_path):
    archive, _ = saved
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:1", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc" / "base").read_text() == "base\n"
    assert (rootfs / "app" / "run").read_text() == "echo app\n"


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_lamina_loads_what_skopeo_writes(saved, tmp_path, transport):
    _, source = saved
    archive = tmp_path / f"{transport}.tar"
    run("skopeo", "copy", "-q", f"oci:{source.root}:docker.io/library/app:1",
        f"{transport}:{archive}:localhost/copied:2")
    target = tmp_path / "target"
    assert lamina(target, "load", "-i", str(archive)) == "Loaded image: localhost/copied:2\n"
    store = Store.open(target)
    verify_image(store, "localhost/copied:2")
    original = source.image("app:1")
    assert store.image("localhost/copied:2").config_bytes() == original.config_bytes()
    if transport == "oci-archive":  # the manifest travels too
        assert store.image("localhost/copied:2").digest() == original.digest()


def test_a_hand_made_legacy_archive_loads_and_skopeo_reads_the_result(tmp_path):
    archive, config = legacy_archive([ROOTFS, layer_tar({"app": b"1"})], tags=("old:1",))
    root = tmp_path / "root"
    assert lamina(root, "load", stdin=archive) == "Loaded image: old:1\n"
    info = json.loads(run("skopeo", "inspect", f"oci:{root}:docker.io/library/old:1"))
    assert info["Layers"] == json.loads(config)["rootfs"]["diff_ids"]  # plain layers, as given
    verify_image(Store.open(root), "old:1")


def test_an_imported_image_round_trips_through_skopeo(tmp_path):
    root = tmp_path / "root"
    image_id = lamina(root, "import", "-c", "CMD [\"/bin/hello\"]", "-", "imported:1",
                      stdin=ROOTFS).strip()
    lamina(root, "save", "-o", str(tmp_path / "i.tar"), "imported")
    raw = run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{tmp_path / 'i.tar'}")
    config = json.loads(raw)
    assert config["config"]["Cmd"] == ["/bin/hello"]
    assert config["history"][0]["comment"] == "Imported from -"
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image_id


def docker_daemon() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not docker_daemon(),
                    reason="no docker daemon (docker.io's dockerd not running)")
def test_docker_loads_a_lamina_archive(saved):
    archive, store = saved
    out = run("docker", "load", "-i", str(archive))
    assert "Loaded image: app:1" in out
    try:
        image_id = run("docker", "image", "inspect", "-f", "{{.Id}}", "app:1").strip()
        assert image_id in (store.image("app:1").manifest().config.digest,
                            store.image("app:1").digest())  # classic store / containerd store
    finally:
        subprocess.run(["docker", "rmi", "app:1"], capture_output=True, timeout=60)
