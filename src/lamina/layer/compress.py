"""Layer blobs: streaming gzip/zstd (or none), with both digests computed as bytes pass.

A layer has two identities: its diff ID, the sha256 of the uncompressed tar (in the image
config), and its blob digest, the sha256 of the bytes stored and sent (in the manifest).
``LayerBlobWriter`` computes both in one pass while the tar is written; ``DigestReader`` and
``open_decompressed`` do the same on the way back. Memory stays flat whatever the layer size.

gzip output is deterministic for a given zlib: the header has mtime 0 and no file name
(zlib's own gzip wrapper), so a reproducible tar gives a reproducible blob.
"""
from __future__ import annotations

import queue
import threading
import zlib
from dataclasses import dataclass

from ..image.digest import Sha256

try:  # ISA-L inflates the same deflate streams 1.5-3x faster than zlib; zlib if it is absent
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency, but optional here
    _inflate = zlib  # type: ignore[assignment]

__all__ = ["BlobInfo", "DigestReader", "LayerBlobWriter",
           "detect_compression", "open_decompressed"]

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO, Literal
    Compression = Literal["gzip", "zstd"] | None  # None: the tar as is

GZIP_MAGIC = b"\x1f\x8b\x08"        # ID1 ID2, deflate
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"    # zstd frame magic, little-endian 0xFD2FB528

# zlib level 6 is the gzip default and what Docker uses. Compressing stays with zlib: isal is
# several times faster but its output is not byte-identical (reading uses isal: same result).
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
# gzip reading: input fed to zlib in chunks this small keeps its output in the CPU cache
# (several times faster than 1 MB chunks); the output chunks are bounded all the same.
_GZIP_WBITS = 31  # a gzip wrapper, checked by zlib
_INFLATE_IN = 64 * 1024
_INFLATE_OUT = 1024 * 1024
# Chunks in flight between the tar writer and the compressing thread: memory stays bounded.
_QUEUE_DEPTH = 8


def detect_compression(first_bytes: bytes) -> Compression:
    """"gzip", "zstd" or None (taken as an uncompressed tar), from a blob's first bytes."""
    if first_bytes.startswith(GZIP_MAGIC):
        return "gzip"
    if first_bytes.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


@dataclass(frozen=True)
class BlobInfo:
    """A finished layer blob: what the image config and the manifest record."""

    compression: Compression
    diff_id: str    # sha256:<hex> of the uncompressed tar
    diff_size: int  # length of the uncompressed tar
    digest: str     # sha256:<hex> of the blob bytes written to the sink
    size: int       # length of the blob


class LayerBlobWriter:
    """Write uncompressed tar bytes in; the compressed blob goes to ``sink`` as it is made.

    Hashing, compressing and writing to the sink run on a worker thread behind a bounded queue
    (zlib, zstd and OpenSSL's SHA-256 release the GIL), so the tar walk and the compression overlap.
    Use it as a context manager, or call ``close()``: it waits for the worker, finishes the
    stream and returns the ``BlobInfo`` (also kept as ``.info``). Leave the sink alone until
    then; it is not closed: its owner decides (the store checks the digest, then renames).
    """

    def __init__(self, sink: BinaryIO, compression: Compression = "gzip", *,
                 level: int | None = None) -> None:
        self._sink = sink
        self._compression = compression
        self._diff = Sha256()
        self._diff_size = 0
        self._size = 0
        self.info: BlobInfo | None = None
        if compression == "gzip":
            # wbits 31: deflate in a gzip wrapper with zlib's fixed header (mtime 0, no name).
            self._compressor = zlib.compressobj(level if level is not None else GZIP_LEVEL,
                                                zlib.DEFLATED, 31)
            self._blob = Sha256()
        elif compression == "zstd":
            import zstandard
            cctx = zstandard.ZstdCompressor(
                level=level if level is not None else ZSTD_LEVEL, write_checksum=True)
            self._compressor = cctx.compressobj()
            self._blob = Sha256()
        elif compression is None:
            self._compressor = None
            self._blob = self._diff  # the blob is the tar: one hash serves both
        else:
            raise ValueError(f"unknown compression {compression!r}")
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="layer-blob", daemon=True)
        self._worker.start()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._error is not None:
            raise self._error
        self._queue.put(bytes(data))  # a copy: the caller may reuse its buffer at once
        return len(data)

    def close(self) -> BlobInfo:
        if self.info is None:
            self._stop()
            if self._error is not None:
                raise self._error
            if self._compressor is not None:
                self._emit(self._compressor.flush())
            self.info = BlobInfo(self._compression,
                                 f"sha256:{self._diff.hexdigest()}", self._diff_size,
                                 f"sha256:{self._blob.hexdigest()}", self._size)
        return self.info

    def __enter__(self) -> LayerBlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stop()  # the blob is unfinished; just let the worker go

    def _stop(self) -> None:
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._diff.update(data)
                self._diff_size += len(data)
                if self._compressor is None:
                    self._emit_raw(data)
                else:
                    self._emit(self._compressor.compress(data))
        except BaseException as err:  # handed to the writing thread by write()/close()
            self._error = err
            while self._queue.get() is not None:  # keep draining: write() must never block
                pass

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob.update(data)
            self._emit_raw(data)

    def _emit_raw(self, data: bytes) -> None:
        self._size += len(data)
        self._sink.write(data)


class DigestReader:
    """Reads through ``fileobj`` and hashes every byte that passes.

    ``digest`` and ``size`` are complete once the stream has been read to its end (apply_layer
    reads to the end). Wrap the blob to check the manifest digest, and the decompressed stream
    to check the diff ID.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self._hash = Sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fileobj.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


def open_decompressed(fileobj: BinaryIO) -> BinaryIO:
    """A readable stream of the tar inside a blob: gzip and zstd are recognised by magic.

    Multi-member gzip and multi-frame zstd are read whole. The stream reads ``fileobj``
    forward only, so it may be a pipe or an HTTP response.
    """
    head = b""
    while len(head) < len(ZSTD_MAGIC):
        more = fileobj.read(len(ZSTD_MAGIC) - len(head))
        if not more:
            break
        head += more
    stream = _Prepended(head, fileobj)
    kind = detect_compression(head)
    if kind == "gzip":
        return _GzipReader(stream)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            stream, read_across_frames=True, closefd=False)
    return stream  # type: ignore[return-value]


class _GzipReader:
    """gzip members one after another, inflated by ISA-L or zlib (header, CRC and length
    checked there), as ``gzip.GzipFile`` reads them but a few times faster: input is fed in
    small chunks, so the output stays in the CPU cache, and no Python-level CRC pass.

    Zero bytes after the last member are padding (as gzip(1) and GzipFile accept); anything
    else must be another member. A stream cut short raises EOFError, damage zlib.error.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self._inflater = _inflate.decompressobj(_GZIP_WBITS)
        self._pending = b""     # input not yet given to the inflater
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(_INFLATE_OUT):
                parts.append(chunk)
            return b"".join(parts)
        # Pieces of a few input chunks are joined: fewer, larger reads for the caller.
        want = min(size, _INFLATE_OUT)
        parts: list[bytes] = []
        got = 0
        while got < want and not self._eof:
            inflater = self._inflater
            # With no input left, zlib may still hold output (a bounded call stopped in a
            # match): ask for it before reading on.
            try:
                data = inflater.decompress(self._pending, want - got)
            except _inflate.error as err:  # isal's own class: callers catch zlib.error
                raise zlib.error(str(err)) from err
            self._pending = inflater.unconsumed_tail
            if inflater.eof:
                self._next_member(inflater.unused_data)
            if data:
                parts.append(data)
                got += len(data)
            elif not self._pending and not self._eof:
                self._pending = self._fileobj.read(_INFLATE_IN)
                if not self._pending and not self._inflater.eof:
                    raise EOFError("the gzip stream ends before its end marker")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """As ``GzipFile`` with a ``fileobj``: the underlying stream stays open."""
        self._pending = b""
        self._eof = True

    def __enter__(self) -> "_GzipReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_member(self, rest: bytes) -> None:
        """After a member: start the next one, or take zero padding up to the end."""
        while not rest.strip(b"\0"):
            more = self._fileobj.read(_INFLATE_IN)
            if not more:
                self._pending = b""
                self._eof = True
                return
            rest = more
        rest = rest.lstrip(b"\0")
        self._inflater = _inflate.decompressobj(_GZIP_WBITS)
        self._pending = rest


class _Prepended:
    """``fileobj`` with the bytes already taken from it for sniffing put back in front."""

    def __init__(self, head: bytes, fileobj: BinaryIO) -> None:
        self._head = head
        self._fileobj = fileobj

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._fileobj.read(size)
        if 0 <= size <= len(self._head):
            data, self._head = self._head[:size], self._head[size:]
            return data
        data, self._head = self._head, b""
        return data + self._fileobj.read(-1 if size < 0 else size - len(data))
