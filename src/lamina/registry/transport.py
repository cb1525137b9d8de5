"""HTTP(S) for registries: kept-alive connections, TLS as configured, retries, redirects.

- TLS always, verified against the system store plus ``<certs.d>/<host>/*.crt``, with the
  client certificate pairs ``*.cert``/``*.key`` found there. An insecure registry (config.py)
  gets TLS without verification, or plain HTTP when it speaks no TLS (probed once per host).
- Connections are pooled per (scheme, host) and shared by threads: a connection goes back to
  the pool once its response has been read to the end.
- Bounded retries with exponential backoff for connection failures, 429 (its Retry-After is
  honoured) and 5xx (quirks.RETRY_STATUSES), when the request can be sent again: a body is
  bytes or a function that opens it anew.
- Redirects are followed; the Authorization header goes only to the host it was meant for.

Statuses other than those are returned to the caller (client.py), which knows what they mean.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from typing import Any, BinaryIO, Callable, Mapping, TypeVar
from urllib.parse import urljoin, urlsplit

from . import quirks
from .config import RegistryConfig, split_host
from .errors import RegistryError, TransferError, UnavailableError

T = TypeVar("T")

Body = bytes | Callable[[], BinaryIO] | None
IO_BLOCK = 1024 * 1024  # send and receive in 1 MiB blocks (http.client's default is 8 KiB)
ATTEMPTS = 4            # per request; also what pull and push allow a blob
BACKOFF = 0.5           # seconds before the 2nd attempt, doubling after each
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class TLSError(RegistryError):
    """A registry whose TLS certificate is not trusted, or whose TLS handshake fails."""


class Response:
    """A response whose body can be streamed; its connection returns to the pool at the end."""

    def __init__(self, transport: "Transport", key: tuple[str, str],
                 conn: http.client.HTTPConnection, raw: http.client.HTTPResponse,
                 url: str) -> None:
        self._transport = transport
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._raw = raw
        self.status = raw.status
        self.headers = raw.headers
        self.url = url
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        except (OSError, http.client.HTTPException) as err:
            self._discard()
            raise TransferError(f"the download from {urlsplit(self.url).netloc} was cut "
                                f"short after {self.received} bytes ({_reason(err)})",
                                hint="try again") from None
        left = self._raw.length  # what Content-Length still promises (None: unknown)
        if not data and size != 0 and left:
            # http.client returns b"" at an early end of the body: say what happened.
            self._discard()
            raise TransferError(f"the download from {urlsplit(self.url).netloc} was cut "
                                f"short after {self.received} bytes (connection closed with "
                                f"{left} bytes still to come)", hint="try again")
        self.received += len(data)
        if self._raw.isclosed():
            self._release()
        return data

    def close(self) -> None:
        if self._raw.isclosed():
            self._release()
        else:
            self._discard()  # unread bytes: the connection cannot carry another request

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _release(self) -> None:
        if self._conn is not None:
            if self._raw.will_close:
                self._conn.close()
            else:
                self._transport._put(self._key, self._conn)
            self._conn = None

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Transport:
    """HTTP for every registry of one command; safe to share between threads."""

    def __init__(self, config: RegistryConfig | None = None, *, attempts: int | None = None,
                 backoff: float | None = None, timeout: float = 60.0) -> None:
        self.config = config or RegistryConfig()
        self.attempts = attempts or ATTEMPTS
        self.backoff = BACKOFF if backoff is None else backoff
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._schemes: dict[str, str] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}

    def base_url(self, host: str, scheme: str | None = None) -> str:
        """``https://host``, or ``http://host`` for an insecure registry without TLS."""
        return f"{scheme or self._scheme(host)}://{host}"

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                body: Body = None, authorization: str | None = None,
                retry: bool = True) -> Response:
        """Send, with retries when ``retry`` and the body can be sent again."""
        last = self.attempts - 1 if retry else 0
        for attempt in range(last + 1):
            try:
                response = self._follow(method, url, dict(headers or {}), body, authorization)
            except (OSError, http.client.HTTPException) as err:
                if isinstance(err, ssl.SSLCertVerificationError):
                    raise self._tls_error(urlsplit(url).netloc, err) from None
                if attempt == last:
                    raise self._unreachable(urlsplit(url).netloc, err) from None
                time.sleep(self.backoff * 2 ** attempt)
                continue
            if response.status not in quirks.RETRY_STATUSES or attempt == last:
                return response
            wait = quirks.retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > quirks.MAX_RETRY_AFTER:
                return response  # the caller reports it: waiting that long is not a retry
            response.close()
            time.sleep(wait if wait is not None else self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def retry(self, attempt: Callable[[], T], retryable: tuple[type[BaseException], ...],
              give_up: Callable[[Any], BaseException] | None = None) -> T:
        """``attempt()``, called again after a backoff while it raises one of ``retryable``,
        up to ``attempts`` times; the last error is raised (as ``give_up(err)`` when given).
        For work above one request: a download checked against its digest, say."""
        for n in range(self.attempts):
            try:
                return attempt()
            except retryable as err:
                if n == self.attempts - 1:
                    if give_up is None:
                        raise
                    raise give_up(err) from None
                time.sleep(self.backoff * 2 ** n)
        raise AssertionError("unreachable")

    def _follow(self, method: str, url: str, headers: dict[str, str], body: Body,
                authorization: str | None) -> Response:
        origin = urlsplit(url).netloc
        for _ in range(quirks.MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorization and urlsplit(url).netloc == origin:
                sent["Authorization"] = authorization
            response = self._send(method, url, sent, body)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return response
            response.close()
            url = urljoin(url, location)
        raise UnavailableError(f"{origin} redirected more than {quirks.MAX_REDIRECTS} times",
                               hint="the registry or a proxy in front of it is misconfigured")

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn, reused = self._get(key)
        try:
            raw = _exchange(conn, method, target, headers, body)
        except ConnectionError:
            conn.close()
            if not reused:
                raise
            # A kept-alive connection the server has closed meanwhile: once more, on a new one.
            conn = self._new(key)
            try:
                raw = _exchange(conn, method, target, headers, body)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if method == "HEAD":
            raw.read()  # no body: the connection is free at once
        return Response(self, key, conn, raw, url)

    def _get(self, key: tuple[str, str]) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._new(key), False

    def _put(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def _new(self, key: tuple[str, str]) -> http.client.HTTPConnection:
        scheme, host = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, timeout=self.timeout, blocksize=IO_BLOCK,
                                               context=self._context(host))
        return http.client.HTTPConnection(host, timeout=self.timeout, blocksize=IO_BLOCK)

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()

    def _scheme(self, host: str) -> str:
        with self._lock:
            known = self._schemes.get(host)
        if known:
            return known
        scheme = "https"
        if self.config.is_insecure(host) and not self._speaks_tls(host):
            scheme = "http"
        with self._lock:
            self._schemes[host] = scheme
        return scheme

    def _speaks_tls(self, host: str) -> bool:
        """Whether an insecure registry has TLS: a handshake tells (Docker tries https first)."""
        name, port = split_host(host)
        try:
            with socket.create_connection((name, port or 443), timeout=self.timeout) as sock:
                with self._context(host).wrap_socket(sock, server_hostname=name):
                    return True
        except ssl.SSLError:
            return False
        except OSError as err:
            if port is None:
                return False  # no TLS port: plain HTTP on port 80, as Docker falls back
            raise self._unreachable(host, err) from None

    def _context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(host)
            if context is None:
                context = self._contexts[host] = self._make_context(host)
            return context

    def _make_context(self, host: str) -> ssl.SSLContext:
        insecure = self.config.is_insecure(host)
        # An insecure registry's certificate is not checked: the system's CAs (some 20 ms
        # to load) are not needed for it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if insecure \
            else ssl.create_default_context()
        directory = self.config.host_certs(host)
        if directory.is_dir():
            for ca in sorted(directory.glob("*.crt")):
                context.load_verify_locations(cafile=str(ca))
            for cert in sorted(directory.glob("*.cert")):
                context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _unreachable(self, host: str, err: BaseException) -> RegistryError:
        if isinstance(err, ssl.SSLError):
            return TLSError(f"TLS with {host} failed: {_reason(err)}",
                            hint="if the registry wants a client certificate, put it in "
                                 f"{self.config.host_certs(host)}/client.cert and client.key")
        return UnavailableError(f"cannot reach {host}: {_reason(err)}",
                                hint="check the registry's address and that it is up")

    def _tls_error(self, host: str, err: ssl.SSLCertVerificationError) -> TLSError:
        return TLSError(
            f"the TLS certificate of {host} is not trusted: {err.verify_message}",
            hint=f"put the CA that signed it in {self.config.host_certs(host)}/ca.crt, or "
                 "name the registry in insecure-registries of lamina's config.json")


def _exchange(conn: http.client.HTTPConnection, method: str, target: str,
              headers: dict[str, str], body: Body) -> http.client.HTTPResponse:
    stream = body() if callable(body) else body
    try:
        conn.request(method, target, body=stream, headers=headers)
        return conn.getresponse()
    finally:
        if callable(body):
            stream.close()  # type: ignore[union-attr]


def _reason(err: BaseException) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed with {err.expected} bytes still to come"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timed out"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
