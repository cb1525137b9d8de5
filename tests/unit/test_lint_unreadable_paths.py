"""``lamina.api.lint`` given a path it cannot read says so with a UsageError naming the path,
whatever the reason (not only a missing file or a denied permission)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lamina import api
from lamina.errors import UsageError


def test_a_path_through_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("FROM busybox\n")
    with pytest.raises(UsageError, match="Not a directory"):
        api.lint(tmp_path / "file" / "Dockerfile")


def test_a_name_too_long_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="too long"):
        api.lint(Path(tmp_path / ("x" * 300)))
