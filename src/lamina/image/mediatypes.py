"""Media types of OCI and Docker (image manifest v2, schema 2) content, and what they mean."""
from __future__ import annotations

from ..errors import LaminaError

# OCI image spec
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Deprecated by the spec but still found in old images.
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

# Docker image manifest v2, schema 2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Schema 1 is only recognised, to refuse it with a useful message.
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_MANIFESTS = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})

# Layer media type -> compression of its bytes (None: a plain tar).
_LAYER_COMPRESSION: dict[str, str | None] = {
    OCI_LAYER: None, OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: None, OCI_LAYER_NONDIST_GZIP: "gzip", OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER: None, DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
LAYERS = frozenset(_LAYER_COMPRESSION)

# (compression, docker?) -> the media type lamina writes for a new layer.
_NEW_LAYER = {
    (None, False): OCI_LAYER, ("gzip", False): OCI_LAYER_GZIP, ("zstd", False): OCI_LAYER_ZSTD,
    (None, True): DOCKER_LAYER, ("gzip", True): DOCKER_LAYER_GZIP,
    ("zstd", True): DOCKER_LAYER_ZSTD,
}


class MediaTypeError(LaminaError):
    """A media type lamina does not know how to handle where it is used."""


def is_image_manifest(media_type: str) -> bool:
    return media_type in IMAGE_MANIFESTS


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_layer(media_type: str) -> bool:
    return media_type in _LAYER_COMPRESSION


def layer_compression(media_type: str) -> str | None:
    """``"gzip"``, ``"zstd"`` or None (uncompressed) for a layer media type."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise MediaTypeError(f"{media_type!r} is not a layer media type lamina can unpack",
                             hint="layers are tar, tar+gzip or tar+zstd (OCI or Docker)") from None


def layer_media_type(compression: str | None, *, docker: bool = False) -> str:
    """The media type for a new layer compressed with ``compression`` (None: uncompressed)."""
    try:
        return _NEW_LAYER[(compression, docker)]
    except KeyError:
        raise MediaTypeError(f"unknown layer compression {compression!r}",
                             hint="use gzip, zstd or no compression") from None


def strip_parameters(media_type: str) -> str:
    """``application/x; charset=utf-8`` -> ``application/x`` (HTTP Content-Type parameters)."""
    return media_type.split(";", 1)[0].strip()
