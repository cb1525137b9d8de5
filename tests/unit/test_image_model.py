"""The OCI data model: digests, chain IDs, media types, descriptors, manifests, configs."""
from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from lamina.image import mediatypes as mt
from lamina.image.config import (ConfigError, ContainerConfig, History, ImageConfig, RootFS,
                                 format_unix_time, parse_timestamp)
from lamina.image.descriptor import Descriptor, DescriptorError
from lamina.image.digest import (DigestError, canonical_json, chain_ids, sha256_digest,
                                 short_id, validate_digest)
from lamina.image.manifest import (Index, Manifest, ManifestError, PlatformNotFoundError,
                                   build_index, build_manifest, parse_manifest)
from lamina.image.platform import Platform
from lamina.image.source import Image, ImageBase, ImageError


def hexdigest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


D1, D2, D3 = (hexdigest(s) for s in (b"one", b"two", b"three"))


# --- digests ---------------------------------------------------------------------------------

def test_sha256_digest_is_of_the_bytes():
    assert sha256_digest(b"") == ("sha256:e3b0c44298fc1c149afbf4c8996fb924"
                                  "27ae41e4649b934ca495991b7852b855")
    assert sha256_digest(b"hello") == hexdigest(b"hello")


@pytest.mark.parametrize("bad", ["", "sha256:", "sha256:abc", "sha256:" + "A" * 64,
                                 "md5:" + "0" * 64 + "x", "0" * 64, "sha256:" + "g" * 64,
                                 "sha256:" + "0" * 64 + "\n", None, 12])
def test_invalid_digests_are_refused(bad):
    with pytest.raises(DigestError) as err:
        validate_digest(bad)
    assert "digest" in str(err.value)


def test_other_algorithms_get_a_clear_message():
    with pytest.raises(DigestError, match="unsupported digest algorithm 'sha512'"):
        validate_digest("sha512:" + "0" * 128)


def test_short_id_is_dockers_twelve_characters():
    assert short_id(D1) == D1[7:19]


def test_chain_ids_follow_the_oci_formula():
    assert chain_ids([]) == []
    assert chain_ids([D1]) == [D1]
    c2 = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {D3}".encode()).hexdigest()
    assert chain_ids([D1, D2, D3]) == [D1, c2, c3]


def test_chain_ids_refuse_bad_diff_ids():
    with pytest.raises(DigestError):
        chain_ids([D1, "sha256:nothex"])


def test_canonical_json_does_not_depend_on_key_order():
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == \
        canonical_json({"a": {"c": "é", "d": [1, 2]}, "b": 1})
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


# --- media types -----------------------------------------------------------------------------

@pytest.mark.parametrize("media_type, compression", [
    (mt.OCI_LAYER, None), (mt.OCI_LAYER_GZIP, "gzip"), (mt.OCI_LAYER_ZSTD, "zstd"),
    (mt.DOCKER_LAYER, None), (mt.DOCKER_LAYER_GZIP, "gzip"), (mt.DOCKER_LAYER_ZSTD, "zstd"),
    (mt.DOCKER_FOREIGN_LAYER_GZIP, "gzip"), (mt.OCI_LAYER_NONDIST_GZIP, "gzip"),
])
def test_layer_compression_from_media_type(media_type, compression):
    assert mt.is_layer(media_type)
    assert mt.layer_compression(media_type) == compression


def test_unknown_layer_media_type_is_an_error():
    assert not mt.is_layer(mt.OCI_CONFIG)
    with pytest.raises(mt.MediaTypeError, match="not a layer media type"):
        mt.layer_compression(mt.OCI_CONFIG)


def test_new_layer_media_types():
    assert mt.layer_media_type("zstd") == mt.OCI_LAYER_ZSTD
    assert mt.layer_media_type(None, docker=True) == mt.DOCKER_LAYER
    with pytest.raises(mt.MediaTypeError):
        mt.layer_media_type("bzip2")


def test_manifest_and_index_kinds():
    assert mt.is_image_manifest(mt.DOCKER_MANIFEST) and mt.is_image_manifest(mt.OCI_MANIFEST)
    assert mt.is_index(mt.DOCKER_MANIFEST_LIST) and mt.is_index(mt.OCI_INDEX)
    assert not mt.is_index(mt.OCI_MANIFEST)
    assert mt.strip_parameters("application/json; charset=utf-8") == "application/json"


# --- descriptors -----------------------------------------------------------------------------

def test_descriptor_json_round_trip():
    obj = {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 42,
           "annotations": {"a": "b"}, "urls": ["https://x/y"],
           "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
    desc = Descriptor.from_json(obj)
    assert desc.platform == Platform("linux", "arm64", "v8")  # kept as written
    assert desc.annotations == {"a": "b"} and desc.urls == ("https://x/y",)
    assert desc.to_json() == obj
    assert Descriptor.from_json(desc.to_json()) == desc


def test_descriptor_is_immutable():
    desc = Descriptor(mt.OCI_CONFIG, D1, 1, {"k": "v"})
    with pytest.raises(Exception):
        desc.size = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        desc.annotations["k"] = "w"  # type: ignore[index]


@pytest.mark.parametrize("obj, message", [
    ({"digest": D1, "size": 1}, "no mediaType"),
    ({"mediaType": "x", "digest": "sha256:zz", "size": 1}, "invalid digest"),
    ({"mediaType": "x", "digest": D1, "size": -1}, "invalid size"),
    ({"mediaType": "x", "digest": D1, "size": 1, "annotations": {"a": 1}}, "annotations"),
    ({"mediaType": "x", "digest": D1, "size": 1, "platform": {"os": "linux"}}, "platform"),
])
def test_bad_descriptors_are_explained(obj, message):
    with pytest.raises(DescriptorError, match=message):
        Descriptor.from_json(obj)


# --- manifests -------------------------------------------------------------------------------

# Pretty-printed on purpose: the digest must be of these bytes, not of a re-serialisation.
DOCKER_MANIFEST = f"""{{
   "schemaVersion": 2,
   "mediaType": "{mt.DOCKER_MANIFEST}",
   "config": {{
      "mediaType": "{mt.DOCKER_CONFIG}",
      "size": 1469,
      "digest": "{D1}"
   }},
   "layers": [
      {{
         "mediaType": "{mt.DOCKER_LAYER_GZIP}",
         "size": 2814446,
         "digest": "{D2}"
      }},
      {{
         "mediaType": "{mt.DOCKER_LAYER_GZIP}",
         "size": 32,
         "digest": "{D3}"
      }}
   ]
}}""".encode()

OCI_MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
    "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 7},
    "layers": [{"mediaType": mt.OCI_LAYER_ZSTD, "digest": D2, "size": 9}],
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}, indent=2).encode()


def test_docker_schema2_manifest_keeps_its_raw_bytes():
    manifest = parse_manifest(DOCKER_MANIFEST)
    assert isinstance(manifest, Manifest)
    assert manifest.raw == DOCKER_MANIFEST
    assert manifest.digest == hexdigest(DOCKER_MANIFEST)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert manifest.config == Descriptor(mt.DOCKER_CONFIG, D1, 1469)
    assert [d.digest for d in manifest.layers] == [D2, D3]
    assert manifest.descriptor().size == len(DOCKER_MANIFEST)


def test_oci_manifest_parses():
    manifest = parse_manifest(OCI_MANIFEST, mt.OCI_MANIFEST)
    assert isinstance(manifest, Manifest) and manifest.media_type == mt.OCI_MANIFEST
    assert manifest.layers[0].media_type == mt.OCI_LAYER_ZSTD
    assert manifest.annotations["org.opencontainers.image.created"] == "2024-01-01T00:00:00Z"


def test_media_type_comes_from_the_shape_when_unsaid():
    raw = json.dumps({"schemaVersion": 2, "config": {"mediaType": mt.OCI_CONFIG, "digest": D1,
                                                     "size": 1}, "layers": []}).encode()
    assert parse_manifest(raw).media_type == mt.OCI_MANIFEST
    assert parse_manifest(b'{"schemaVersion": 2, "manifests": []}').media_type == mt.OCI_INDEX
    # A Content-Type header with parameters says what it is.
    assert parse_manifest(raw, mt.DOCKER_MANIFEST + "; charset=utf-8").media_type \
        == mt.DOCKER_MANIFEST


def test_declared_and_inline_media_types_must_agree():
    with pytest.raises(ManifestError, match="says its mediaType is"):
        parse_manifest(DOCKER_MANIFEST, mt.OCI_MANIFEST)


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion": 1, "name": "x", "fsLayers": []}', "schema 1"),
    (b'{"schemaVersion": 3}', "schemaVersion 3"),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "not an image manifest"),
    (b'{"schemaVersion": 2, "layers": []}', "no config descriptor"),
    (b'{"schemaVersion": 2, "manifests": {}}', "manifests must be a list"),
])
def test_bad_manifests_are_explained_with_their_digest(raw, message):
    with pytest.raises(ManifestError, match=message) as err:
        parse_manifest(raw)
    assert hexdigest(raw) in str(err.value)


def test_schema1_error_says_what_to_do():
    with pytest.raises(ManifestError) as err:
        parse_manifest(b"{}", mt.DOCKER_MANIFEST_V1_SIGNED)
    assert err.value.hint and "newer tag" in err.value.hint


def test_built_manifest_is_canonical_and_parses_back():
    config = Descriptor(mt.OCI_CONFIG, D1, 10)
    layers = [Descriptor(mt.OCI_LAYER_GZIP, D2, 20), Descriptor(mt.OCI_LAYER_GZIP, D3, 30)]
    built = build_manifest(config, layers, annotations={"k": "v"})
    again = build_manifest(config, list(layers), annotations={"k": "v"})
    assert built.raw == again.raw and built.digest == hexdigest(built.raw)
    parsed = parse_manifest(built.raw)
    assert parsed == built
    assert json.loads(built.raw)["mediaType"] == mt.OCI_MANIFEST
    docker = build_manifest(Descriptor(mt.DOCKER_CONFIG, D1, 10), layers,
                            media_type=mt.DOCKER_MANIFEST)
    assert parse_manifest(docker.raw).media_type == mt.DOCKER_MANIFEST
    with pytest.raises(ManifestError):
        build_manifest(config, layers, media_type=mt.OCI_INDEX)


def _entry(os_: str, arch: str, variant: str = "", digest: str = D1) -> dict:
    plat = {"os": os_, "architecture": arch}
    if variant:
        plat["variant"] = variant
    return {"mediaType": mt.DOCKER_MANIFEST, "digest": digest, "size": 1, "platform": plat}


def _digest_n(n: int) -> str:
    return hexdigest(str(n).encode())


MANIFEST_LIST = json.dumps({
    "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
    "manifests": [_entry("linux", "amd64", digest=_digest_n(0)),
                  _entry("linux", "arm", "v6", digest=_digest_n(1)),
                  _entry("linux", "arm", "v7", digest=_digest_n(2)),
                  _entry("linux", "arm64", "v8", digest=_digest_n(3)),
                  _entry("linux", "arm", "v5", digest=_digest_n(4)),
                  _entry("unknown", "unknown", digest=_digest_n(5))],
}).encode()


def test_manifest_list_parses_as_an_index():
    index = parse_manifest(MANIFEST_LIST)
    assert isinstance(index, Index)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST and index.raw == MANIFEST_LIST
    assert len(index.manifests) == 6


@pytest.mark.parametrize("wanted, expected", [
    ("linux/amd64", 0), ("linux/x86_64", 0), ("linux/arm64", 3), ("linux/arm64/v8", 3),
    ("linux/arm/v7", 2), ("linux/arm/v6", 1), ("linux/arm/v5", 4), ("linux/arm", 2),
])
def test_platform_selection(wanted, expected):
    index = parse_manifest(MANIFEST_LIST)
    assert index.select(Platform.parse(wanted)).digest == _digest_n(expected)


def test_arm_falls_back_to_the_newest_older_variant():
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        _entry("linux", "arm", "v5", digest=_digest_n(0)),
        _entry("linux", "arm", "v6", digest=_digest_n(1))]}).encode()
    assert parse_manifest(raw).select(Platform.parse("linux/arm/v7")).digest == _digest_n(1)


def test_missing_platform_lists_the_available_ones():
    index = parse_manifest(MANIFEST_LIST)
    with pytest.raises(PlatformNotFoundError) as err:
        index.select(Platform.parse("linux/s390x"))
    text = str(err.value)
    assert "linux/s390x" in text and "linux/arm64/v8" in text and "unknown" not in text


def test_built_index_round_trips():
    children = [Descriptor(mt.OCI_MANIFEST, D1, 5, platform=Platform("linux", "amd64")),
                Descriptor(mt.OCI_MANIFEST, D2, 6, platform=Platform("linux", "arm64"))]
    built = build_index(children)
    assert parse_manifest(built.raw) == built
    assert built.select(Platform("linux", "arm64")).digest == D2


# --- image config ----------------------------------------------------------------------------

# Shaped like a config written by Docker, with keys lamina does not model.
DOCKER_CONFIG = {
    "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:11:12.123456789Z",
    "docker_version": "24.0.7", "author": "someone",
    "container_config": {"Hostname": "abc", "Cmd": ["/bin/sh", "-c", "#(nop) CMD"]},
    "config": {
        "Hostname": "", "User": "app", "AttachStdin": False,
        "Env": ["PATH=/usr/bin:/bin", "A=1"], "Entrypoint": ["/entry.sh"], "Cmd": ["serve"],
        "WorkingDir": "/app", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
        "Volumes": {"/data": {}}, "Labels": {"org.example": "yes"}, "StopSignal": "SIGINT",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000, "Retries": 3},
        "OnBuild": ["RUN echo hi"], "Shell": ["/bin/bash", "-c"], "ArgsEscaped": True,
        "StopTimeout": 5, "Image": "sha256:abc",
    },
    "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    "history": [
        {"created": "2024-05-01T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {"created": "2024-05-01T10:00:01Z", "created_by": "/bin/sh -c #(nop) ENV A=1",
         "empty_layer": True},
        {"created": "2024-05-01T10:00:02Z", "created_by": "RUN make", "comment": "buildkit"},
    ],
}


def test_config_reads_docker_keys_and_keeps_the_rest():
    config = ImageConfig.parse(json.dumps(DOCKER_CONFIG, indent=3).encode())
    assert (config.architecture, config.os, config.author) == ("amd64", "linux", "someone")
    c = config.config
    assert c.user == "app" and c.env == ("PATH=/usr/bin:/bin", "A=1")
    assert c.entrypoint == ("/entry.sh",) and c.cmd == ("serve",) and c.working_dir == "/app"
    assert c.exposed_ports == ("443/tcp", "80/tcp") and c.volumes == ("/data",)
    assert c.labels == {"org.example": "yes"} and c.stop_signal == "SIGINT"
    assert c.healthcheck.test == ("CMD", "true") and c.healthcheck.interval == 30_000_000_000
    assert c.healthcheck.retries == 3 and c.healthcheck.timeout is None
    assert c.on_build == ("RUN echo hi",) and c.shell == ("/bin/bash", "-c")
    assert c.args_escaped is True
    assert c.extra == {"Hostname": "", "AttachStdin": False, "StopTimeout": 5,
                       "Image": "sha256:abc"}
    assert config.extra["docker_version"] == "24.0.7"
    assert config.rootfs == RootFS("layers", (D1, D2))
    assert [h.empty_layer for h in config.history] == [False, True, False]
    assert config.history[2].comment == "buildkit"


def test_config_round_trip_loses_nothing():
    config = ImageConfig.parse(json.dumps(DOCKER_CONFIG).encode())
    assert config.to_dict() == DOCKER_CONFIG
    assert ImageConfig.parse(config.to_json()) == config


def test_config_serialisation_is_deterministic():
    shuffled = dict(reversed(list(DOCKER_CONFIG.items())))
    a = ImageConfig.parse(json.dumps(DOCKER_CONFIG).encode()).to_json()
    b = ImageConfig.parse(json.dumps(shuffled).encode()).to_json()
    assert a == b and b'"empty_layer":true' in a


def test_null_reads_as_absent():
    config = ImageConfig.parse(b'{"os": "linux", "config": {"Cmd": null, "Entrypoint": null}}')
    assert config.config.cmd is None and config.config.entrypoint is None
    assert config.to_dict() == {"os": "linux", "config": {},
                                "rootfs": {"type": "layers", "diff_ids": []}}


def test_new_config_has_docker_key_names():
    config = ImageConfig(architecture="arm64", os="linux", created="2024-01-01T00:00:00Z",
                         config=ContainerConfig(env=("A=1",), working_dir="/w",
                                                exposed_ports=("8080/tcp",)),
                         rootfs=RootFS(diff_ids=(D1,)),
                         history=(History(created_by="COPY . /w"),
                                  History(created_by="ENV A=1", empty_layer=True)))
    assert json.loads(config.to_json()) == {
        "architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["A=1"], "WorkingDir": "/w", "ExposedPorts": {"8080/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [D1]},
        "history": [{"created_by": "COPY . /w"}, {"created_by": "ENV A=1", "empty_layer": True}],
    }


@pytest.mark.parametrize("obj, where", [
    ({"config": {"Env": "A=1"}}, "config.Env must be a list of strings"),
    ({"config": {"ArgsEscaped": "yes"}}, "config.ArgsEscaped must be true or false"),
    ({"config": {"Healthcheck": {"Retries": "3"}}}, "config.Healthcheck.Retries"),
    ({"rootfs": {"type": "layers", "diff_ids": ["nope"]}}, "rootfs.diff_ids"),
    ({"history": [{"empty_layer": 1}]}, r"history\[0\].empty_layer"),
    ({"history": {}}, "history must be a list"),
])
def test_bad_configs_name_the_key(obj, where):
    with pytest.raises(ConfigError, match=where):
        ImageConfig.parse(json.dumps(obj).encode())


def test_config_that_is_not_json_names_its_digest():
    with pytest.raises(ConfigError, match=hexdigest(b"\xff")[7:]):
        ImageConfig.parse(b"\xff")


def test_layer_history_pairs_steps_with_layers():
    config = ImageConfig.parse(json.dumps(DOCKER_CONFIG).encode())
    assert [(h.created_by, d) for h, d in config.layer_history()] == [
        ("/bin/sh -c #(nop) ADD file:x in /", D1), ("/bin/sh -c #(nop) ENV A=1", None),
        ("RUN make", D2)]
    bare = ImageConfig(rootfs=RootFS(diff_ids=(D1, D2)))
    assert [d for _, d in bare.layer_history()] == [D1, D2]
    broken = ImageConfig(rootfs=RootFS(diff_ids=(D1,)), history=(History(), History()))
    with pytest.raises(ConfigError, match="more non-empty entries"):
        broken.layer_history()


def test_timestamps():
    stamp = parse_timestamp("2024-05-01T10:11:12.123456789Z")
    assert stamp == datetime(2024, 5, 1, 10, 11, 12, 123456, tzinfo=timezone.utc)
    assert parse_timestamp("2024-05-01T12:11:12+02:00") == datetime(2024, 5, 1, 10, 11, 12,
                                                                    tzinfo=timezone.utc)
    may = int(datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000_000
    assert format_unix_time(may) == "2024-05-01T00:00:00Z"
    assert format_unix_time(may + 36_672_123_456_789) == "2024-05-01T10:11:12.123456Z"
    assert format_unix_time(may + 500_000_000) == "2024-05-01T00:00:00.5Z"
    with pytest.raises(ConfigError, match="invalid timestamp"):
        parse_timestamp("yesterday")


# --- the Image interface ---------------------------------------------------------------------

class MemoryImage(ImageBase):
    def __init__(self, manifest: bytes, blobs: dict[str, bytes]) -> None:
        self._raw, self._blobs = manifest, blobs

    def manifest_bytes(self) -> bytes:
        return self._raw

    def open_blob(self, desc: Descriptor):
        return io.BytesIO(self._blobs[desc.digest])


def _memory_image(config_bytes: bytes, claimed: bytes | None = None) -> MemoryImage:
    claimed = claimed if claimed is not None else config_bytes
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, hexdigest(claimed), len(claimed)),
                              [Descriptor(mt.OCI_LAYER_GZIP, D2, 3)])
    return MemoryImage(manifest.raw, {hexdigest(claimed): config_bytes})


def test_image_base_derives_everything_from_manifest_and_blobs():
    config = ImageConfig(os="linux", rootfs=RootFS(diff_ids=(D1,)))
    image = _memory_image(config.to_json())
    assert all(callable(getattr(image, name, None)) for name in _interface(Image))
    assert image.digest() == hexdigest(image.manifest_bytes())
    assert image.config() == config and image.config_bytes() == config.to_json()
    assert [d.digest for d in image.layers()] == [D2]


def test_image_base_refuses_a_config_that_is_not_what_the_manifest_says():
    image = _memory_image(b'{"os": "evil"}', claimed=b'{"os": "linux"}')
    with pytest.raises(ImageError, match="does not match its descriptor"):
        image.config_bytes()


def test_an_index_is_not_an_image():
    image = MemoryImage(build_index([]).raw, {})
    with pytest.raises(ImageError, match="select a platform|index"):
        image.manifest()


def _interface(protocol: type) -> list[str]:
    """The methods an Image must have: those its Protocol class declares."""
    names = [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    assert names
    return names


@pytest.mark.parametrize("ns", [0, 1, 999, 1_000, 1_700_000_000_123_456_789,
                                1_700_000_000_000_000_000, 4_102_444_800_500_000_000])
def test_unix_times_format_as_their_datetimes(ns):
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    assert format_unix_time(ns) == moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    assert parse_timestamp(format_unix_time(ns)) == moment
