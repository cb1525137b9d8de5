"""Overlay mounts for real: both mount APIs, many layers, odd names, clean unmounts."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.runtime import rootfs
from lamina.runtime.errors import ContainerError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


@pytest.fixture
def stack(tmp_path):
    """Make n layers, each adding one file and overriding `shared`; unmount whatever is left."""
    def make(n: int, name=lambda i: f"layer{i}") -> tuple[list[Path], Path, Path, Path]:
        lowers = []
        for i in range(n):
            d = tmp_path / "layers" / name(i)
            d.mkdir(parents=True)
            (d / f"f{i}").write_text(str(i))
            (d / "shared").write_text(str(i))
            lowers.append(d)
        dirs = [tmp_path / x for x in ("upper", "work", "merged")]
        for d in dirs:
            d.mkdir()
        return lowers[::-1], *dirs              # topmost first
    yield make
    for point in reversed(_mounts_under(tmp_path)):
        rootfs.unmount(Path(point))
    assert _mounts_under(tmp_path) == []


def _check(lowers, upper, merged, n):
    assert (merged / "shared").read_text() == str(n - 1)        # the topmost layer wins
    assert sorted(p.name for p in merged.iterdir()) == sorted(
        ["shared"] + [f"f{i}" for i in range(n)])
    (merged / "new").write_text("x")
    assert (upper / "new").exists() and not any((d / "new").exists() for d in lowers)


@pytest.mark.parametrize("n", [1, 3])
def test_a_few_layers_use_one_mount_call(stack, n):
    lowers, upper, work, merged = stack(n)
    rootfs.mount_overlay(lowers, upper, work, merged)
    _check(lowers, upper, merged, n)
    rootfs.unmount(merged)
    assert not os.path.ismount(merged)


def test_many_layers_with_the_new_mount_api(stack):
    lowers, upper, work, merged = stack(300, name=lambda i: f"{i:03d}-" + "x" * 40)
    rootfs.mount_overlay(lowers, upper, work, merged)
    assert rootfs._new_api is True
    _check(lowers, upper, merged, 300)


def test_many_layers_with_relative_paths_when_the_new_api_is_missing(stack, monkeypatch):
    monkeypatch.setattr(rootfs, "_new_api", False)
    lowers, upper, work, merged = stack(300, name=lambda i: f"{i:03d}")
    cwd = os.getcwd()
    rootfs.mount_overlay(lowers, upper, work, merged)
    assert os.getcwd() == cwd
    _check(lowers, upper, merged, 300)


def test_layer_names_with_colons_and_commas(stack):
    lowers, upper, work, merged = stack(2, name=lambda i: f"sha256:ab,{i}")
    rootfs.mount_overlay(lowers, upper, work, merged)
    _check(lowers, upper, merged, 2)


def test_pinned_options_keep_upper_dirs_plain(stack):
    lowers, upper, work, merged = stack(1)
    (lowers[0] / "d").mkdir()
    rootfs.mount_overlay(lowers, upper, work, merged)
    # redirect_dir=off: renaming a lower directory is refused (tools then copy), never a redirect
    with pytest.raises(OSError):
        os.rename(merged / "d", merged / "e")


def test_mount_errors_are_container_errors(stack, tmp_path):
    lowers, upper, work, merged = stack(1)
    with pytest.raises(ContainerError, match="cannot mount the root file system"):
        rootfs.mount_overlay([tmp_path / "missing"], upper, work, merged)
    with pytest.raises(ContainerError, match="at least one lower"):
        rootfs.mount_overlay([], upper, work, merged)


def test_unmount_of_something_not_mounted_is_quiet(tmp_path):
    rootfs.unmount(tmp_path)
