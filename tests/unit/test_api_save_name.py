"""``lamina.save`` takes one name as well as a list (a str is not a list of one-letter names)."""
from __future__ import annotations

import tarfile

import lamina
from lamina.testing import random_image, temporary_store


def test_save_accepts_a_single_name(tmp_path):
    with temporary_store():
        random_image(sizes=[512], seed=3, tag="one:1")
        out = tmp_path / "one.tar"
        lamina.save("one:1", out)
        with tarfile.open(out) as tar:
            assert "manifest.json" in tar.getnames()
        assert [loaded.name for loaded in lamina.load(out)] == ["one:1"]
