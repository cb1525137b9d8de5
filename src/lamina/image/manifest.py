"""Image manifests and indexes (OCI and Docker schema 2), parsed from their raw bytes.

A parsed value keeps ``raw``, the exact bytes it came from, and its digest is the digest of
those bytes: copy ``raw``, never a re-serialisation, so digests survive pull, save and push.
Make a new manifest with ``build_manifest``/``build_index`` (canonical bytes), never with
``dataclasses.replace`` (the fields would no longer match ``raw``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import LaminaError
from . import mediatypes as mt
from .descriptor import Descriptor, DescriptorError
from .digest import canonical_json, sha256_digest
from .platform import Platform, PlatformError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


class ManifestError(LaminaError):
    """Manifest or index bytes that lamina cannot read."""

    def __init__(self, message: str, *, digest: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(f"manifest {digest}: {message}" if digest else message, hint=hint)
        self.digest = digest


class PlatformNotFoundError(LaminaError):
    """An index with no manifest for the platform asked for."""


@dataclass(frozen=True)
class Manifest:
    """An image manifest: one config and the layers, bottom first."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    def descriptor(self, *, platform: Platform | None = None,
                   annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw),
                          annotations=annotations or {}, platform=platform)


@dataclass(frozen=True)
class Index:
    """An image index (Docker: manifest list): manifests for several platforms."""

    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str]
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    def descriptor(self, *, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw),
                          annotations=annotations or {})

    def select(self, wanted: Platform) -> Descriptor:
        """The manifest for ``wanted``, the way containerd matches platforms.

        Platforms compare normalised (``arm64/v8`` is ``arm64``). An exact variant wins; an
        ARM machine also runs older ARM variants (v7 runs v6 and v5), the newest first.
        Entries without a platform or for ``unknown/unknown`` (attestations) never match.
        """
        want = _normalised(wanted)
        best: tuple[int, int, Descriptor] | None = None
        for position, desc in enumerate(self.manifests):
            have = _normalised(desc.platform) if desc.platform else None
            if have is None or (have.os, have.architecture) != (want.os, want.architecture):
                continue
            rank = _variant_rank(want, have)
            if rank is not None and (best is None or (rank, position) < best[:2]):
                best = (rank, position, desc)
        if best is None:
            available = sorted({str(d.platform) for d in self.manifests
                                if d.platform and d.platform.os != "unknown"})
            raise PlatformNotFoundError(
                f"no image for platform {want} in index {self.digest} "
                f"(it has: {', '.join(available) or 'no platforms'})",
                hint="choose one of the listed platforms with --platform")
        return best[2]


def _normalised(platform: Platform) -> Platform | None:
    try:
        return Platform.parse(str(platform))
    except PlatformError:
        return None


def _variant_rank(want: Platform, have: Platform) -> int | None:
    """0 for the same variant, n for an ARM variant n versions older, None if it won't run."""
    if want.variant == have.variant:
        return 0
    if want.architecture == "arm":
        w, h = re.fullmatch(r"v(\d+)", want.variant), re.fullmatch(r"v(\d+)", have.variant)
        if w and h and int(h.group(1)) < int(w.group(1)):
            return int(w.group(1)) - int(h.group(1))
    return None


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse manifest or index bytes.

    ``media_type`` is what the container said (a descriptor, a Content-Type header); when the
    JSON carries its own ``mediaType`` the two must agree, as the OCI spec requires. Without
    either, the shape decides: ``manifests`` means an OCI index, ``config`` an OCI manifest.
    """
    digest = sha256_digest(raw)
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:  # (too deep)
        raise ManifestError(f"not valid JSON ({err})", digest=digest) from None
    if not isinstance(obj, dict):
        raise ManifestError("not a JSON object", digest=digest)
    kind = _media_type_of(obj, mt.strip_parameters(media_type) if media_type else None, digest)
    try:
        subject = Descriptor.from_json(obj["subject"]) if obj.get("subject") else None
        annotations = _annotations(obj.get("annotations"), digest)
        artifact_type = obj.get("artifactType") or None
        if kind in mt.INDEXES:
            return Index(raw, kind, _descriptors(obj.get("manifests"), "manifests", digest),
                         annotations, subject, artifact_type)
        if not isinstance(obj.get("config"), dict):
            raise ManifestError("has no config descriptor", digest=digest)
        return Manifest(raw, kind, Descriptor.from_json(obj["config"]),
                        _descriptors(obj.get("layers"), "layers", digest),
                        annotations, subject, artifact_type)
    except DescriptorError as err:
        raise ManifestError(err.message, digest=digest, hint=err.hint) from None


def _media_type_of(obj: dict[str, Any], declared: str | None, digest: str) -> str:
    if obj.get("schemaVersion") == 1 or declared in mt.SCHEMA1_MANIFESTS:
        raise ManifestError(
            "is a Docker image manifest schema 1, which lamina does not read", digest=digest,
            hint="schema 1 is deprecated: use a newer tag of the image, or push it again "
                 "with a current Docker or lamina")
    if obj.get("schemaVersion") != 2:
        raise ManifestError(f"has schemaVersion {obj.get('schemaVersion')!r}, expected 2",
                            digest=digest)
    inline = obj.get("mediaType")
    if inline is not None and declared is not None and inline != declared:
        raise ManifestError(f"says its mediaType is {inline!r} but was given as {declared!r}",
                            digest=digest)
    kind = inline or declared or (mt.OCI_INDEX if "manifests" in obj else mt.OCI_MANIFEST)
    if kind not in mt.IMAGE_MANIFESTS and kind not in mt.INDEXES:
        raise ManifestError(f"has media type {kind!r}, which is not an image manifest or index",
                            digest=digest)
    return kind


def _descriptors(items: Any, key: str, digest: str) -> tuple[Descriptor, ...]:
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ManifestError(f"{key} must be a list", digest=digest)
    return tuple(Descriptor.from_json(item) for item in items)


def _annotations(obj: Any, digest: str) -> Mapping[str, str]:
    if obj is None:
        obj = {}
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise ManifestError("annotations must map strings to strings", digest=digest)
    return MappingProxyType(dict(obj))


def build_manifest(config: Descriptor, layers: Iterable[Descriptor], *,
                   media_type: str = mt.OCI_MANIFEST,
                   annotations: Mapping[str, str] | None = None) -> Manifest:
    """A new image manifest with canonical bytes (OCI by default, or Docker schema 2)."""
    if media_type not in mt.IMAGE_MANIFESTS:
        raise ManifestError(f"cannot build a manifest of media type {media_type!r}")
    layers = tuple(layers)
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "config": config.to_json(), "layers": [d.to_json() for d in layers]}
    if annotations:
        obj["annotations"] = dict(annotations)
    return Manifest(canonical_json(obj), media_type, config, layers,
                    MappingProxyType(dict(annotations or {})))


def build_index(manifests: Iterable[Descriptor], *, media_type: str = mt.OCI_INDEX,
                annotations: Mapping[str, str] | None = None) -> Index:
    """A new index (or Docker manifest list) with canonical bytes."""
    if media_type not in mt.INDEXES:
        raise ManifestError(f"cannot build an index of media type {media_type!r}")
    manifests = tuple(manifests)
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "manifests": [d.to_json() for d in manifests]}
    if annotations:
        obj["annotations"] = dict(annotations)
    return Index(canonical_json(obj), media_type, manifests,
                 MappingProxyType(dict(annotations or {})))
