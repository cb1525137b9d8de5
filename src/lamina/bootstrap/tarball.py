"""Tar entries written one by one to any ``write``-able sink, with fixed metadata.

Every entry belongs to root (uid and gid 0, no user or group names) and has the one mtime
given, so the same entries in the same order always give the same bytes: headers in POSIX
(pax) form, as ``lamina.layer.diff`` writes them.
"""
from __future__ import annotations

import tarfile
from typing import BinaryIO, Protocol

_BLOCK = 512
_CHUNK = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class TarWriter:
    def __init__(self, out: Sink, mtime: int) -> None:
        self._out = out
        self._mtime = mtime

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._header(name, tarfile.DIRTYPE, mode)

    def symlink(self, name: str, target: str) -> None:
        self._header(name, tarfile.SYMTYPE, 0o777, linkname=target)

    def data(self, name: str, content: bytes, mode: int = 0o644) -> None:
        self._header(name, tarfile.REGTYPE, mode, size=len(content))
        self._out.write(content)
        self._pad(len(content))

    def file(self, name: str, source: BinaryIO, size: int, mode: int) -> None:
        """A regular file of ``size`` bytes read from ``source``, streamed."""
        self._header(name, tarfile.REGTYPE, mode, size=size)
        remaining = size
        while remaining:
            chunk = source.read(min(remaining, _CHUNK))
            if not chunk:
                raise OSError(f"{name}: the source ended {remaining} bytes early")
            self._out.write(chunk)
            remaining -= len(chunk)
        self._pad(size)

    def finish(self) -> None:
        """The end-of-archive marker: two zero blocks."""
        self._out.write(bytes(2 * _BLOCK))

    def _header(self, name: str, kind: bytes, mode: int, *, size: int = 0,
                linkname: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
        info.mtime = self._mtime
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._out.write(bytes(_BLOCK - size % _BLOCK))
