"""Which endpoints serve a reference: the configured mirrors of docker.io first, for pulls.

A mirror (Docker's ``registry-mirrors``, e.g. a pull-through cache) serves Docker Hub's
repositories under the same paths (``/v2/library/ubuntu/...``). Pushes always go to the
registry itself. Only docker.io is mirrored, as Docker does.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..image.reference import ImageReference
from . import quirks
from .config import RegistryConfig


@dataclass(frozen=True)
class Endpoint:
    """Where to send a repository's requests."""

    host: str                  # host[:port] to connect to
    registry: str              # the registry the credentials are for (docker.io for Hub)
    scheme: str | None = None  # a mirror URL's scheme; None: decided by the transport
    mirror: bool = False

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}" if self.scheme else self.host


def registry_endpoint(domain: str) -> Endpoint:
    """The registry itself; for docker.io, the host that serves Docker Hub's API."""
    return Endpoint(quirks.api_host(domain), domain)


def pull_endpoints(ref: ImageReference, config: RegistryConfig) -> list[Endpoint]:
    """The endpoints to try, in order, to pull ``ref``."""
    endpoints = []
    if ref.domain == quirks.DOCKER_HUB_DOMAIN:
        for url in config.registry_mirrors:
            parts = urlsplit(url if "://" in url else f"https://{url}")
            endpoints.append(Endpoint(parts.netloc, parts.netloc, parts.scheme, mirror=True))
    endpoints.append(registry_endpoint(ref.domain))
    return endpoints
