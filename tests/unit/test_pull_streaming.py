"""The pieces of a streamed pull: the gzip reader that replaced ``gzip.GzipFile`` on the
unpack path, and the spool that lets a layer be read while its download is written."""
from __future__ import annotations

import gzip
import io
import os
import threading
import zlib

import pytest

from lamina.layer import compress
from lamina.layer.compress import open_decompressed
from lamina.registry.spool import Spool
from lamina.store.unpack import BlobRestarted

RANDOM = os.urandom(3 << 20)
TEXT = b"".join(b"line %d of a compressible layer\n" % i for i in range(200_000))


def read_all(stream, size: int) -> bytes:
    parts = []
    while chunk := stream.read(size):
        parts.append(chunk)
    return b"".join(parts)


# -- gzip ---------------------------------------------------------------------------------

@pytest.fixture(params=["isal", "zlib"])
def inflater(request, monkeypatch):
    """Every gzip test runs with ISA-L and with the zlib fallback (no isal installed)."""
    if request.param == "zlib":
        monkeypatch.setattr(compress, "_inflate", zlib)
    else:
        pytest.importorskip("isal")

@pytest.mark.parametrize("payload", [b"", b"x", RANDOM, TEXT, bytes(30 << 20)],
                         ids=["empty", "one-byte", "random", "text", "zeros"])
@pytest.mark.parametrize("size", [1, 4096, 1 << 20, -1])
@pytest.mark.usefixtures("inflater")
def test_gzip_reads_what_gzip_wrote_whatever_the_read_size(payload, size):
    if size == 1 and len(payload) > 100_000:
        payload = payload[:100_000]  # byte by byte: keep it short
    blob = gzip.compress(payload)
    stream = open_decompressed(io.BytesIO(blob))
    assert (stream.read() if size < 0 else read_all(stream, size)) == payload


@pytest.mark.usefixtures("inflater")
def test_gzip_reads_every_member_and_ignores_zero_padding():
    blob = gzip.compress(b"one ") + gzip.compress(TEXT) + gzip.compress(b"") + bytes(5000)
    assert open_decompressed(io.BytesIO(blob)).read() == b"one " + TEXT


@pytest.mark.usefixtures("inflater")
def test_zero_bytes_expand_without_unbounded_reads():
    blob = gzip.compress(bytes(64 << 20))  # 64 MB in a ~64 KB blob
    stream = open_decompressed(io.BytesIO(blob))
    assert all(len(stream.read(1 << 20)) <= 1 << 20 for _ in range(64))
    assert stream.read(1) == b""


@pytest.mark.usefixtures("inflater")
@pytest.mark.parametrize("damage, error", [
    (lambda b: b[:len(b) // 2], EOFError),                         # cut short
    (lambda b: b[:-8] + bytes(4) + b[-4:], zlib.error),             # wrong CRC
    (lambda b: b + b"garbage after the member", zlib.error),       # not another member
])
def test_damaged_gzip_is_an_error_not_short_data(damage, error):
    blob = damage(gzip.compress(TEXT))
    with pytest.raises(error):
        read_all(open_decompressed(io.BytesIO(blob)), 1 << 20)


# -- the spool ----------------------------------------------------------------------------

class Download:
    """Writes attempts into files as the pull's download thread does, step by step."""

    def __init__(self, tmp_path, spool: Spool) -> None:
        self.tmp_path = tmp_path
        self.spool = spool
        self.attempts = 0

    def begin(self):
        self.attempts += 1
        path = self.tmp_path / f"attempt{self.attempts}"
        self.out = open(path, "wb", buffering=0)
        self.spool.begin(path)
        return path

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.spool.advance(len(data))

    def commit(self, path) -> None:
        self.out.close()
        path.rename(path.with_name("blob"))  # readers hold the file, not the name
        self.spool.complete()


def test_a_reader_follows_the_writer_and_ends_only_at_the_commit(tmp_path):
    spool = Spool("sha256:test")
    download = Download(tmp_path, spool)
    reader = spool.reader()
    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(read_all(reader, 1000)),
                              daemon=True)   # a reader that never ends cannot hang the run
    thread.start()  # before a byte exists: it waits
    path = download.begin()
    for i in range(0, len(RANDOM), 300_000):
        download.write(RANDOM[i:i + 300_000])
    thread.join(0.2)
    assert thread.is_alive(), "the reader saw an end before the download was committed"
    download.commit(path)
    thread.join(30)
    assert result == [RANDOM]
    reader.close()
    spool.close()


def test_a_new_attempt_after_bytes_were_read_restarts_the_reader(tmp_path):
    spool = Spool("sha256:test")
    download = Download(tmp_path, spool)
    download.begin()
    download.write(b"damaged first half")
    reader = spool.reader()
    assert reader.read(7) == b"damaged"
    path = download.begin()  # the first attempt failed: the download starts again
    with pytest.raises(BlobRestarted):
        read_all(reader, 100)  # (at the latest once what it had read ahead is used up)
    fresh = spool.reader()  # the caller starts the layer again
    download.write(b"the whole blob")
    download.commit(path)
    assert read_all(fresh, 4) == b"the whole blob"


def test_a_reader_that_read_nothing_moves_to_the_new_attempt_silently(tmp_path):
    spool = Spool("sha256:test")
    download = Download(tmp_path, spool)
    download.begin()
    reader = spool.reader()
    path = download.begin()
    download.write(b"second attempt")
    download.commit(path)
    assert read_all(reader, 1 << 20) == b"second attempt"


def test_settle_tells_a_damaged_attempt_from_a_damaged_blob(tmp_path):
    spool = Spool("sha256:test")
    download = Download(tmp_path, spool)
    download.begin()
    download.write(b"bad bytes")
    reader = spool.reader()
    reader.read(3)
    download.begin()  # the store refused the first attempt: it is tried again
    with pytest.raises(BlobRestarted):
        reader.settle()
    again = spool.reader()
    path = download.tmp_path / "attempt2"
    download.write(b"same bytes")
    download.commit(path)
    again.read(4)
    again.settle()  # the bytes read were the committed blob's: the damage is real


def test_a_failed_download_reaches_every_reader(tmp_path):
    spool = Spool("sha256:test")
    download = Download(tmp_path, spool)
    download.begin()
    download.write(b"part")
    reader, waiting = spool.reader(), spool.reader()
    assert reader.read(4) == b"part"
    failure = RuntimeError("the registry went away")
    errors: list[BaseException] = []

    def wait_for_more():
        try:
            waiting.read(4)
            waiting.read(4)
        except RuntimeError as err:
            errors.append(err)

    thread = threading.Thread(target=wait_for_more, daemon=True)
    thread.start()
    spool.fail(failure)
    thread.join(30)
    assert errors == [failure]
    with pytest.raises(RuntimeError):
        reader.read(4)


# -- apply: file data read straight from the stream ---------------------------------------

def _tar(files: dict[str, bytes]) -> bytes:
    import tarfile
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_apply_gives_every_file_exactly_whatever_its_size(tmp_path):
    from lamina.layer.apply import apply_layer

    sizes = [0, 1, 511, 512, 513, 10_240, (1 << 20) - 1, 1 << 20, (3 << 20) + 7]
    files = {f"d/f{size}": os.urandom(size) for size in sizes}
    files["a-long-name-" + "x" * 150] = b"pax header before me\n"  # a pax record first
    target = tmp_path / "snap"
    target.mkdir()
    apply_layer(io.BytesIO(gzip.decompress(gzip.compress(_tar(files)))), target)
    for name, data in files.items():
        assert (target / name).read_bytes() == data


def test_a_tar_cut_inside_a_file_names_that_file(tmp_path):
    from lamina.layer import LayerError
    from lamina.layer.apply import apply_layer

    data = _tar({"first": b"whole\n", "big": os.urandom(2 << 20)})
    target = tmp_path / "snap"
    target.mkdir()
    with pytest.raises(LayerError) as failed:
        apply_layer(io.BytesIO(data[:1 << 20]), target)
    assert failed.value.entry == "big"
