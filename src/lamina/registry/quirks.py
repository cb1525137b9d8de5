"""What real registries do that the specs do not say, or say otherwise: all in one place.

Every rule here exists because a registry lamina talks to behaves so; the comment says which,
so that a rule can go when the registry stops needing it.
"""
from __future__ import annotations

import email.utils
import time
from urllib.parse import urlencode, urljoin, urlsplit

from ..image import mediatypes as mt

# Docker Hub: the name in references is docker.io, the API is served by another host, and
# `docker login` stores Hub credentials under the old v1 index URL, not under a host name.
DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
DOCKER_HUB_CREDENTIAL_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io",
                       "https://index.docker.io/v1/", "registry.hub.docker.com"}


def api_host(domain: str) -> str:
    """The host that serves the API of the registry named ``domain`` in references."""
    return DOCKER_HUB_HOST if domain == DOCKER_HUB_DOMAIN else domain


def is_docker_hub(server: str) -> bool:
    return server in _DOCKER_HUB_ALIASES


# Manifests: a registry serves what the client accepts. Without an Accept header Docker Hub
# converts to schema 1, and GHCR/ECR refuse indexes, so every type lamina reads is listed.
MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST,
                             mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])


def manifest_media_type(content_type: str | None) -> str | None:
    """The media type a Content-Type gives a manifest, or None: some registries serve OCI
    manifests (which need not carry their mediaType) as application/json or text/plain."""
    media_type = mt.strip_parameters(content_type or "")
    return media_type if mt.is_image_manifest(media_type) or mt.is_index(media_type) else None


# Registries accept manifests of at least 4 MiB (OCI distribution spec); lamina reads no more,
# so a hostile or broken server cannot make it load an unbounded body.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

# Tokens: Docker's token spec names the field `token`; OAuth2-style servers (and Docker Hub,
# which sends both) use `access_token`. `expires_in` defaults to 60 seconds when absent.
TOKEN_FIELDS = ("token", "access_token")
DEFAULT_TOKEN_LIFETIME = 60
# Renew a token this much before it expires, so a request does not start with a dead one.
TOKEN_EXPIRY_MARGIN = 10

# Retries: 429 and these 5xx are worth another attempt (load balancers in front of registries
# answer 502/503/504 during deploys); other 4xx are final.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Retry-After above this is reported, not waited for: a pull must not hang for an hour.
MAX_RETRY_AFTER = 60.0


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# Redirects: blob GETs are often redirected to object storage (S3, a CDN), which refuses (or
# would leak) the registry's Authorization header: it is only sent back to the same host.
MAX_REDIRECTS = 5


def resolve_location(base_url: str, location: str) -> str:
    """An upload Location, absolute or (distribution, Harbor) relative to the request URL."""
    return urljoin(base_url, location)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added; a Location may carry a query already (``_state=``)."""
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{urlencode(params)}"


# Uploads: one PUT with the whole blob is the fastest and works with distribution, Hub, GHCR,
# Quay, Harbor and ECR. Proxies in front of some registries cap a request body, so blobs
# bigger than this go in chunks (PATCH with Content-Range, then PUT ?digest=).
MONOLITHIC_LIMIT = 512 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
# A registry may ask for a minimum chunk size (OCI distribution spec 1.1).
CHUNK_MIN_HEADER = "OCI-Chunk-Min-Length"

# Mounts: 201 means mounted; 202 means the registry did not mount (blob unknown there, or
# cross-repository mounts not allowed, as on Docker Hub across namespaces without pull access)
# and opened an ordinary upload session instead, which lamina then uses.

# Docker-Content-Digest is optional for some registries (older Artifactory, some proxies):
# lamina computes the digest of the bytes itself and checks the header only when present.
DIGEST_HEADER = "Docker-Content-Digest"
