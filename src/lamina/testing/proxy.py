"""A small HTTP proxy on 127.0.0.1 that injects faults in front of a registry, for tests.

    proxy = FaultProxy("127.0.0.1:5000")          # the real registry behind it
    proxy.fail("drop", path=r"/blobs/sha256:", method="GET")    # once, the 1st such request
    proxy.fail("429", path=r"/manifests/", retry_after=1, times=2)
    pull(f"{proxy.host}/team/app:1")
    proxy.close()

Each request is forwarded as it comes (streamed, one kept-alive upstream connection per
client connection) unless a fault armed for it fires. A fault matches a method and a path
(a regular expression searched in the request target), fires from the ``nth`` matching
request on, ``times`` times (``ALWAYS``: for good). The kinds:

- ``drop``: the connection is closed in the middle of the body: of the response for a
  request without a body (half the bytes of a blob or manifest are sent, under the full
  ``Content-Length``), of the request otherwise (half an upload is read, then the
  connection closes without an answer);
- ``corrupt``: the response goes through with one byte (in the middle) flipped;
- ``500``: answers 500 with a distribution error body, without asking the registry;
- ``429``: answers 429 Too Many Requests with ``Retry-After: <retry_after>``.

``log`` lists every request seen as ``(method, path, status)``; status is the fault's name
for a fault, else what the registry answered. Only for tests: it listens on loopback only.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALWAYS = 1 << 30
KINDS = ("drop", "corrupt", "500", "429")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailers", "transfer-encoding",
                         "upgrade", "content-length"})
_BLOCK = 256 * 1024


@dataclass
class Fault:
    """A fault ``FaultProxy.fail`` armed: which requests it fires on, and how often it fired."""

    kind: str
    path: re.Pattern[str] | None
    method: str | None
    nth: int
    times: int
    retry_after: int
    seen: int = 0
    fired: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        with self.lock:
            self.seen += 1
            if self.seen >= self.nth and self.fired < self.times:
                self.fired += 1
                return True
        return False


class FaultProxy:
    def __init__(self, upstream: str, *, timeout: float = 30.0) -> None:
        self.upstream = upstream
        self.timeout = timeout
        self.log: list[tuple[str, str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def fail(self, kind: str, *, path: str | None = None, method: str | None = None,
             nth: int = 1, times: int = 1, retry_after: int = 1) -> Fault:
        """Arm a fault (module docstring); returns it, to read ``fired`` afterwards."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(KINDS)}")
        fault = Fault(kind, re.compile(path) if path else None, method, nth, times,
                      retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[str]:
        """The paths of the requests seen, of ``method``, matching ``path``."""
        with self._lock:
            return [p for m, p, _ in self.log
                    if (method is None or m == method) and (path is None or re.search(path, p))]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            faults = list(self._faults)
        for fault in faults:
            if fault.take(method, path):
                return fault
        return None

    def _note(self, method: str, path: str, status: str) -> None:
        with self._lock:
            self.log.append((method, path, status))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read proxy.log

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def _proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def _relay(self) -> None:
        proxy = self._proxy
        method, path = self.command, self.path
        fault = proxy._take(method, path)
        length = int(self.headers.get("Content-Length") or 0)
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        has_body = length > 0 or chunked
        if fault is not None:
            proxy._note(method, path, fault.kind)
        if fault is not None and fault.kind in ("500", "429"):
            self._read_body(length, chunked)
            self._answer(fault)
            return
        if fault is not None and fault.kind == "drop" and has_body:
            if length:
                self.rfile.read(max(1, length // 2))
            self._hang_up()
            return
        body = self._read_body(length, chunked) if chunked else None
        try:
            response = self._forward(method, path, body, length)
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            self.send_error(502, "the registry behind the proxy failed")
            return
        if fault is None:
            proxy._note(method, path, str(response.status))
        self._send_back(response, fault, method == "HEAD")

    def _forward(self, method: str, path: str, body: bytes | None,
                 length: int) -> http.client.HTTPResponse:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
            payload: object = body
        elif length:
            headers["Content-Length"] = str(length)
            payload = _Limited(self.rfile, length)
        else:
            payload = None
            if method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = "0"
        conn = getattr(self, "_upstream", None)
        if conn is None:
            conn = self._upstream = http.client.HTTPConnection(
                self._proxy.upstream, timeout=self._proxy.timeout, blocksize=_BLOCK)
        try:
            conn.request(method, path, body=payload, headers=headers)  # type: ignore[arg-type]
            return conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._upstream = None
            raise

    def _send_back(self, response: http.client.HTTPResponse, fault: Fault | None,
                   head: bool) -> None:
        upstream_chunked = response.getheader("Transfer-Encoding", "").lower() == "chunked"
        if upstream_chunked and not head:
            data = response.read()
            size: int | None = len(data)
        else:
            data = None
            declared = response.getheader("Content-Length")
            size = int(declared) if declared is not None else None
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if size is not None:
            self.send_header("Content-Length", str(size))
        else:
            self.close_connection = True  # length unknown: the end of the body is the close
        self.end_headers()
        if head:
            response.read()
            return
        stream = _Buffer(data) if data is not None else response
        cut = (size // 2) if (fault is not None and fault.kind == "drop" and size) else None
        flip = (size // 2) if (fault is not None and fault.kind == "corrupt" and size) else None
        sent = 0
        while True:
            want = _BLOCK if cut is None else min(_BLOCK, cut - sent)
            block = stream.read(want) if want > 0 else b""
            if not block:
                break
            if flip is not None and sent <= flip < sent + len(block):
                mutable = bytearray(block)
                mutable[flip - sent] ^= 0xFF
                block = bytes(mutable)
            self.wfile.write(block)
            sent += len(block)
        if cut is not None:
            self.wfile.flush()
            conn = getattr(self, "_upstream", None)
            if conn is not None:
                conn.close()  # the rest of the upstream body is not read
                self._upstream = None
            self._hang_up()

    def _answer(self, fault: Fault) -> None:
        status = int(fault.kind)
        code = "TOOMANYREQUESTS" if status == 429 else "UNKNOWN"
        body = json.dumps({"errors": [{"code": code,
                                       "message": f"injected {fault.kind} fault"}]}).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", str(fault.retry_after))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self, length: int, chunked: bool) -> bytes:
        if not chunked:
            return self.rfile.read(length) if length else b""
        parts = []
        while True:
            line = self.rfile.readline()
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self) -> None:
        conn = getattr(self, "_upstream", None)
        if conn is not None:
            conn.close()
        try:
            super().finish()
        except OSError:
            pass


class _Limited:
    """At most ``length`` bytes of ``stream``: a request body forwarded as it arrives."""

    def __init__(self, stream, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._stream.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


class _Buffer:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, size: int) -> bytes:
        block, self._data = self._data[:size], self._data[size:]
        return bytes(block)
