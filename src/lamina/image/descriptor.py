"""Content descriptors: what a manifest, an index or index.json says about a blob.

A descriptor names a blob by media type, digest and size; it may carry annotations, download
URLs (Docker foreign layers) and, in an index, the platform of the manifest it points at.
The platform is kept as written (``arm64`` + ``v8`` stays so); compare platforms with
``Platform.parse(str(p))`` to normalise. Only os, architecture and variant are kept
(``os.version`` and ``os.features`` matter only to Windows images, which lamina does not run).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import LaminaError
from .digest import DigestError, validate_digest
from .platform import Platform

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


class DescriptorError(LaminaError):
    """A descriptor that does not follow the OCI descriptor schema."""


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor: how a manifest, index or blob is pointed at, and checked once fetched."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise DescriptorError(f"descriptor of {self.digest} has an invalid size {self.size!r}")
        # Callers may pass a plain dict; keep the value immutable.
        if not isinstance(self.annotations, MappingProxyType):
            object.__setattr__(self, "annotations", _frozen(self.annotations))
        object.__setattr__(self, "urls", tuple(self.urls))

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (keys as in the OCI spec; empty optional fields omitted)."""
        obj: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.artifact_type:
            obj["artifactType"] = self.artifact_type
        if self.urls:
            obj["urls"] = list(self.urls)
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        if self.platform is not None:
            plat = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            obj["platform"] = plat
        return obj

    @classmethod
    def from_json(cls, obj: Any) -> "Descriptor":
        """Read a descriptor object; raise DescriptorError naming what is wrong."""
        if not isinstance(obj, dict):
            raise DescriptorError(f"a descriptor must be a JSON object, not {obj!r}")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise DescriptorError(f"descriptor of {obj.get('digest')!r} has no mediaType")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise DescriptorError(f"descriptor of {obj.get('digest')!r}: annotations must map "
                                  "strings to strings")
        urls = obj.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise DescriptorError(f"descriptor of {obj.get('digest')!r}: urls must be strings")
        try:
            return cls(media_type=media_type, digest=obj.get("digest"), size=obj.get("size"),
                       annotations=annotations, platform=_platform_from_json(obj.get("platform")),
                       urls=tuple(urls), artifact_type=obj.get("artifactType") or None)
        except DigestError as err:
            raise DescriptorError(f"descriptor has an invalid digest: {err.message}",
                                  hint=err.hint) from None

    @property
    def ref_name(self) -> str | None:
        """The name an OCI image layout gives this descriptor, if any."""
        return self.annotations.get(REF_NAME_ANNOTATION)


def _platform_from_json(obj: Any) -> Platform | None:
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("os"), str) \
            or not isinstance(obj.get("architecture"), str):
        raise DescriptorError(f"invalid platform {obj!r}: os and architecture are required")
    variant = obj.get("variant") or ""
    if not isinstance(variant, str):
        raise DescriptorError(f"invalid platform {obj!r}: variant must be a string")
    return Platform(obj["os"], obj["architecture"], variant)
