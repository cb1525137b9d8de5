"""Layers through real overlay mounts: change a container's view, diff its upper dir, apply the
tar into a snapshot, stack the snapshot, and see the same view again."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from lamina.layer import MOUNT_POINT_LEFTOVERS, apply_layer, write_layer

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount overlayfs")

# VFS_CAP_REVISION_2 with the effective flag, permitting CAP_NET_BIND_SERVICE (bit 10).
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


class Overlays:
    """Mounts overlays and always unmounts them, even when a test fails."""

    def __init__(self) -> None:
        self._mounted: list[Path] = []

    def mount(self, target: Path, lowers: list[Path], upper: Path | None = None) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        options = "lowerdir=" + ":".join(str(p) for p in lowers)
        if upper is not None:
            work = upper.with_name(upper.name + ".work")
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(exist_ok=True)
            options += f",upperdir={upper},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
                       check=True)
        self._mounted.append(target)
        return target

    def unmount(self, target: Path) -> None:
        subprocess.run(["umount", str(target)], check=True)
        self._mounted.remove(target)

    def unmount_all(self) -> None:
        for target in reversed(self._mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)
        self._mounted.clear()


@pytest.fixture
def overlays():
    mounts = Overlays()
    try:
        yield mounts
    finally:
        mounts.unmount_all()


def view(root: Path) -> dict[str, dict]:
    """Everything a user of the mount could notice, per path (atime and ctime aside)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            record = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                      "mtime": st.st_mtime_ns // 1_000_000_000,
                      "xattrs": {k: os.getxattr(path, k, follow_symlinks=False)
                                 for k in sorted(os.listxattr(path, follow_symlinks=False))}}
            if stat.S_ISREG(st.st_mode):
                record["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                record["nlink"] = st.st_nlink
            elif stat.S_ISLNK(st.st_mode):
                record["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                record["rdev"] = st.st_rdev
            seen[os.path.relpath(path, root)] = record
    return seen


def make_base(lower: Path) -> None:
    for d in ("etc", "deldir/sub", "redir/old", "keep/sub", "usr/bin"):
        (lower / d).mkdir(parents=True)
    for f, text in {"mod.txt": "before", "chm.txt": "mode", "del.txt": "bye",
                    "deldir/sub/f": "x", "redir/old/f": "old", "redir/top": "old",
                    "keep/sub/gone": "g", "keep/sub/stays": "s", "ren_old": "moving",
                    "linked.txt": "shared", "usr/bin/tool": "#!/bin/sh"}.items():
        (lower / f).write_text(text)
    os.symlink("usr/bin", lower / "bin")


def change_everything(m: Path) -> None:
    """What RUN steps do: every kind of change a layer has to carry."""
    (m / "new.txt").write_text("new")
    os.setxattr(m / "new.txt", "user.x", b"\xff\x00binary")
    (m / "newdir/sub").mkdir(parents=True)
    (m / "newdir/sub/file").write_bytes(os.urandom(100_000))
    (m / "mod.txt").write_text("after, and longer")
    os.chmod(m / "chm.txt", 0o600)
    (m / "del.txt").unlink()
    shutil.rmtree(m / "deldir")
    shutil.rmtree(m / "redir")
    (m / "redir").mkdir()
    (m / "redir/fresh").write_text("fresh")
    (m / "keep/sub/gone").unlink()
    os.rename(m / "ren_old", m / "ren_new")
    (m / "newdir/h1").write_text("hard")
    os.link(m / "newdir/h1", m / "newdir/h2")
    os.link(m / "linked.txt", m / "linked2.txt")   # a link to a lower file: copied up first
    os.symlink("new.txt", m / "sym")
    os.symlink("/etc/passwd", m / "abs")
    os.mkfifo(m / "fifo")
    (m / "dev").mkdir()
    os.mknod(m / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (m / "usr/bin/suid").write_text("root me")
    os.chown(m / "usr/bin/suid", 1234, 5678)
    os.chmod(m / "usr/bin/suid", 0o4755)
    (m / "capbin").write_text("bind low ports")
    os.setxattr(m / "capbin", "security.capability", CAPABILITY)
    (m / "tmp").mkdir(mode=0o755)
    os.chmod(m / "tmp", 0o1777)
    (m / "shared").mkdir()
    os.chmod(m / "shared", 0o2775)
    (m / "old").write_text("old mtime")
    os.utime(m / "old", (1_000_000_000, 1_000_000_000))
    (m / "etc/hosts").write_text("")   # the runtime's bind-mount target
    # Old, distinct directory mtimes, so that a lost one shows (the test runs within a second).
    for i, d in enumerate(("newdir", "newdir/sub", "redir", "keep/sub", "usr/bin", "dev")):
        os.utime(m / d, (1_100_000_000 + i, 1_100_000_000 + i))


def test_overlay_change_round_trips_through_a_layer(tmp_path, overlays):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    make_base(lower)
    m = overlays.mount(tmp_path / "m", [lower], upper)
    change_everything(m)
    expected = view(m)
    overlays.unmount(m)

    buf = io.BytesIO()
    stats = write_layer(upper, buf, exclude=MOUNT_POINT_LEFTOVERS)
    tar = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = {t.name: t for t in tf.getmembers()}
    for marker in (".wh.del.txt", ".wh.deldir", ".wh.ren_old", "keep/sub/.wh.gone",
                   "redir/.wh..wh..opq"):
        assert members[marker].isreg() and members[marker].size == 0
    assert "etc/hosts" not in members
    assert members["newdir/h2"].islnk() and members["newdir/h2"].linkname == "newdir/h1"
    assert members["linked2.txt"].islnk() or members["linked.txt"].islnk()
    assert not [k for t in members.values() for k in t.pax_headers if "overlay" in k]
    assert (stats.whiteouts, stats.opaque_dirs) == (4, 1)

    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    apply_layer(io.BytesIO(tar), snapshot, lowers=[lower])
    stacked = overlays.mount(tmp_path / "m2", [snapshot, lower])
    seen = view(stacked)

    del expected["etc/hosts"]
    assert seen == expected
    gone = {"del.txt", "deldir", "redir/old", "redir/top", "ren_old", "keep/sub/gone"}
    assert not gone & set(seen)
    assert os.lstat(stacked / "newdir/h1").st_ino == os.lstat(stacked / "newdir/h2").st_ino

    # The snapshot is an upper dir in all but name: diffing it gives the same tar back.
    again = io.BytesIO()
    write_layer(snapshot, again)
    assert again.getvalue() == tar


def test_layers_stack_over_applied_snapshots(tmp_path, overlays):
    base = tmp_path / "base"
    base.mkdir()
    make_base(base)
    # Layer 1: built over the base.
    m1 = overlays.mount(tmp_path / "m1", [base], tmp_path / "up1")
    (m1 / "opt/app").mkdir(parents=True)
    (m1 / "opt/app/v1").write_text("1")
    (m1 / "mod.txt").unlink()
    overlays.unmount(m1)
    layer1 = io.BytesIO()
    write_layer(tmp_path / "up1", layer1)
    snap1 = tmp_path / "snap1"
    snap1.mkdir()
    apply_layer(io.BytesIO(layer1.getvalue()), snap1, lowers=[base])

    # Layer 2: built over snapshot 1 and the base; deletes from both layers below.
    m2 = overlays.mount(tmp_path / "m2", [snap1, base], tmp_path / "up2")
    shutil.rmtree(m2 / "opt/app")
    (m2 / "opt/app").mkdir()
    (m2 / "opt/app/v2").write_text("2")
    (m2 / "keep/sub/stays").unlink()
    expected = view(m2)
    overlays.unmount(m2)
    layer2 = io.BytesIO()
    write_layer(tmp_path / "up2", layer2)
    snap2 = tmp_path / "snap2"
    snap2.mkdir()
    apply_layer(io.BytesIO(layer2.getvalue()), snap2, lowers=[snap1, base])

    stacked = overlays.mount(tmp_path / "m3", [snap2, snap1, base])
    assert view(stacked) == expected
    assert sorted(os.listdir(stacked / "opt/app")) == ["v2"]
    assert not (stacked / "mod.txt").exists()
