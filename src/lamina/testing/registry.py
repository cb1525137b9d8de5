"""An in-process OCI registry for tests: the distribution API on 127.0.0.1, in memory.

    with FakeRegistry(auth="bearer", users={"ann": "secret"}) as registry:
        lamina.api.registry.push(f"{registry.host}/team/app:1", store=store)
        assert ("PUT", "/v2/team/app/manifests/1") in registry.requests

It serves what lamina's client uses (ping, manifests, tags with pagination, blobs, uploads
monolithic and chunked, cross-repository mounts) and can behave badly on purpose:

- ``auth``: ``"none"``, ``"basic"`` (``users``), or ``"bearer"``: Docker Hub's flow, with a
  token endpoint at ``/token`` that grants pull to anyone and push to a known user (by basic
  credentials on a GET, or by an identity token of ``identity_tokens`` on an OAuth2 POST),
  and ``revoke_tokens()`` to make every token expire now;
- ``fail(method, path_part, status=500 | 429, times=n, retry_after=...)``: answer that status
  to the next ``n`` matching requests; for blob downloads, ``drop=True`` cuts the download
  halfway and ``corrupt=True`` serves it with its first byte changed;
- ``redirect_blobs=True``: blob GETs answer 307 to ``localhost:<port>/_storage/...`` (another
  host name), like a registry that serves blobs from object storage.

Every request is logged in ``requests`` as (method, path without query), and the
Authorization header that reached the storage redirect target in ``storage_authorizations``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[a-f0-9]*)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_SERVICE = "lamina-fake-registry"


@dataclass
class _Fault:
    """A failure ``fail`` armed: the answer to matching requests, for ``times`` more of them."""

    method: str
    path_part: str
    status: int
    times: int
    retry_after: str | None
    drop: bool
    corrupt: bool


class FakeRegistry:
    def __init__(self, *, auth: str = "none", users: dict[str, str] | None = None,
                 identity_tokens: dict[str, str] | None = None, token_lifetime: int = 300,
                 redirect_blobs: bool = False, page_size: int | None = None) -> None:
        if auth not in ("none", "basic", "bearer"):
            raise ValueError(f"auth must be none, basic or bearer, not {auth!r}")
        self.auth = auth
        self.users = dict(users or {})
        self.identity_tokens = dict(identity_tokens or {})  # refresh token -> user
        self.token_lifetime = token_lifetime
        self.redirect_blobs = redirect_blobs
        self.page_size = page_size
        self.requests: list[tuple[str, str]] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.storage_authorizations: list[str | None] = []
        self.blobs: dict[str, bytes] = {}
        self.repo_blobs: dict[str, set[str]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}  # repo -> ref -> raw
        self._uploads: dict[str, tuple[str, bytearray]] = {}
        self._tokens: dict[str, tuple[set[str], float]] = {}  # token -> (grants, expiry)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FakeRegistry":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeRegistry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, method: str, path_part: str, *, status: int = 500, times: int = 1,
             retry_after: str | None = None, drop: bool = False,
             corrupt: bool = False) -> None:
        with self._lock:
            self._faults.append(_Fault(method, path_part, status, times, retry_after, drop,
                                       corrupt))

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def count(self, method: str, path_part: str = "") -> int:
        """How many ``method`` requests had ``path_part`` in their path."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    # -- used by the handler ---------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method == method and fault.path_part in path:
                    fault.times -= 1
                    return fault
        return None

    def _issue_token(self, scopes: list[str], user: str | None) -> str:
        grants = set()
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            for action in actions.split(","):
                if kind == "repository" and (action == "pull" or user is not None):
                    grants.add(f"{name}:{action}")
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = (grants, time.monotonic() + self.token_lifetime)
        return token

    def _token_allows(self, token: str, need: str | None) -> bool:
        with self._lock:
            grants, expiry = self._tokens.get(token, (set(), 0.0))
        return time.monotonic() < expiry and (need is None or need in grants)

    def _user(self, header: str | None) -> str | None | bool:
        """The user of a Basic header; None without one; False for wrong credentials."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user if self.users.get(user) == password else False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that close kept-alive connections are normal; say nothing about them."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept-alive connections, as real registries do

        def log_message(self, *args: Any) -> None:  # quiet: tests read `requests` instead
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            with registry._lock:
                registry.requests.append((method, path))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path == "/token":
                return self._token(parse_qs(body.decode()) if method == "POST" else query)
            if path.startswith("/_storage/"):
                registry.storage_authorizations.append(self.headers.get("Authorization"))
                return self._blob_bytes(registry.blobs.get(path[len("/_storage/"):]), None)
            fault = registry._take_fault(method, path)
            if fault is not None and not (fault.drop or fault.corrupt):
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self._error(fault.status, "UNAVAILABLE" if fault.status >= 500
                                   else "TOOMANYREQUESTS", "injected fault", headers)
            if not self._authorized(method, path):
                return
            if path == "/v2/":
                return self._json(200, {})
            for pattern, route in ((_MANIFEST, self._manifest), (_BLOB, self._blob),
                                   (_UPLOADS, self._upload), (_TAGS, self._tags)):
                match = pattern.match(path)
                if match:
                    return route(method, match, query, body, fault)
            self._error(404, "NOT_FOUND", "no such route")

        # -- auth --------------------------------------------------------------------------

        def _authorized(self, method: str, path: str) -> bool:
            if registry.auth == "none":
                return True
            header = self.headers.get("Authorization")
            if registry.auth == "basic":
                if registry._user(header):
                    return True
                self._error(401, "UNAUTHORIZED", "authentication required",
                            {"WWW-Authenticate": 'Basic realm="fake"'})
                return False
            need = _scope_needed(method, path)
            if header and header.startswith("Bearer ") and registry._token_allows(
                    header[7:], need):
                return True
            challenge = (f'Bearer realm="http://{registry.host}/token",service="{_SERVICE}"'
                         + (f',scope="repository:{need}"' if need else ""))
            self._error(401, "UNAUTHORIZED", "authentication required",
                        {"WWW-Authenticate": challenge})
            return False

        def _token(self, query: dict[str, list[str]]) -> None:
            with registry._lock:
                registry.token_requests.append(query)
            if query.get("grant_type") == ["refresh_token"]:  # OAuth2: scopes space-separated
                user = registry.identity_tokens.get(query.get("refresh_token", [""])[0], False)
                scopes = " ".join(query.get("scope", [])).split()
            else:
                user = registry._user(self.headers.get("Authorization"))
                scopes = query.get("scope", [])
            if user is False or query.get("service") != [_SERVICE]:
                return self._error(401, "UNAUTHORIZED", "bad credentials")
            token = registry._issue_token(scopes, user or None)
            self._json(200, {"token": token, "access_token": token,
                             "expires_in": registry.token_lifetime})

        # -- routes ------------------------------------------------------------------------

        def _manifest(self, method: str, match: re.Match[str], query: Any, body: bytes,
                      fault: _Fault | None) -> None:
            name, ref = match.group("name"), match.group("ref")
            repo = registry.manifests.setdefault(name, {})
            if method in ("GET", "HEAD"):
                found = repo.get(ref)
                if found is None:
                    return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                raw, media_type = found
                return self._send(200, raw if method == "GET" else b"",
                                  {"Content-Type": media_type,
                                   "Docker-Content-Digest": _digest(raw)},
                                  length=len(raw))
            if method != "PUT":
                return self._error(405, "UNSUPPORTED", "method not allowed")
            media_type = self.headers.get("Content-Type", "")
            missing = [d for d in _references(body) if d not in registry.repo_blobs.get(name, ())
                       and not any(d == _digest(raw) for raw, _ in repo.values())]
            if missing:
                return self._error(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown: {missing[0]}")
            digest = _digest(body)
            repo[ref] = repo[digest] = (body, media_type)
            self._send(201, b"", {"Location": f"/v2/{name}/manifests/{digest}",
                                  "Docker-Content-Digest": digest})

        def _blob(self, method: str, match: re.Match[str], query: Any, body: bytes,
                  fault: _Fault | None) -> None:
            name, digest = match.group("name"), match.group("digest")
            if digest not in registry.repo_blobs.get(name, ()):
                return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            if method == "HEAD":
                return self._send(200, b"", {"Docker-Content-Digest": digest},
                                  length=len(registry.blobs[digest]))
            if registry.redirect_blobs:
                return self._send(307, b"", {
                    "Location": f"http://localhost:{registry.port}/_storage/{digest}"})
            self._blob_bytes(registry.blobs[digest], fault)

        def _blob_bytes(self, data: bytes | None, fault: _Fault | None) -> None:
            if data is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            if fault is not None and fault.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            if fault is not None and fault.drop:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(200, data, {"Content-Type": "application/octet-stream",
                                   "Docker-Content-Digest": _digest(data)})

        def _upload(self, method: str, match: re.Match[str], query: dict[str, list[str]],
                    body: bytes, fault: _Fault | None) -> None:
            name, upload_id = match.group("name"), match.group("id")
            if method == "POST" and not upload_id:
                mount, source = query.get("mount", [None])[0], query.get("from", [None])[0]
                if mount and source and mount in registry.repo_blobs.get(source, ()) \
                        and self._may_pull(source):
                    registry.repo_blobs.setdefault(name, set()).add(mount)
                    return self._send(201, b"", {"Location": f"/v2/{name}/blobs/{mount}",
                                                 "Docker-Content-Digest": mount})
                upload_id = secrets.token_hex(8)
                with registry._lock:
                    registry._uploads[upload_id] = (name, bytearray())
                return self._send(202, b"", self._session_headers(name, upload_id, 0))
            session = registry._uploads.get(upload_id)
            if session is None or session[0] != name:
                return self._error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
            data = session[1]
            if method == "PATCH":
                content_range = self.headers.get("Content-Range")
                if content_range and not content_range.startswith(f"{len(data)}-"):
                    return self._error(416, "BLOB_UPLOAD_INVALID", "range out of order")
                data += body
                return self._send(202, b"", self._session_headers(name, upload_id, len(data)))
            if method == "PUT":
                data += body
                digest = query.get("digest", [""])[0]
                if _digest(bytes(data)) != digest:
                    return self._error(400, "DIGEST_INVALID", "digest does not match")
                with registry._lock:
                    registry.blobs[digest] = bytes(data)
                    registry.repo_blobs.setdefault(name, set()).add(digest)
                    del registry._uploads[upload_id]
                return self._send(201, b"", {"Location": f"/v2/{name}/blobs/{digest}",
                                             "Docker-Content-Digest": digest})
            self._error(405, "UNSUPPORTED", "method not allowed")

        def _tags(self, method: str, match: re.Match[str], query: dict[str, list[str]],
                  body: bytes, fault: _Fault | None) -> None:
            name = match.group("name")
            tags = sorted(r for r in registry.manifests.get(name, {}) if ":" not in r)
            if not tags:
                return self._error(404, "NAME_UNKNOWN", "repository name not known")
            last = query.get("last", [""])[0]
            tags = [t for t in tags if t > last]
            size = registry.page_size or len(tags)
            page, more = tags[:size], len(tags) > size
            headers = {"Link": f'</v2/{name}/tags/list?n={size}&last={page[-1]}>; rel="next"'}
            self._json(200, {"name": name, "tags": page}, headers if more else {})

        # -- helpers -----------------------------------------------------------------------

        def _may_pull(self, repository: str) -> bool:
            header = self.headers.get("Authorization") or ""
            return registry.auth != "bearer" or registry._token_allows(
                header[7:], f"{repository}:pull")

        def _session_headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
            return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}",
                    "Range": f"0-{max(0, size - 1)}", "Docker-Upload-UUID": upload_id}

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(),
                       {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> None:
            self._json(status, {"errors": [{"code": code, "message": message}]}, headers)

        def _send(self, status: int, data: bytes, headers: dict[str, str],
                  length: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _scope_needed(method: str, path: str) -> str | None:
    """``name:pull`` or ``name:push`` for a repository path; None for /v2/."""
    for pattern in (_MANIFEST, _BLOB, _UPLOADS, _TAGS):
        match = pattern.match(path)
        if match:
            action = "pull" if method in ("GET", "HEAD") else "push"
            return f"{match.group('name')}:{action}"
    return None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _references(raw: bytes) -> list[str]:
    """The blobs and manifests a manifest or index needs to be there already."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return []
    descriptors = [obj.get("config") or {}, *(obj.get("layers") or []),
                   *(obj.get("manifests") or [])]
    return [d["digest"] for d in descriptors if isinstance(d, dict) and "digest" in d]
