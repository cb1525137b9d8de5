"""layer.whiteout.stat_in_layers: what stacked snapshot dirs show at a path (used by
build/squash.py to ask the base, and build/steps.py to skip WORKDIR's mount)."""
import os
import stat

from lamina.layer.whiteout import OPAQUE_XATTR, stat_in_layers


def _layers(tmp_path, count):
    dirs = [tmp_path / f"l{i}" for i in range(count)]
    for d in dirs:
        d.mkdir()
    return dirs


def test_the_topmost_layer_holding_the_path_answers(tmp_path):
    top, low = _layers(tmp_path, 2)
    (low / "a").mkdir()
    (low / "a/f").write_text("x")
    (top / "a").mkdir()
    assert stat.S_ISREG(stat_in_layers([top, low], "a/f").st_mode)
    assert stat.S_ISDIR(stat_in_layers([top, low], "a").st_mode)
    assert stat_in_layers([top, low], "a/missing") is None


def test_a_whiteout_or_a_file_parent_above_hides_it(tmp_path):
    top, low = _layers(tmp_path, 2)
    (low / "a").mkdir()
    (low / "a/f").write_text("x")
    os.mknod(top / "a", stat.S_IFCHR, os.makedev(0, 0))
    assert stat_in_layers([top, low], "a/f") is None
    assert stat_in_layers([top, low], "a") is None
    os.unlink(top / "a")
    (top / "a").write_text("now a file")
    assert stat_in_layers([top, low], "a/f") is None


def test_an_opaque_parent_hides_lower_layers_but_not_its_own_entries(tmp_path):
    top, low = _layers(tmp_path, 2)
    (low / "a/b").mkdir(parents=True)
    (low / "a/f").write_text("x")
    (top / "a/b").mkdir(parents=True)
    os.setxattr(top / "a", OPAQUE_XATTR, b"y")
    assert stat_in_layers([top, low], "a/f") is None
    assert stat.S_ISDIR(stat_in_layers([top, low], "a/b").st_mode)
    assert stat.S_ISDIR(stat_in_layers([top, low], "a").st_mode)
