"""Crafted hostile layers: each is refused with a LayerError naming the entry, and nothing
outside the target changes.

The layout of every test: ``tmp/outside/`` (a sentinel dir with a file) beside ``tmp/target/``;
lowers, when a case needs them, live in ``tmp/lower*``. After the refusal, everything under
``tmp`` except the target is compared with a snapshot taken before, and /etc/passwd is checked.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from lamina.layer import LayerError, apply_layer
from tests.unit.test_layer_apply import build_tar, entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")


def _symlink_lower(name: str, target: str):
    def make(tmp: Path, outside: Path) -> list[Path]:
        lower = tmp / "lower"
        lower.mkdir()
        os.symlink(target.format(outside=outside), lower / name)
        return [lower]
    return make


def _symlink_under_merged_dir(tmp: Path, outside: Path) -> list[Path]:
    # The top lower has a plain d/; the one below has d/s -> outside. The stacked view shows
    # d/s as the symlink, since d/ merges and nothing hides s.
    high, low = tmp / "lower2", tmp / "lower1"
    (high / "d").mkdir(parents=True)
    (low / "d").mkdir(parents=True)
    os.symlink(str(outside), low / "d/s")
    return [high, low]


# (id, entries, offending entry, lowers factory or None); {outside} is the sentinel dir.
CASES = [
    ("absolute-path", [entry("{outside}/evil")], "{outside}/evil", None),
    ("dotdot-escape", [entry("../outside/evil")], "../outside/evil", None),
    ("inner-dotdot-climbs-out", [entry("a/../../outside/evil")], "a/../../outside/evil", None),
    ("bare-dotdot-directory", [entry("..", "dir", mode=0o777)], "..", None),
    ("symlink-then-write-same-layer",
     [entry("l", "symlink", link="../outside"), entry("l/evil")], "l/evil", None),
    ("symlink-to-root-then-write",
     [entry("root", "symlink", link="/"), entry("root{outside}/evil")], "root{outside}/evil", None),
    ("relative-symlink-climbing-then-write",
     [entry("up", "symlink", link="../../../../../../.."), entry("up{outside}/evil")],
     "up{outside}/evil", None),
    ("symlink-in-earlier-layer-then-write", [entry("l/evil")], "l/evil",
     _symlink_lower("l", "{outside}")),
    ("symlink-in-earlier-layer-nested-implicit-parent", [entry("usr/bin/evil")], "usr/bin/evil",
     _symlink_lower("usr", "{outside}")),
    ("symlink-in-earlier-layer-under-merged-dir", [entry("d/s/evil")], "d/s/evil",
     _symlink_under_merged_dir),
    ("symlink-chain",
     [entry("a", "symlink", link="b"), entry("b", "symlink", link="../outside"), entry("a/evil")],
     "a/evil", None),
    ("symlink-loop",
     [entry("loop", "symlink", link="loop"), entry("loop/evil")], "loop/evil", None),
    ("dir-replaced-by-symlink-then-write",
     [entry("d", "dir"), entry("d/x"), entry("d", "symlink", link="../outside"), entry("d/evil")],
     "d/evil", None),
    ("root-entry-as-symlink",
     [entry("./", "symlink", link="{outside}"), entry("evil")], "./", None),
    ("hardlink-to-etc-passwd", [entry("h", "hardlink", link="/etc/passwd")], "h", None),
    ("hardlink-climbing-out", [entry("h", "hardlink", link="../outside/sentinel")], "h", None),
    ("hardlink-inner-dotdot-climbing-out",
     [entry("d", "dir"), entry("h", "hardlink", link="d/../../outside/sentinel")], "h", None),
    ("hardlink-through-symlink",
     [entry("l", "symlink", link="../outside"), entry("h", "hardlink", link="l/sentinel")],
     "h", None),
    ("hardlink-pax-linkpath-override",
     [entry("ok"), entry("h", "hardlink", link="ok", pax={"linkpath": "../../etc/passwd"})],
     "h", None),
    ("whiteout-climbing-out", [entry("../outside/.wh.sentinel")], "../outside/.wh.sentinel", None),
    ("whiteout-of-dot", [entry(".wh..")], ".wh..", None),
    ("whiteout-of-dotdot", [entry("d/.wh...")], "d/.wh...", None),
    ("whiteout-empty-name", [entry(".wh.")], ".wh.", None),
    ("whiteout-name-as-directory", [entry(".wh.x/y")], ".wh.x/y", None),
    ("whiteout-in-symlinked-dir",
     [entry("l", "symlink", link="{outside}"), entry("l/.wh.sentinel")], "l/.wh.sentinel", None),
    ("opaque-marker-in-symlinked-dir",
     [entry("l", "symlink", link="{outside}"), entry("l/.wh..wh..opq")], "l/.wh..wh..opq", None),
    ("opaque-marker-in-earlier-layer-symlink", [entry("l/.wh..wh..opq")], "l/.wh..wh..opq",
     _symlink_lower("l", "{outside}")),
    ("device-node-path-escape", [entry("../outside/null", "chr", dev=(1, 3))],
     "../outside/null", None),
    ("device-node-through-symlink",
     [entry("l", "symlink", link="../outside"), entry("l/sda", "blk", dev=(8, 0))], "l/sda", None),
    ("fifo-through-symlink",
     [entry("l", "symlink", link="../outside"), entry("l/fifo", "fifo")], "l/fifo", None),
    ("nul-in-name", [entry("safe", pax={"path": "a\x00/../../outside/evil"})],
     "a\x00/../../outside/evil", None),
    ("empty-name", [entry("")], "", None),
    ("pax-path-overrides-safe-name", [entry("safe", pax={"path": "../outside/evil"})],
     "../outside/evil", None),
    ("gnu-longname-escape", [entry("../outside/" + "x" * 150)], "../outside/" + "x" * 150, None),
    ("pax-uid-overflow", [entry("f", pax={"uid": "9" * 30})], "f", None),
    ("pax-mtime-overflow", [entry("f", pax={"mtime": "1e300"})], "f", None),
    ("xattr-name-with-nul", [entry("f", pax={"SCHILY.xattr.user.a\x00b": "v"})], "f", None),
]


def _fmt(tmp: Path, text: str) -> str:
    return text.format(outside=tmp / "outside")


def _snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == skip:
                continue
            st = os.lstat(path)
            data = (hashlib.sha256(path.read_bytes()).hexdigest()
                    if stat.S_ISREG(st.st_mode) else os.readlink(path)
                    if stat.S_ISLNK(st.st_mode) else None)
            seen[str(path)] = (st.st_mode, st.st_uid, st.st_nlink, st.st_mtime_ns, data)
    return seen


@pytest.mark.parametrize("entries, offender, lowers",
                         [pytest.param(e, o, lw, id=i) for i, e, o, lw in CASES])
def test_hostile_layer_is_refused(tmp_path, entries, offender, lowers):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep me")
    target = tmp_path / "target"
    target.mkdir()
    lower_dirs = lowers(tmp_path, outside) if lowers else []
    crafted = []
    for info, data in entries:
        info.name = _fmt(tmp_path, info.name)
        info.linkname = _fmt(tmp_path, info.linkname)
        crafted.append((info, data))
    fmt = tarfile.GNU_FORMAT if any(len(i.name) > 100 for i, _ in crafted) else tarfile.PAX_FORMAT
    layer = build_tar(*crafted, fmt=fmt)
    before = _snapshot(tmp_path, target)
    passwd = os.stat("/etc/passwd")

    with pytest.raises(LayerError) as info:
        apply_layer(io.BytesIO(layer), target, lowers=lower_dirs)

    assert info.value.entry == _fmt(tmp_path, offender)
    assert repr(info.value.entry) in str(info.value)
    assert _snapshot(tmp_path, target) == before
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mtime_ns, after.st_ctime_ns) == \
        (passwd.st_nlink, passwd.st_mtime_ns, passwd.st_ctime_ns)


def test_the_suite_is_large_enough():
    assert len(CASES) >= 20
