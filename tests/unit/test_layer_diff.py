"""write_layer on a directory laid out the way overlayfs leaves an upper dir."""
from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from lamina.layer import LayerError, MOUNT_POINT_LEFTOVERS, write_layer
from lamina.layer.whiteout import OPAQUE_XATTR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


@pytest.fixture
def upper(tmp_path) -> Path:
    up = tmp_path / "upper"
    (up / "b/sub").mkdir(parents=True)
    (up / "a-c").write_text("sorts before a/ as a full path, after it as a tree walk")
    (up / "b/z").write_text("z")
    (up / "b/a").write_text("a")
    whiteout(up / "b/gone")
    (up / "b/sub/f").write_bytes(b"\x00" * 70_000)
    os.setxattr(up / "b/sub", OPAQUE_XATTR, b"y")
    os.setxattr(up / "b", "trusted.overlay.origin", b"\x00fake")
    os.setxattr(up / "b/a", "user.note", b"\xffbinary")
    os.link(up / "b/a", up / "b/a-link")
    os.symlink("/etc/passwd", up / "abs")
    os.mkfifo(up / "fifo")
    (up / "suid").write_text("x")
    os.chown(up / "suid", 1234, 5678)
    os.chmod(up / "suid", 0o4755)  # after chown, which clears setuid
    for path in up.rglob("*"):
        os.utime(path, (1_000, 2_000_000_000), follow_symlinks=False)
    return up


def layer(upper: Path, **kw) -> bytes:
    out = io.BytesIO()
    write_layer(upper, out, **kw)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8",
                      errors="surrogateescape") as tf:
        return tf.getmembers()


def test_entries_in_tree_order_with_whiteouts_first(upper):
    names = [m.name for m in members(layer(upper))]
    assert names == ["a-c", "abs", "b", "b/.wh.gone", "b/a", "b/a-link", "b/sub",
                     "b/sub/.wh..wh..opq", "b/sub/f", "b/z", "fifo", "suid"]


def test_same_upper_gives_the_same_bytes(upper):
    assert layer(upper) == layer(upper)


def test_headers_are_normalised_and_keep_what_matters(upper):
    by_name = {m.name: m for m in members(layer(upper))}
    for m in by_name.values():
        assert (m.uname, m.gname) == ("", "")
        assert not {"atime", "ctime"} & set(m.pax_headers)
    assert by_name["suid"].mode == 0o4755
    assert (by_name["suid"].uid, by_name["suid"].gid) == (1234, 5678)
    assert by_name["b/a"].mtime == 2_000_000_000
    assert by_name["b/a-link"].islnk() and by_name["b/a-link"].linkname == "b/a"
    assert by_name["abs"].issym() and by_name["abs"].linkname == "/etc/passwd"
    assert by_name["fifo"].isfifo()
    assert by_name["b/.wh.gone"].isreg() and by_name["b/.wh.gone"].size == 0
    xattr = by_name["b/a"].pax_headers["SCHILY.xattr.user.note"]
    assert xattr.encode("utf-8", "surrogateescape") == b"\xffbinary"


def test_overlay_xattrs_are_never_exported(upper):
    for m in members(layer(upper)):
        assert not [k for k in m.pax_headers if "overlay" in k], m.name


def test_mtime_clamp_caps_mtimes(upper):
    os.utime(upper / "b/z", (0, 500))
    by_name = {m.name: m for m in members(layer(upper, mtime_clamp=1_000_000))}
    assert by_name["b/a"].mtime == 1_000_000
    assert by_name["b/.wh.gone"].mtime == 1_000_000
    assert by_name["b/z"].mtime == 500


def test_whiteouts_sharing_one_inode_are_not_hardlinks(tmp_path):
    # Recent kernels make every whiteout a link to one shared inode.
    up = tmp_path / "upper"
    up.mkdir()
    whiteout(up / "x")
    os.link(up / "x", up / "y")
    assert [(m.name, m.type) for m in members(layer(up))] == \
        [(".wh.x", tarfile.REGTYPE), (".wh.y", tarfile.REGTYPE)]


def test_mount_point_leftovers_are_excluded_only_when_empty(tmp_path):
    up = tmp_path / "upper"
    (up / "etc").mkdir(parents=True)
    (up / "etc/hosts").write_text("")
    (up / "etc/hostname").write_text("kept: a step wrote it")
    names = [m.name for m in members(layer(up, exclude=MOUNT_POINT_LEFTOVERS))]
    assert names == ["etc", "etc/hostname"]


def test_sockets_are_left_out(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(up / "sock"))
        assert members(layer(up)) == []


def test_metacopy_upper_is_refused(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    (up / "f").write_text("")
    os.setxattr(up / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(LayerError, match="metacopy") as info:
        layer(up)
    assert info.value.entry == "f"


def test_a_very_deep_tree_does_not_hit_the_recursion_limit(tmp_path):
    up = deep = tmp_path / "upper"
    up.mkdir()
    for _ in range(1200):
        deep = deep / "d"
        deep.mkdir()
    try:
        assert len(members(layer(up))) == 1200
    finally:
        # Bottom up, without recursion: pytest's own clean-up (shutil.rmtree) recurses.
        while deep != up:
            deep.rmdir()
            deep = deep.parent


def test_stats_count_what_was_written(upper):
    out = io.BytesIO()
    stats = write_layer(upper, out)
    assert stats.tar_bytes == len(out.getvalue())
    assert (stats.entries, stats.files, stats.dirs, stats.symlinks, stats.hardlinks,
            stats.specials, stats.whiteouts, stats.opaque_dirs) == (12, 5, 2, 1, 1, 1, 1, 1)
    assert stats.content_bytes == sum(os.lstat(p).st_size for p in upper.rglob("*")
                                      if p.is_file() and not p.is_symlink()
                                      and p.name != "a-link")
