"""Images whose every byte a test chooses: layer tars with directories, whiteouts and opaque
markers, stored gzip, zstd or uncompressed, and the config and manifest as raw JSON that a test
may bend to break a rule (tests of ``image analyze`` and ``image verify``).

    tar = tar_of([("big", b"x" * 1000), ("d/", None), (".wh.old", b"")])
    digest = write_image(store, [Layer(tar, "zstd")], tag="app:1")
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any, Callable

from lamina.image import mediatypes as mt
from lamina.image.platform import host_platform
from lamina.store import Store


@dataclass(frozen=True)
class Layer:
    tar: bytes
    compression: str | None = "gzip"    # "gzip", "zstd" or None (stored as the tar)
    created_by: str = "RUN step"
    media_type: str | None = None       # default: the one the compression calls for


def tar_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A layer tar of ``(name, data)`` in the order given: data None (or a name ending in
    "/") makes a directory; whiteouts are files named ``.wh.NAME``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            if data is None or name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, compression: str | None) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    return data


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_image(store: Store, layers: list[Layer], *, tag: str | None = None,
                bend_config: Callable[[dict[str, Any]], None] | None = None,
                bend_manifest: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Store the image and name it ``tag``; return its manifest digest. ``bend_config`` and
    ``bend_manifest`` may change the JSON objects before they are written."""
    platform = host_platform()
    descriptors = []
    for layer in layers:
        blob = store.content.put_bytes(compress(layer.tar, layer.compression))
        descriptors.append({"mediaType": layer.media_type
                            or mt.layer_media_type(layer.compression),
                            "digest": blob.digest, "size": blob.size})
    config: dict[str, Any] = {
        "architecture": platform.architecture, "os": platform.os,
        "created": "2024-01-02T03:04:05Z", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(la.tar) for la in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": la.created_by}
                    for la in layers]}
    if bend_config:
        bend_config(config)
    config_blob = store.content.put_bytes(json.dumps(config).encode())
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config_blob.digest,
                   "size": config_blob.size},
        "layers": descriptors}
    if bend_manifest:
        bend_manifest(manifest)
    raw = json.dumps(manifest).encode()
    blob = store.content.put_bytes(raw)
    if tag:
        store.tag(tag, blob.digest)
    return blob.digest
