"""The Image interface: what every image source answers (go-containerregistry's ``v1.Image``).

The local store, a registry, a ``save`` tarball and ``scratch`` are all images, so pull, push,
save, load and ``FROM`` are one copy routine between two of them. An implementation gives only
the minimal core, the raw manifest and a blob opener; ``ImageBase`` derives the rest and checks
the config it reads against the manifest's digest and size.
"""
from __future__ import annotations

from ..errors import LaminaError
from .config import ImageConfig
from .descriptor import Descriptor
from .digest import sha256_digest
from .manifest import Index, Manifest, parse_manifest

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol
else:
    Protocol = object   # an interface for type checkers; nothing checks it at run time

# Configs are small; a bigger "config" is a corrupt or hostile blob, not something to load.
MAX_CONFIG_SIZE = 8 * 1024 * 1024


class ImageError(LaminaError):
    """An image whose content does not match what its manifest says."""


class Image(Protocol):
    def manifest_bytes(self) -> bytes:
        """The raw manifest, exactly as stored or served."""

    def manifest(self) -> Manifest: ...

    def config_bytes(self) -> bytes:
        """The raw config blob; its digest is the image ID."""

    def config(self) -> ImageConfig: ...

    def digest(self) -> str:
        """The manifest digest (what ``name@sha256:...`` pins)."""

    def layers(self) -> tuple[Descriptor, ...]:
        """The layer descriptors, bottom layer first."""

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the blob's bytes (a layer is compressed as its media type says)."""


class ImageBase:
    """Derives the whole Image from ``manifest_bytes()`` and ``open_blob()``."""

    _manifest: Manifest | None = None
    _config_bytes: bytes | None = None

    def manifest_bytes(self) -> bytes:
        raise NotImplementedError

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        raise NotImplementedError

    def manifest(self) -> Manifest:
        if self._manifest is None:
            parsed = parse_manifest(self.manifest_bytes())
            if isinstance(parsed, Index):
                raise ImageError(f"{parsed.digest} is an index of several platforms, not an "
                                 "image", hint="select a platform from the index first")
            self._manifest = parsed
        return self._manifest

    def config_bytes(self) -> bytes:
        if self._config_bytes is None:
            desc = self.manifest().config
            if desc.size > MAX_CONFIG_SIZE:
                raise ImageError(f"config {desc.digest} is {desc.size} bytes, too big for an "
                                 "image config", hint="the manifest is damaged")
            with self.open_blob(desc) as stream:
                data = stream.read(desc.size + 1)
            if len(data) != desc.size or sha256_digest(data) != desc.digest:
                raise ImageError(
                    f"config blob does not match its descriptor {desc.digest} "
                    f"({desc.size} bytes): got {sha256_digest(data)} ({len(data)} bytes)",
                    hint="the blob is damaged: remove the image and pull or build it again")
            self._config_bytes = data
        return self._config_bytes

    def config(self) -> ImageConfig:
        return ImageConfig.parse(self.config_bytes())

    def digest(self) -> str:
        return self.manifest().digest

    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest().layers
