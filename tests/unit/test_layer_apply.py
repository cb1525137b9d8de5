"""apply_layer: a layer tar becomes an overlay-form snapshot dir (crafted tars, real files)."""
from __future__ import annotations

import hashlib
import io
import os
import resource
import stat
import tarfile
from pathlib import Path

import pytest

from lamina.layer import DigestReader, LayerError, apply_layer
from lamina.layer.whiteout import OPAQUE_XATTR, is_opaque

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")

MTIME = 1_600_000_000
_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def entry(name: str, kind: str = "file", data: bytes = b"", *, link: str = "",
          mode: int | None = None, uid: int = 0, gid: int = 0, mtime: int = MTIME,
          dev: tuple[int, int] = (0, 0), pax: dict[str, str] | None = None):
    """One tar member to give build_tar."""
    info = tarfile.TarInfo(name)
    info.type = _TYPES[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.linkname, info.size = link, len(data)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.devmajor, info.devminor = dev
    info.pax_headers = pax or {}
    return info, data


def build_tar(*entries, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def apply(tmp_path: Path, *entries, lowers=(), name: str = "target") -> Path:
    target = tmp_path / name
    target.mkdir()
    apply_layer(io.BytesIO(build_tar(*entries)), target, lowers=lowers)
    return target


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_every_kind_of_entry_keeps_its_attributes(tmp_path):
    cap = bytes.fromhex("0100000201000000000000000000000000000000")  # v2, effective, bit 0
    cap_text = cap.decode("utf-8", "surrogateescape")
    t = apply(tmp_path,
              entry("bin", "dir", mode=0o755, mtime=1_000),
              entry("bin/tool", "file", b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678,
                    pax={"SCHILY.xattr.user.x": "\udcff\x00v",
                         "SCHILY.xattr.security.capability": cap_text}),
              entry("bin/again", "hardlink", link="bin/tool"),
              entry("bin/sh", "symlink", link="/bin/busybox", uid=7, gid=8),
              entry("tmp", "dir", mode=0o1777),
              entry("shared", "dir", mode=0o2775),
              entry("dev/null", "chr", mode=0o666, dev=(1, 3)),
              entry("dev/loop0", "blk", mode=0o660, dev=(7, 0)),
              entry("run/fifo", "fifo", mode=0o620))
    tool = os.lstat(t / "bin/tool")
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid) == (0o4755, 1234, 5678)
    assert (t / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert tool.st_mtime == MTIME and tool.st_nlink == 2
    assert os.lstat(t / "bin/again").st_ino == tool.st_ino
    assert os.getxattr(t / "bin/tool", "user.x") == b"\xff\x00v"
    assert os.getxattr(t / "bin/tool", "security.capability") == cap
    link = os.lstat(t / "bin/sh")
    assert os.readlink(t / "bin/sh") == "/bin/busybox" and (link.st_uid, link.st_gid) == (7, 8)
    assert link.st_mtime == MTIME
    assert stat.S_IMODE(os.lstat(t / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(t / "shared").st_mode) == 0o2775
    null = os.lstat(t / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(t / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(t / "run/fifo").st_mode)
    # A directory's mtime is set after its contents were written.
    assert os.lstat(t / "bin").st_mtime == 1_000


def test_whiteouts_become_overlay_markers(tmp_path):
    t = apply(tmp_path, entry("etc", "dir"), entry("etc/.wh.passwd"),
              entry("var", "dir"), entry("var/.wh..wh..opq"), entry("var/new"))
    assert is_whiteout(t / "etc/passwd")
    assert not (t / "etc/.wh.passwd").exists()
    assert os.getxattr(t / "var", OPAQUE_XATTR) == b"y"
    assert (t / "var/new").is_file()
    assert os.lstat(t / "etc").st_mtime == MTIME  # the whiteout did not bump it


@pytest.mark.parametrize("order", ["whiteout-first", "dir-first"])
def test_whiteout_and_a_directory_of_the_same_layer_make_it_opaque(tmp_path, order):
    marker, directory = entry(".wh.cache"), entry("cache", "dir")
    entries = [marker, directory] if order == "whiteout-first" else [directory, marker]
    t = apply(tmp_path, *entries, entry("cache/fresh"))
    assert is_opaque(str(t / "cache"))
    assert (t / "cache/fresh").is_file()


def test_whiteout_never_hides_a_file_of_the_same_layer(tmp_path):
    t = apply(tmp_path, entry("f", data=b"kept"), entry(".wh.f"))
    assert (t / "f").read_bytes() == b"kept"


def test_whiteout_parent_used_as_directory_becomes_opaque(tmp_path):
    t = apply(tmp_path, entry(".wh.d"), entry("d/x"))
    assert is_opaque(str(t / "d")) and (t / "d/x").is_file()


def test_later_entries_replace_earlier_ones(tmp_path):
    t = apply(tmp_path, entry("a", data=b"file"), entry("a", "dir"), entry("a/x"),
              entry("b", "dir"), entry("b/y"), entry("b", "symlink", link="a"),
              entry("c", data=b"one"), entry("c", data=b"two"))
    assert (t / "a").is_dir() and (t / "a/x").is_file()
    assert os.readlink(t / "b") == "a"
    assert (t / "c").read_bytes() == b"two"


def test_missing_parent_takes_the_lower_directory_attributes(tmp_path):
    lower = tmp_path / "lower"
    (lower / "opt/app").mkdir(parents=True)
    os.chmod(lower / "opt/app", 0o750)
    os.chown(lower / "opt/app", 42, 43)
    os.setxattr(lower / "opt/app", "user.tag", b"v")
    os.utime(lower / "opt/app", (5_000, 5_000))
    t = apply(tmp_path, entry("opt/app/new"), entry("fresh/dir/file"), lowers=[lower])
    st = os.lstat(t / "opt/app")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o750, 42, 43, 5_000)
    assert os.getxattr(t / "opt/app", "user.tag") == b"v"
    assert stat.S_IMODE(os.lstat(t / "fresh/dir").st_mode) == 0o755


def _lower(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_a_lower_symlink_hidden_by_a_higher_whiteout_is_no_obstacle(tmp_path):
    low, high = _lower(tmp_path, "low"), _lower(tmp_path, "high")
    os.symlink("/", low / "s")
    os.mknod(high / "s", stat.S_IFCHR, os.makedev(0, 0))
    t = apply(tmp_path, entry("s/x"), lowers=[high, low])
    assert (t / "s").is_dir() and not (t / "s").is_symlink()


def test_a_lower_symlink_replaced_by_a_directory_of_this_layer_is_no_obstacle(tmp_path):
    low = _lower(tmp_path, "low")
    os.symlink("/", low / "s")
    t = apply(tmp_path, entry("s", "dir"), entry("s/x"), lowers=[low])
    assert (t / "s/x").is_file()


def test_a_lower_opaque_directory_hides_a_deeper_symlink(tmp_path):
    low, high = _lower(tmp_path, "low"), _lower(tmp_path, "high")
    (low / "d").mkdir()
    os.symlink("/", low / "d/s")
    (high / "d").mkdir()
    os.setxattr(high / "d", OPAQUE_XATTR, b"y")
    t = apply(tmp_path, entry("d/s/x"), lowers=[high, low])
    assert (t / "d/s/x").is_file()


def test_root_opaque_marker_hides_every_lower_entry(tmp_path):
    low = _lower(tmp_path, "low")
    (low / "etc").mkdir()
    (low / "old").write_text("x")
    os.mknod(low / "gone", stat.S_IFCHR, os.makedev(0, 0))
    t = apply(tmp_path, entry(".wh..wh..opq"), entry("etc", "dir"), entry("etc/new"),
              lowers=[low])
    assert is_whiteout(t / "old")
    assert is_opaque(str(t / "etc")) and (t / "etc/new").is_file()
    assert not os.path.lexists(t / "gone")  # hidden already, below


def test_names_are_normalised_inside_the_target(tmp_path):
    t = apply(tmp_path, entry("./a/../b"), entry("c//d/./e"), entry("./", "dir", mode=0o711))
    assert (t / "b").is_file() and (t / "c/d/e").is_file()
    assert stat.S_IMODE(os.lstat(t).st_mode) == 0o711


def test_overlay_bookkeeping_xattrs_in_a_tar_are_dropped(tmp_path):
    t = apply(tmp_path, entry("d", "dir", pax={"SCHILY.xattr.trusted.overlay.redirect": "/x",
                                              "SCHILY.xattr.user.keep": "1"}))
    assert os.listxattr(t / "d") == ["user.keep"]


def test_aufs_metadata_is_skipped(tmp_path):
    t = apply(tmp_path, entry(".wh..wh.aufs"), entry(".wh..wh.plnk", "dir"),
              entry(".wh..wh.plnk/1.2", data=b"x"), entry(".wh..wh.orph", "dir"))
    assert os.listdir(t) == []


def test_character_device_0_0_is_refused(tmp_path):
    with pytest.raises(LayerError) as info:
        apply(tmp_path, entry("dev/fake", "chr", dev=(0, 0)))
    assert info.value.entry == "dev/fake"


def test_hardlink_to_an_entry_of_a_lower_layer_is_refused(tmp_path):
    low = _lower(tmp_path, "low")
    (low / "f").write_text("x")
    with pytest.raises(LayerError, match="not in this layer"):
        apply(tmp_path, entry("h", "hardlink", link="f"), lowers=[low])


def test_a_file_used_as_a_directory_is_refused(tmp_path):
    with pytest.raises(LayerError, match="not a directory") as info:
        apply(tmp_path, entry("f"), entry("f/x"))
    assert info.value.entry == "f/x"


def test_not_a_tar_is_a_layer_error(tmp_path):
    (tmp_path / "t").mkdir()
    with pytest.raises(LayerError, match="not a valid layer tar"):
        apply_layer(io.BytesIO(b"\x01" * 1024), tmp_path / "t")


def test_stream_is_read_to_its_end_and_counted(tmp_path):
    data = build_tar(entry("d", "dir"), entry("d/f", data=b"abc"), entry("d/.wh.x"))
    data += bytes(10240)  # padding after the end-of-archive marker, as GNU tar writes
    reader = DigestReader(io.BytesIO(data))
    (tmp_path / "t").mkdir()
    stats = apply_layer(reader, tmp_path / "t")
    assert reader.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.tar_bytes == len(data)
    assert (stats.entries, stats.dirs, stats.files, stats.whiteouts, stats.content_bytes) == \
        (3, 1, 1, 1, 3)


def test_a_very_deep_tree_applies_within_a_small_fd_limit(tmp_path):
    deep = "/".join(["d"] * 400)
    entries = [entry(deep + "/f"), entry("d/d/side"), entry(deep[:-2] + "/g"), entry(deep + "/h")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        t = apply(tmp_path, *entries)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for name in (deep + "/f", "d/d/side", deep[:-2] + "/g", deep + "/h"):
        assert os.path.isfile(os.path.join(t, name))
