"""``lamina image verify`` (lamina.api.verify), the OCI schema rules (lamina.image.schema), and
``system check`` using both, on images damaged in a temporary store."""
from __future__ import annotations

import json
import os

import pytest

from lamina import api
from lamina.image import mediatypes as mt
from lamina.image.schema import validate
from lamina.store import Store
from tests.helpers_crafted import Layer, sha256, tar_of, write_image


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def two_layers() -> list[Layer]:
    return [Layer(tar_of([("a", b"a" * 100)])), Layer(tar_of([("b", b"b" * 100)]), "zstd")]


def flip_byte(store: Store, digest: str, offset: int = 20) -> None:
    path = store.content.path(digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def messages(report) -> str:
    return "\n".join(p.message for p in report.problems)


def test_a_good_image_verifies(store):
    write_image(store, two_layers(), tag="good:1")
    report = api.verify("good:1", store=store)
    assert report.ok and report.problems == ()
    assert (report.blobs, report.layers) == (4, 2)  # manifest, config, 2 layers


def test_a_damaged_layer_blob_is_named(store):
    digest = write_image(store, two_layers(), tag="app:1")
    layer = store.image("app:1").layers()[1].digest
    flip_byte(store, layer)
    report = api.verify("app:1", store=store)
    assert not report.ok and report.digest == digest
    assert f"its layer {layer}: damaged" in messages(report)
    assert "lamina rmi app:1" in report.problems[0].action


def test_a_layer_that_decompresses_to_another_diff_id_is_named(store):
    other = tar_of([("z", b"z")])

    def wrong_diff_id(config):
        config["rootfs"]["diff_ids"][0] = sha256(other)

    write_image(store, two_layers(), tag="app:1", bend_config=wrong_diff_id)
    layer = store.image("app:1").layers()[0].digest
    report = api.verify("app:1", store=store)
    (problem,) = report.problems
    assert f"its layer {layer} decompresses to" in problem.message
    assert f"not to the diff ID {sha256(other)}" in problem.message
    # system check runs the same walk over every image
    assert problem.message in {p.message for p in api.check(store=store).problems}


def test_a_layer_not_compressed_as_its_media_type_says_is_named(store):
    layers = [Layer(tar_of([("a", b"a")]), None, media_type=mt.OCI_LAYER_GZIP)]
    write_image(store, layers, tag="app:1")
    assert "is uncompressed, but its media type " \
           "application/vnd.oci.image.layer.v1.tar+gzip says gzip" \
           in messages(api.verify("app:1", store=store))


def test_schema_problems_of_config_and_manifest_are_named(store):
    def bad_config(config):
        del config["os"]
        config["created"] = "yesterday"
        config["config"]["Env"] = "PATH=/bin"

    def bad_manifest(manifest):
        manifest["artifactType"] = "nonsense"

    write_image(store, two_layers(), tag="app:1", bend_config=bad_config,
                bend_manifest=bad_manifest)
    text = messages(api.verify("app:1", store=store))
    assert "breaks the OCI image spec: artifactType: 'nonsense' is not a media type" in text
    assert "breaks the OCI image spec: os: is required" in text
    assert "created: 'yesterday' is not an RFC 3339 date-time" in text
    assert "config.Env: must be an array of strings" in text


def test_a_descriptor_size_that_lies_is_named(store):
    def lie(manifest):
        manifest["layers"][0]["size"] += 1

    write_image(store, two_layers(), tag="app:1", bend_manifest=lie)
    assert "bytes, but the descriptor says" in messages(api.verify("app:1", store=store))


def test_an_unknown_name_is_a_clear_error(store):
    with pytest.raises(api.NoSuchImageError, match="No such image: nope"):
        api.verify("nope", store=store)


# the schema validator on its own


def test_schema_descriptor_rules():
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:abc", "size": -1},
                "layers": [{"mediaType": "nonsense", "digest": "sha256:" + "a" * 64,
                            "size": 1.5},
                           {"mediaType": "text/plain", "digest": "sha256:" + "b" * 64,
                            "size": 1}]}
    problems = [str(p) for p in validate(json.dumps(manifest).encode(), "manifest")]
    assert problems == [
        "config.digest: 'sha256:abc': a sha256 digest is 64 lowercase hex characters",
        "config.size: -1 is out of range (0 to 2^63-1)",
        "layers[0].mediaType: 'nonsense' is not a media type (type/subtype, RFC 6838)",
        "layers[0].size: must be an integer, not a number",
        "layers[1].mediaType: 'text/plain' is not a layer media type"]


def test_schema_index_and_version_rules():
    index = {"schemaVersion": 1, "mediaType": mt.OCI_INDEX,
             "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "c" * 64,
                            "size": 10, "platform": {"os": "linux"}}]}
    problems = validate(json.dumps(index).encode(), "index", mt.DOCKER_MANIFEST_LIST)
    assert [str(p) for p in problems] == ["schemaVersion: must be 2, not 1",
            f"mediaType: '{mt.OCI_INDEX}' differs from the descriptor's "
            f"'{mt.DOCKER_MANIFEST_LIST}'",
            "manifests[0].platform.architecture: is required"]
    assert [str(p) for p in validate(b"[1]", "config")] == ["must be a JSON object"]
    assert str(validate(b"{", "config")[0]).startswith("not valid JSON")
