"""Layer blobs: gzip, zstd and none, with both digests computed as bytes pass."""
from __future__ import annotations

import gzip
import hashlib
import io
import os

import pytest
import zstandard

from lamina.layer import (
    DigestReader, LayerBlobWriter, LayerError, apply_layer, detect_compression, open_decompressed,
    write_layer,
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


PAYLOAD = os.urandom(300_000) + b"compressible " * 50_000


def blob_of(data: bytes, compression, chunk: int = 65_536) -> tuple[bytes, object]:
    sink = io.BytesIO()
    writer = LayerBlobWriter(sink, compression)
    for i in range(0, len(data), chunk):
        writer.write(data[i:i + chunk])
    info = writer.close()
    return sink.getvalue(), info


class Trickle(io.RawIOBase):
    """A pipe-like reader that hands out at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(7 if size < 0 else min(size, 7))


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_round_trip_and_digests(compression):
    blob, info = blob_of(PAYLOAD, compression)
    assert info.compression == compression
    assert (info.diff_id, info.diff_size) == (sha256(PAYLOAD), len(PAYLOAD))
    assert (info.digest, info.size) == (sha256(blob), len(blob))
    assert detect_compression(blob[:4]) == compression
    assert open_decompressed(io.BytesIO(blob)).read() == PAYLOAD
    if compression:
        assert len(blob) < len(PAYLOAD)


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_decompression_reads_forward_only_through_short_reads(compression):
    blob, _ = blob_of(PAYLOAD, compression)
    stream = open_decompressed(Trickle(blob))
    out = bytearray()
    while chunk := stream.read(100_000):
        out += chunk
    assert bytes(out) == PAYLOAD


def test_gzip_is_deterministic_with_a_fixed_header():
    first, _ = blob_of(PAYLOAD, "gzip", chunk=4096)
    second, _ = blob_of(PAYLOAD, "gzip", chunk=1_000_000)
    assert first == second
    # ID1 ID2 CM FLG MTIME(4): no FNAME/FCOMMENT flag, mtime zero.
    assert first[:8] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    assert gzip.decompress(first) == PAYLOAD


def test_concatenated_gzip_members_and_zstd_frames_are_read_whole():
    gz = gzip.compress(b"one ", mtime=0) + gzip.compress(b"two", mtime=0)
    assert open_decompressed(io.BytesIO(gz)).read() == b"one two"
    cctx = zstandard.ZstdCompressor()
    zst = cctx.compress(b"one ") + cctx.compress(b"two")
    assert open_decompressed(io.BytesIO(zst)).read() == b"one two"


@pytest.mark.parametrize("head, expected", [
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"etc/", None),
    (b"\x1f\x8b", None),   # too short to be sure
    (b"", None),
])
def test_detect_compression(head, expected):
    assert detect_compression(head) == expected


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError):
        LayerBlobWriter(io.BytesIO(), "bzip2")


def test_digest_reader_hashes_what_passes():
    reader = DigestReader(io.BytesIO(PAYLOAD))
    while reader.read(10_000):
        pass
    assert (reader.digest, reader.size) == (sha256(PAYLOAD), len(PAYLOAD))


@pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_layer_through_a_blob_and_back_with_verified_digests(tmp_path, compression):
    upper = tmp_path / "upper"
    (upper / "app").mkdir(parents=True)
    (upper / "app/main.py").write_text("print('hi')\n" * 1000)
    sink = io.BytesIO()
    with LayerBlobWriter(sink, compression) as writer:
        write_layer(upper, writer)
    info = writer.info
    blob = DigestReader(io.BytesIO(sink.getvalue()))
    tar = DigestReader(open_decompressed(blob))
    (tmp_path / "snap").mkdir()
    apply_layer(tar, tmp_path / "snap")
    assert (blob.digest, blob.size) == (info.digest, info.size)
    assert (tar.digest, tar.size) == (info.diff_id, info.diff_size)
    assert (tmp_path / "snap/app/main.py").read_text() == "print('hi')\n" * 1000


class FullDisk:
    def write(self, data) -> int:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("compression", ["gzip", None])
def test_a_failing_sink_surfaces_its_error_and_never_hangs(compression):
    with pytest.raises(OSError, match="No space left"):
        with LayerBlobWriter(FullDisk(), compression) as writer:
            for _ in range(50):  # more than the queue holds
                writer.write(PAYLOAD)


@pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_blob_is_a_layer_error(tmp_path, compression, damage):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "data").write_bytes(os.urandom(3_000_000))
    sink = io.BytesIO()
    with LayerBlobWriter(sink, compression) as writer:
        write_layer(upper, writer)
    blob = bytearray(sink.getvalue())
    if damage == "truncated":
        del blob[len(blob) // 2:]
    else:
        blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "snap").mkdir()
    with pytest.raises(LayerError):
        apply_layer(open_decompressed(io.BytesIO(bytes(blob))), tmp_path / "snap")
