"""Paths inside a container's root: symlinks and ".." never lead out of it."""
from __future__ import annotations

import pytest

from lamina.runtime.errors import ContainerError
from lamina.runtime.rootfs import _options, make_dir_in_root, resolve_in_root


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "lib").symlink_to("usr/lib")                  # relative
    (r / "abs").symlink_to("/usr/lib")                 # absolute: means root/usr/lib
    (r / "up").symlink_to("../../../../..")            # climbs no higher than the root
    (r / "loop").symlink_to("loop")
    (r / "file").write_text("x")
    return r


@pytest.mark.parametrize("path, inside", [
    ("/", ""),
    ("/usr/lib/x", "usr/lib/x"),
    ("/lib/x", "usr/lib/x"),
    ("/abs/x", "usr/lib/x"),
    ("/up/usr", "usr"),
    ("/../../etc/passwd", "etc/passwd"),
    ("usr/./lib/../lib", "usr/lib"),
    ("/missing/a/../b", "missing/b"),
])
def test_resolution_stays_in_the_root(root, path, inside):
    assert resolve_in_root(root, path) == root / inside if inside else root


def test_symlink_loops_are_an_error(root):
    with pytest.raises(ContainerError, match="symbolic links"):
        resolve_in_root(root, "/loop/x")


def test_make_dir_follows_links_inside_the_root(root):
    make_dir_in_root(root, "/abs/new/dir")
    assert (root / "usr" / "lib" / "new" / "dir").is_dir()
    make_dir_in_root(root, "/usr")                     # existing: fine
    with pytest.raises(ContainerError, match="is not a directory"):
        make_dir_in_root(root, "/file/sub")


def test_mount_option_separators_are_escaped():
    opts = _options(["/l/a:b", "/l/c,d"], "/u", "/w").decode()
    assert r"lowerdir=/l/a\:b:/l/c\,d," in opts
    assert opts.startswith("index=off,redirect_dir=off,metacopy=off,")
