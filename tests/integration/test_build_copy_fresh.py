"""A COPY into a path no layer has writes straight into its upper dir, without mounting an
overlay: the layer is the one the overlay gives, byte for byte; and where something exists
below (or a source is a symlink) the overlay is still used."""
from __future__ import annotations

import os

import pytest

from lamina.build import steps

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]   # store, build

DOCKERFILE = """\
FROM busybox
COPY app.txt dir /app/
COPY --chmod=600 app.txt /srv/deep/x/
COPY app.txt /etc/added
"""


def _build(build, tmp_path, name: str, fresh_paths: bool, monkeypatch) -> tuple[str, list]:
    real = steps._fresh_in_lowers
    seen = []

    def spy(lowers, dest, files):
        seen.append((dest, real(lowers, dest, files) and fresh_paths))
        return seen[-1][1]
    monkeypatch.setattr(steps, "_fresh_in_lowers", spy)
    ctx = make_context(tmp_path / name, DOCKERFILE,
                       {"app.txt": "app\n", "dir/a": "a\n", "dir/sub/b": "b\n"})
    result = build(ctx, tags=[f"{name}:1"], no_cache=True, source_date_epoch=1_700_000_000)
    monkeypatch.undo()
    return result.result.image_id, seen


def test_the_layers_are_the_ones_the_overlay_gives(build, store, tmp_path, monkeypatch):
    fresh, fresh_seen = _build(build, tmp_path, "fresh", True, monkeypatch)
    overlay, overlay_seen = _build(build, tmp_path, "overlay", False, monkeypatch)
    assert fresh_seen == [("/app/", True), ("/srv/deep/x/", True), ("/etc/added", False)]
    assert not any(taken for _, taken in overlay_seen)
    assert fresh == overlay     # same config, so the same layers (diff IDs)


@pytest.mark.parametrize("dest, files, fresh", [
    ("/app/", {"a": "f644:x"}, True),
    ("/app/x/y", {"a": "f644:x", "d": "d755"}, True),
    ("/etc/", {"a": "f644:x"}, False),        # /etc exists below
    ("/", {"a": "f644:x"}, False),
    ("/app/", {"a": "lsomewhere"}, False),    # a symlink could lead elsewhere
])
def test_where_the_overlay_is_skipped(tmp_path, dest, files, fresh):
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    assert steps._fresh_in_lowers([lower], dest, files) is fresh


def test_a_whiteout_below_counts_as_something(tmp_path):
    lower = tmp_path / "lower"
    lower.mkdir()
    os.mknod(lower / "app", 0o600 | 0o020000, os.makedev(0, 0))   # overlay's whiteout
    assert not steps._fresh_in_lowers([lower], "/app/", {})
