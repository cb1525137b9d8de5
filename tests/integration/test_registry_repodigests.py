"""``lamina images --digests`` and ``inspect``'s RepoDigests show what Docker shows: the digest
the registry knows the image by (the manifest as pushed or pulled), not the local one, and
``<none>`` for a name no registry has. Checked against the registry's own answer to a HEAD
on the manifest, with the ``lamina`` command as a user runs it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lamina.image import mediatypes as mt
from lamina.image.config import ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.digest import sha256_digest
from lamina.image.platform import host_platform
from lamina.store import Store
from lamina.store.commit import commit_image
from tests.helpers_images import layer_tar
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, source, target)
from tests.integration.test_registry_distribution import Distribution

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")

LAMINA = Path(sys.executable).with_name("lamina")
ACCEPT = ", ".join([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])


@pytest.fixture
def registry(tmp_path):
    server = Distribution(tmp_path / "registry")
    yield server
    server.stop()


def lamina(store: Store, *args: str) -> str:
    result = subprocess.run([str(LAMINA), *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "LAMINA_ROOT": str(store.root)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def served_digest(host: str, repository: str, tag: str) -> str:
    """The manifest digest the registry serves for ``repository:tag`` (HEAD, as Docker asks)."""
    request = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Docker-Content-Digest"]


def digest_rows(store: Store) -> dict[tuple[str, str], str]:
    """(REPOSITORY, TAG) -> DIGEST, from the table ``lamina images --digests`` prints."""
    header, *rows = [re.split(r" {3,}", line.rstrip())
                     for line in lamina(store, "images", "--digests").splitlines()]
    assert header[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    return {(row[0], row[1]): row[2] for row in rows}


def plain_layer_image(store: Store, reference: str) -> str:
    """An image whose layer is stored uncompressed, as a build leaves it: push sends it
    gzip-compressed, so the registry's manifest digest is not the local one."""
    tar = layer_tar({"hello": b"hello from a plain layer\n" * 100})
    platform = host_platform()
    config = ImageConfig(architecture=platform.architecture, os=platform.os,
                         rootfs=RootFS(diff_ids=(sha256_digest(tar),)))
    with store.roots.lease() as lease:
        blob = store.content.put_bytes(tar)
        layer = Descriptor(mt.OCI_LAYER, blob.digest, blob.size)
        return commit_image(store, config, [layer], tags=[reference], lease=lease).digest


def test_digests_are_the_registrys_after_push_and_pull(source, target, registry):
    repository = f"{registry.host}/team/app"
    local = plain_layer_image(source, f"{repository}:1")
    assert digest_rows(source)[(repository, "1")] == "<none>"  # never pushed: Docker's <none>

    lamina(source, "push", "-q", f"{repository}:1")
    served = served_digest(registry.host, "team/app", "1")
    assert served != local  # push compressed the layer: another manifest
    assert digest_rows(source)[(repository, "1")] == served

    lamina(target, "pull", "-q", f"{repository}:1")
    assert digest_rows(target)[(repository, "1")] == served
    (inspected,) = json.loads(lamina(target, "inspect", f"{repository}:1"))
    assert inspected["RepoDigests"] == [f"{repository}@{served}"]
    assert lamina(target, "images", "--format", "{{.Digest}}", repository) == served + "\n"

    # Another name for the same image is in no registry: <none> on its row, as Docker shows.
    lamina(target, "tag", f"{repository}:1", "local/copy:2")
    rows = digest_rows(target)
    assert rows[("local/copy", "2")] == "<none>" and rows[(repository, "1")] == served


def test_a_repository_with_a_digest_but_no_tag_gets_its_own_row(source, target, registry):
    repository = f"{registry.host}/team/solo"
    plain_layer_image(source, f"{repository}:1")
    lamina(source, "push", "-q", f"{repository}:1")
    served = served_digest(registry.host, "team/solo", "1")
    lamina(source, "tag", f"{repository}:1", "kept:1")
    lamina(source, "rmi", f"{repository}:1")
    rows = digest_rows(source)
    # Docker: a row per repository the image has a RepoDigest in, with tag <none>
    assert rows[("kept", "1")] == "<none>"
    assert rows[(repository, "<none>")] == served


def test_an_image_pulled_by_digest_shows_that_digest_untagged(source, target, registry):
    repository = f"{registry.host}/team/bydigest"
    plain_layer_image(source, f"{repository}:1")
    lamina(source, "push", "-q", f"{repository}:1")
    served = served_digest(registry.host, "team/bydigest", "1")
    lamina(target, "pull", "-q", f"{repository}@{served}")
    header, *rows = [re.split(r" {3,}", line.rstrip())
                     for line in lamina(target, "images", "-a", "--digests").splitlines()]
    assert [row[:3] for row in rows] == [[repository, "<none>", served]]
    (inspected,) = json.loads(lamina(target, "inspect", f"{repository}@{served}"))
    assert inspected["RepoDigests"] == [f"{repository}@{served}"]
