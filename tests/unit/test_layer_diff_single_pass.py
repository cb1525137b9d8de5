"""write_layer's single pass: headers as tarfile writes them, files read from their sources
(``files_from``), ``mtime_clamp``, and large layers through the writer thread."""
from __future__ import annotations

import io
import os
import random
import stat
import tarfile
from pathlib import Path

import pytest

from lamina.layer import LayerError, write_layer
from lamina.layer.diff import SourcedFile
from tests.unit.test_layer_diff import layer, members

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners and device nodes need root")


def test_every_header_is_what_tarfile_writes_for_the_member(tmp_path):
    """Whatever the entry (long and non-ASCII names, big ids, devices, links), each header
    block is byte for byte tarfile's PAX encoding of that member."""
    rng = random.Random(7)
    up = tmp_path / "upper"
    (up / ("d" * 120) / "sub").mkdir(parents=True)
    (up / "é-ü").mkdir()
    names = ["plain", "x" * 99, "y" * 100, "z" * 101, "ñandú", "é-ü/inner", "d" * 120 + "/f"]
    for i, name in enumerate(names):
        (up / name).write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(2000))))
        os.chown(up / name, rng.choice([0, 1000, 0o7777777, 0o10000000, 2**31]), i)
        os.chmod(up / name, rng.choice([0o644, 0o4755, 0o1777, 0o600]))
        os.utime(up / name, (0, rng.choice([0, 1_700_000_000, 8**11, 8**11 - 1])))
    os.symlink("t" * 150, up / "longlink")
    os.symlink("short", up / "shortlink")
    os.link(up / "plain", up / "hard")
    os.mknod(up / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(up / "bigdev", stat.S_IFBLK | 0o600, os.makedev(4095, 1_000_000))
    os.mkfifo(up / "fifo")
    data = layer(up)
    found = members(data)
    assert len(found) == 1 + 1 + 1 + len(names) + 6
    for m in found:
        expected = m.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        start = m.offset
        assert data[start:start + len(expected)] == expected, m.name


def test_files_from_are_read_from_their_sources_into_the_walk(tmp_path):
    up = tmp_path / "upper"
    (up / "app").mkdir(parents=True)
    os.mknod(up / "app" / "old", stat.S_IFCHR, os.makedev(0, 0))   # a deleted lower file
    (up / "app" / "kept").write_text("kept")
    src = tmp_path / "ctx"
    src.mkdir()
    (src / "a").write_text("new content")
    (src / "b").write_bytes(b"\x00" * 3000)
    sourced = {"app": {
        "old": SourcedFile(str(src / "a"), 0o4750, 12, 34, 1_500_000_000_123_456_789, 11),
        "b": SourcedFile(str(src / "b"), 0o600, 0, 0, 2_000_000_000_000_000_000, 3000)}}
    data = layer(up, files_from=sourced)
    by_name = {m.name: m for m in members(data)}
    # sorted with the real entries; the sourced file replaces the whiteout of its name
    assert list(by_name) == ["app", "app/b", "app/kept", "app/old"]
    old = by_name["app/old"]
    assert (old.mode, old.uid, old.gid, old.mtime, old.size) == (0o4750, 12, 34,
                                                                  1_500_000_000, 11)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.extractfile("app/old").read() == b"new content"
        assert tf.extractfile("app/b").read() == b"\x00" * 3000
        assert tf.extractfile("app/kept").read() == b"kept"
    assert layer(up, files_from=sourced) == data


def test_a_source_that_shrank_is_an_error_that_names_it(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    src = tmp_path / "f"
    src.write_text("short")
    with pytest.raises(LayerError, match="shrank") as err:
        layer(up, files_from={"": {"f": SourcedFile(str(src), 0o644, 0, 0, 0, 500)}})
    assert str(src) in err.value.message
    assert "build context" in (err.value.hint or "")


@pytest.mark.parametrize("swap", ["removed", "symlink"])
def test_a_source_removed_or_swapped_for_a_symlink_is_an_error_that_names_it(tmp_path, swap):
    up = tmp_path / "upper"
    up.mkdir()
    src = tmp_path / "f"
    (tmp_path / "secret").write_text("not for the layer")
    if swap == "symlink":
        src.symlink_to(tmp_path / "secret")
    with pytest.raises(LayerError, match="cannot read") as err:
        layer(up, files_from={"": {"f": SourcedFile(str(src), 0o644, 0, 0, 0, 17)}})
    assert str(src) in err.value.message
    assert "build context" in (err.value.hint or "")


def test_mtime_clamp_caps_every_time_and_none_keeps_them(tmp_path):
    up = tmp_path / "upper"
    (up / "d").mkdir(parents=True)
    os.mknod(up / "d" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.utime(up / "d" / "gone", (0, 3_000_000_000))
    os.utime(up / "d", (0, 3_000_000_000))
    src = tmp_path / "s"
    src.write_text("s")
    sourced = {"d": {"s": SourcedFile(str(src), 0o644, 0, 0, 3_000_000_000 * 10**9, 1),
                     "old": SourcedFile(str(src), 0o644, 0, 0, 500 * 10**9, 1)}}
    kept = {m.name: m.mtime for m in members(layer(up, files_from=sourced))}
    assert kept == {"d": 3_000_000_000, "d/.wh.gone": 3_000_000_000, "d/old": 500,
                    "d/s": 3_000_000_000}
    assert layer(up, files_from=sourced) == layer(up, files_from=sourced, mtime_clamp=None)
    clamped = {m.name: m.mtime for m in members(layer(up, files_from=sourced,
                                                      mtime_clamp=1_000_000))}
    assert clamped == {"d": 1_000_000, "d/.wh.gone": 1_000_000, "d/old": 500,
                       "d/s": 1_000_000}


def test_a_layer_of_many_chunks_is_whole_and_the_same_every_time(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    rng = random.Random(1)
    for i in range(40):   # small and large files: several megabytes through the thread
        (up / f"f{i:02d}").write_bytes(rng.randbytes(rng.choice([10, 70_000, 400_000])))
    data = layer(up)
    assert data == layer(up)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            assert tf.extractfile(m).read() == (up / m.name).read_bytes()


class _FullDisk:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data) -> int:
        if self.written > 2 << 20:
            raise OSError(28, "No space left on device")
        self.written += len(data)
        return len(data)


def test_an_error_of_the_sink_reaches_the_caller(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    for i in range(8):
        (up / f"f{i}").write_bytes(os.urandom(1 << 20))
    with pytest.raises(OSError, match="No space left"):
        write_layer(up, _FullDisk())
