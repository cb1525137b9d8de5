"""Platforms (``os/arch[/variant]``), normalized as containerd does: ``x86_64`` is ``amd64``,
``aarch64`` is ``arm64``, ``arm64/v8`` is plain ``arm64``."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import LaminaError

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386",
}
_ARM_VARIANTS = {"armv5l": "v5", "armv6l": "v6", "armv7l": "v7", "armhf": "v7", "armel": "v6"}


class PlatformError(LaminaError):
    pass


@dataclass(frozen=True)
class Platform:
    """An OS and CPU an image is for, normalised as Docker does: ``linux/arm64/v8``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().lower().split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise PlatformError(f"invalid platform {text!r}",
                                hint="use os/arch[/variant], e.g. linux/amd64 or linux/arm64")
        if len(parts) == 1:
            # A bare architecture, as Docker accepts: the OS is linux.
            os_name, arch, variant = "linux", parts[0], ""
        else:
            os_name, arch = parts[0], parts[1]
            variant = parts[2] if len(parts) == 3 else ""
        return cls(os_name, *_normalize_arch(arch, variant))


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in _ARM_VARIANTS and not variant:
        variant = _ARM_VARIANTS[arch]
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch.startswith("armv") and arch[4:].rstrip("l").isdigit():
        variant = variant or "v" + arch[4:].rstrip("l")
        arch = "arm"
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    if arch == "arm" and variant.isdigit():
        variant = "v" + variant
    if arch == "arm" and not variant:
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = ""
    return arch, variant


def host_platform() -> Platform:
    """The platform of this machine (Linux only, as lamina runs only there)."""
    return Platform("linux", *_normalize_arch(os.uname().machine.lower(), ""))
