"""Sparse files in a layer stay sparse: their holes are not written out as zeros."""
from __future__ import annotations

import os
import subprocess

from lamina.layer.apply import apply_layer


def test_gnu_tar_sparse_file_keeps_its_holes_and_the_stream_stays_aligned(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "big.img"
    with open(sparse, "wb") as f:
        f.truncate(8 << 30)              # 8 GiB apparent size
        f.seek(5 << 20)
        f.write(b"middle")
        f.seek((8 << 30) - 3)
        f.write(b"end")
    (src / "z-after.txt").write_text("after the sparse file\n")
    tar = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(tar), "-C", str(src),
                    "big.img", "z-after.txt"], check=True)
    assert tar.stat().st_size < 1 << 20

    target = tmp_path / "target"
    target.mkdir()
    with open(tar, "rb") as stream:
        apply_layer(stream, target)

    out = target / "big.img"
    assert out.stat().st_size == 8 << 30
    assert out.stat().st_blocks * 512 < 1 << 20        # holes, not gigabytes of zeros
    with open(out, "rb") as f:
        f.seek(5 << 20)
        assert f.read(6) == b"middle"
        f.seek((8 << 30) - 3)
        assert f.read() == b"end"
        f.seek(1 << 30)
        assert f.read(16) == bytes(16)
    assert (target / "z-after.txt").read_text() == "after the sparse file\n"
    os.remove(out)
