"""The OCI distribution API: a registry endpoint, and the operations on one repository.

    GET/HEAD /v2/                              ping (login)
    GET      /v2/<name>/manifests/<ref>        a manifest or index, raw
    PUT      /v2/<name>/manifests/<ref>        push one, raw, with its media type
    GET      /v2/<name>/tags/list              tags (paginated with Link: <...>; rel="next")
    HEAD/GET /v2/<name>/blobs/<digest>         does it exist / its bytes
    POST     /v2/<name>/blobs/uploads/         start an upload (?mount=&from= to mount)
    PATCH    <location>                        a chunk (Content-Range: start-end)
    PUT      <location>?digest=<digest>        finish (with the whole blob: monolithic)

Every request goes through ``Registry.request``: it adds auth (auth.py), answers a 401 once
with new credentials or a new token, and turns a failure into a ``RegistryError`` that names
what was asked for (``manifest 127.0.0.1:5000/app:1``).
"""
from __future__ import annotations

import json
import re
from typing import BinaryIO, Callable, Mapping

from ..image.digest import sha256_digest
from . import quirks
from .auth import Authenticator
from .config import RegistryConfig
from .credentials import Credential, CredentialStore
from .errors import (RateLimitedError, RegistryError, RemoteNotFoundError, TransferError,
                     UnauthorizedError, UnavailableError)
from .mirrors import Endpoint
from .transport import Body, Response, Transport

Opener = Callable[[], BinaryIO]           # opens a blob's bytes from the start, every call
Progress = Callable[[int], None]          # told how many more bytes went
_ERROR_BODY_LIMIT = 64 * 1024
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class Session:
    """What one command needs to talk to registries: the settings, the credentials, one
    transport (its connections and TLS contexts), and one ``Registry`` per endpoint (its
    auth state and cached tokens)."""

    def __init__(self, config: RegistryConfig | None = None,
                 credentials: CredentialStore | None = None,
                 transport: Transport | None = None) -> None:
        self.config = config or RegistryConfig()
        self.credentials = credentials or CredentialStore()
        self.transport = transport or Transport(self.config)
        self._registries: dict[Endpoint, Registry] = {}

    def registry(self, endpoint: Endpoint) -> "Registry":
        if endpoint not in self._registries:
            self._registries[endpoint] = Registry(
                endpoint, self.transport, lambda: self.credentials.get(endpoint.registry))
        return self._registries[endpoint]

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Registry:
    """One registry endpoint for a command: where it is and how to authenticate there."""

    def __init__(self, endpoint: Endpoint, transport: Transport,
                 lookup: Callable[[], Credential | None] = lambda: None) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.auth = Authenticator(endpoint.registry, transport, lookup)
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._base_url = self.transport.base_url(self.endpoint.host, self.endpoint.scheme)
        return self._base_url

    def repository(self, name: str, *, push: bool = False) -> "Repository":
        return Repository(self, name, push=push)

    def ping(self) -> None:
        """``GET /v2/``, authenticated if the registry asks: checks credentials (login)."""
        self.request("GET", "/v2/", scopes=(), what=f"registry {self.endpoint.registry}").close()

    def request(self, method: str, path: str, *, scopes: tuple[str, ...], what: str,
                headers: Mapping[str, str] | None = None, body: Body = None,
                ok: tuple[int, ...] = (200,), retry: bool = True) -> Response:
        """Send with auth; a status outside ``ok`` raises an error about ``what``."""
        url = path if "://" in path else self.base_url + path
        sent = self.auth.authorization(scopes)
        response = self.transport.request(method, url, headers=headers, body=body,
                                          authorization=sent, retry=retry)
        if response.status == 401:
            challenges = response.headers.get_all("WWW-Authenticate") or []
            if self.auth.challenged(challenges, scopes, sent):
                response.close()
                response = self.transport.request(
                    method, url, headers=headers, body=body,
                    authorization=self.auth.authorization(scopes), retry=retry)
        if response.status not in ok:
            raise self._error(response, what)
        return response

    def _error(self, response: Response, what: str) -> RegistryError:
        with response:
            code, message = _error_of(response.read(_ERROR_BODY_LIMIT))
        status, host = response.status, self.endpoint.host
        said = f" ({message or code})" if message or code else ""
        if status == 401 or code == "UNAUTHORIZED":
            refused = self.auth.credential is not None
            return UnauthorizedError(
                f"{what}: " + ("the registry refused the credentials" if refused
                               else "authentication required"),
                hint=f"log in with: lamina login {self.endpoint.registry}")
        if status == 403 or code == "DENIED":
            return UnauthorizedError(f"{what}: access denied{said}",
                                     hint="check the name, and that your account may use it")
        if status == 404:
            return RemoteNotFoundError(f"{what}: not found{said}",
                                       hint="check the name and the tag or digest")
        if status == 429:
            wait = quirks.retry_after(response.headers.get("Retry-After"))
            return RateLimitedError(
                f"{what}: {host} refuses more requests for now (429 Too Many Requests)"
                + (f"; it asks to retry after {wait:.0f} s" if wait else ""),
                hint="wait and try again; registries give logged-in users higher limits")
        if status >= 500:
            return UnavailableError(f"{what}: {host} failed with {status}{said}",
                                    hint="the registry has a problem: try again later")
        return RegistryError(f"{what}: {host} answered {status}{said}")


class Repository:
    """One repository of a registry; pull scope, or pull and push scope when ``push``."""

    def __init__(self, registry: Registry, name: str, *, push: bool = False) -> None:
        self.registry = registry
        self.name = name
        self.scopes = (f"repository:{name}:{'pull,push' if push else 'pull'}",)

    def __str__(self) -> str:
        return f"{self.registry.endpoint.registry}/{self.name}"

    def _request(self, method: str, path: str, what: str, **kwargs) -> Response:
        kwargs.setdefault("scopes", self.scopes)
        return self.registry.request(method, path, what=what, **kwargs)

    def get_manifest(self, reference: str) -> tuple[bytes, str | None]:
        """The raw manifest or index at a tag or digest, and its media type if the registry
        said (quirks.manifest_media_type); a digest is checked against the bytes. A download
        cut short or damaged is tried again, a few times."""
        return self.registry.transport.retry(lambda: self._get_manifest(reference),
                                             (TransferError,))

    def _get_manifest(self, reference: str) -> tuple[bytes, str | None]:
        what = f"manifest {self}{'@' if ':' in reference else ':'}{reference}"
        with self._request("GET", f"/v2/{self.name}/manifests/{reference}", what,
                           headers={"Accept": quirks.MANIFEST_ACCEPT}) as response:
            raw = response.read(quirks.MAX_MANIFEST_SIZE + 1)
            media_type = quirks.manifest_media_type(response.headers.get("Content-Type"))
            claimed = response.headers.get(quirks.DIGEST_HEADER)
        if len(raw) > quirks.MAX_MANIFEST_SIZE:
            raise RegistryError(f"{what} is bigger than {quirks.MAX_MANIFEST_SIZE} bytes",
                                hint="that is no image manifest lamina can use")
        digest = sha256_digest(raw)
        expected = reference if reference.startswith("sha256:") else claimed
        if expected and expected != digest:
            raise TransferError(f"{what} has digest {digest}, not {expected}",
                                hint="the registry or a proxy altered it: try again")
        return raw, media_type

    def tags(self) -> list[str]:
        """Every tag, page after page."""
        tags: list[str] = []
        path: str | None = f"/v2/{self.name}/tags/list?n=1000"
        while path:
            with self._request("GET", path, f"tags of {self}") as response:
                body = response.read(quirks.MAX_MANIFEST_SIZE)
                link = response.headers.get("Link")
            try:
                tags.extend(json.loads(body).get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"tags of {self}: the registry answered no tag list") \
                    from None
            match = _NEXT_LINK.search(link or "")
            path = quirks.resolve_location(response.url, match.group(1)) if match else None
        return tags

    def has_blob(self, digest: str) -> bool:
        with self._request("HEAD", f"/v2/{self.name}/blobs/{digest}", f"blob {digest}",
                           ok=(200, 404)) as response:
            return response.status == 200

    def open_blob(self, digest: str) -> Response:
        return self._request("GET", f"/v2/{self.name}/blobs/{digest}",
                             f"blob {digest} of {self}")

    def mount(self, digest: str, source: str) -> str | None:
        """Mount a blob from repository ``source`` of the same registry; None when mounted,
        else the URL of the upload session the registry opened instead (quirks.py)."""
        path = quirks.with_query(f"/v2/{self.name}/blobs/uploads/", mount=digest,
                                 **{"from": source})
        with self._request("POST", path, f"mount of {digest} into {self}", ok=(201, 202),
                           scopes=(*self.scopes, f"repository:{source}:pull")) as response:
            if response.status == 201:
                return None
            return self._location(response)

    def start_upload(self) -> tuple[str, int]:
        """A new upload session: its URL, and the smallest chunk the registry takes."""
        with self._request("POST", f"/v2/{self.name}/blobs/uploads/", f"upload to {self}",
                           ok=(202,)) as response:
            minimum = response.headers.get(quirks.CHUNK_MIN_HEADER, "0")
            return self._location(response), int(minimum) if minimum.isdigit() else 0

    def upload(self, url: str, open_blob: Opener, size: int, digest: str, *,
               chunk_size: int | None = None, progress: Progress = lambda n: None) -> None:
        """Send a blob into an upload session: one PUT, or PATCH chunks of ``chunk_size``
        then a PUT. No retry here: a failed session is dropped and the caller starts anew."""
        what = f"upload of {digest} to {self}"
        octets = {"Content-Type": "application/octet-stream"}
        if chunk_size is None:
            self._request("PUT", quirks.with_query(url, digest=digest), what, ok=(201,),
                          headers={**octets, "Content-Length": str(size)}, retry=False,
                          body=lambda: _Slice(open_blob, 0, size, progress)).close()
            return
        for start in range(0, size, chunk_size):
            length = min(chunk_size, size - start)
            with self._request(
                    "PATCH", url, what, ok=(202,), retry=False,
                    headers={**octets, "Content-Length": str(length),
                             "Content-Range": f"{start}-{start + length - 1}"},
                    body=lambda s=start, n=length: _Slice(open_blob, s, n, progress)) as response:
                url = self._location(response)
        self._request("PUT", quirks.with_query(url, digest=digest), what, ok=(201,),
                      headers={**octets, "Content-Length": "0"}, body=b"", retry=False).close()

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> str:
        """Push a manifest or index, raw; return its digest."""
        what = f"manifest {self}:{reference}"
        with self._request("PUT", f"/v2/{self.name}/manifests/{reference}", what, ok=(201,),
                           headers={"Content-Type": media_type}, body=raw) as response:
            claimed = response.headers.get(quirks.DIGEST_HEADER)
        digest = sha256_digest(raw)
        if claimed and claimed != digest:
            raise RegistryError(f"{what}: the registry stored it as {claimed}, not {digest}",
                                hint="the registry altered the manifest")
        return digest

    def _location(self, response: Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self}: the registry opened an upload without a Location",
                                hint="the registry does not follow the distribution spec")
        return quirks.resolve_location(response.url, location)


class _Slice:
    """``length`` bytes of a blob from ``start``, counted to ``progress`` as they are read."""

    def __init__(self, open_blob: Opener, start: int, length: int, progress: Progress) -> None:
        self._stream = open_blob()
        self._left = length
        self._progress = progress
        if start:
            self._stream.seek(start)

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._stream.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        self._progress(len(data))
        return data

    def close(self) -> None:
        self._stream.close()


def _error_of(body: bytes) -> tuple[str, str]:
    """The first (code, message) of a distribution error body; empty strings if none."""
    try:
        first = json.loads(body)["errors"][0]
        return str(first.get("code") or ""), str(first.get("message") or "")[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", ""

