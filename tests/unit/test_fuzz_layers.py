"""Fuzzing layer apply with hypothesis (issue 9, item 3): random tar-ish bytes (valid layers
with bytes flipped, cut short, spliced, or compressed) end in a result or a LayerError /
LaminaError, never another exception, and nothing is written outside the target.

Every example is applied inside a small tmpfs, so that no input can fill the host's disk.
``LAMINA_FUZZ_EXAMPLES`` (``make fuzz``) raises the number of examples.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.errors import LaminaError
from lamina.layer import apply_layer, open_decompressed
from tests.unit.test_layer_apply import build_tar, entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")

EXAMPLES = int(os.environ.get("LAMINA_FUZZ_EXAMPLES", "150"))
FIGURES = {"inputs": 0, "applied": 0, "refused": 0}

SEEDS = [
    build_tar(entry("etc", "dir"), entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
              entry("bin", "dir"), entry("bin/sh", data=b"\x7fELF" * 40, mode=0o755),
              entry("bin/ash", "hardlink", link="bin/sh"), entry("lib", "symlink", link="usr/lib"),
              entry("etc/.wh.old"), entry("var", "dir"), entry("var/.wh..wh..opq")),
    build_tar(entry("d", "dir"), entry("d/f", data=b"x" * 700), entry("d/n", "chr", dev=(1, 3)),
              entry("d/p", "fifo"), entry("long/" + "n" * 120, data=b"y"),
              fmt=tarfile.GNU_FORMAT),
    build_tar(entry("x", data=b"z", pax={"SCHILY.xattr.user.k": "v", "mtime": "1.5"}),
              entry("y", "symlink", link="../../outside")),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-fs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], check=True)
    (path / "outside").mkdir()
    (path / "outside" / "sentinel").write_text("keep me")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)
    print(f"\nlayer fuzz: {FIGURES['inputs']} inputs, {FIGURES['applied']} applied, "
          f"{FIGURES['refused']} refused with a LaminaError, 0 crashed, nothing outside")


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None, splice: bytes) -> bytes:
    buf = bytearray(data)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[:cut % (len(buf) + 1)]
    return bytes(buf) + splice


tarish = st.one_of(
    st.binary(max_size=3000),
    st.builds(_mutate, st.sampled_from(SEEDS),
              st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), max_size=12),
              st.one_of(st.none(), st.integers(0, 20000)),
              st.one_of(st.just(b""), st.sampled_from(SEEDS), st.binary(max_size=600))),
)
maybe_compressed = st.tuples(tarish, st.sampled_from(["plain", "gzip", "gzip-cut"])).map(
    lambda t: t[0] if t[1] == "plain" else gzip.compress(t[0], mtime=0)
    if t[1] == "gzip" else gzip.compress(t[0], mtime=0)[:max(10, len(t[0]) // 3)])


def _outside_state(scratch: Path) -> list:
    outside = scratch / "outside"
    return sorted((p.name, p.read_bytes() if p.is_file() else None) for p in outside.iterdir()) \
        + [Path("/tmp/evil").exists(), Path("/etc/evil").exists(),
           os.stat("/etc/passwd").st_mtime_ns, os.stat("/etc/passwd").st_nlink]


def test_apply_of_random_tarish_bytes_ends_in_a_result_or_a_lamina_error(scratch,
                                                                         record_property):
    start = dict(FIGURES)
    one_input(scratch)
    for key in ("applied", "refused"):
        record_property("lamina_figure", ("layer apply fuzz", key, FIGURES[key] - start[key]))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=maybe_compressed)
def one_input(scratch, data):
    before = _outside_state(scratch)
    target = Path(tempfile.mkdtemp(dir=scratch, prefix="target-"))
    FIGURES["inputs"] += 1
    try:
        apply_layer(open_decompressed(io.BytesIO(data)), target)
        FIGURES["applied"] += 1
    except LaminaError as err:
        assert str(err)
        FIGURES["refused"] += 1
    finally:
        shutil.rmtree(target)
    assert _outside_state(scratch) == before
