"""The store is an OCI image layout that skopeo and umoci read, and lamina reads theirs."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from lamina.image import mediatypes as mt
from lamina.image.config import ContainerConfig, History, ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.manifest import Index, Manifest, build_manifest, parse_manifest
from lamina.store import Store

pytestmark = pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")),
                                reason="needs skopeo and umoci (scripts/setup.sh installs them)")
REF = "localhost/test:1"


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture
def image(tmp_path) -> tuple[Path, Manifest]:
    """A one-layer image made by hand, tagged localhost/test:1 in a fresh store."""
    store = Store.open(tmp_path / "root")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello from lamina\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    layer_tar = buf.getvalue()
    layer = store.content.put_bytes(gzip.compress(layer_tar, mtime=0))
    config = ImageConfig(
        architecture="amd64", os="linux", created="2024-01-01T00:00:00Z",
        config=ContainerConfig(cmd=("/bin/cat", "/hello.txt")),
        rootfs=RootFS(diff_ids=("sha256:" + hashlib.sha256(layer_tar).hexdigest(),)),
        history=(History(created="2024-01-01T00:00:00Z", created_by="ADD hello.txt /"),))
    config_blob = store.content.put_bytes(config.to_json())
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, config_blob.digest, config_blob.size),
                              [Descriptor(mt.OCI_LAYER_GZIP, layer.digest, layer.size)])
    store.content.put_bytes(manifest.raw)
    store.tag(REF, manifest.digest)
    return store.root, manifest


def test_skopeo_inspects_a_tagged_image(image):
    root, manifest = image
    info = json.loads(run("skopeo", "inspect", f"oci:{root}:{REF}"))
    assert info["Digest"] == manifest.digest
    assert info["Layers"] == [manifest.layers[0].digest]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")


def test_umoci_unpacks_a_tagged_image(image, tmp_path):
    root, _ = image
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--rootless", "--image", f"{root}:{REF}", str(bundle))
    assert (bundle / "rootfs" / "hello.txt").read_text() == "hello from lamina\n"
    runtime = json.loads((bundle / "config.json").read_bytes())
    assert runtime["process"]["args"] == ["/bin/cat", "/hello.txt"]


def test_a_skopeo_copy_reads_back_with_lamina(image, tmp_path):
    root, manifest = image
    other = tmp_path / "other"
    run("skopeo", "copy", "-q", f"oci:{root}:{REF}", f"oci:{other}:x")
    index = parse_manifest((other / "index.json").read_bytes())
    assert isinstance(index, Index)
    (entry,) = index.manifests
    assert entry.ref_name == "x" and entry.digest == manifest.digest  # digests survive a copy
    blob = other / "blobs" / "sha256"
    copied = parse_manifest((blob / entry.digest[7:]).read_bytes(), entry.media_type)
    assert isinstance(copied, Manifest) and copied.layers == manifest.layers
    config = ImageConfig.parse((blob / copied.config.digest[7:]).read_bytes())
    assert config.config.cmd == ("/bin/cat", "/hello.txt")
    assert len(config.rootfs.diff_ids) == 1
    # lamina opens a layout skopeo wrote, and finds its short ref name and the image ID.
    store = Store.open(other)
    assert store.resolve("x").digest == manifest.digest
    assert store.resolve(copied.config.digest[:19]).digest == manifest.digest
    assert store.image("x").config() == config
