"""Images made by hand in a store, for tests: now part of lamina.testing (lamina.testing.images),
so that users' tests can make them too; the names stay importable from here.

    built = make_image(store, layers=3, tag="app:1")      # ADD, ENV, ADD, ENV, ADD, CMD
    built = make_image(store, [Step("RUN a", {"a": b"1"}), Step("ENV X=1")], unpack=True)
"""
from __future__ import annotations

from lamina.testing.images import (
    CREATED, BuiltImage, Step, default_steps, layer_tar, make_image, make_snapshots,
    random_image)

__all__ = ["CREATED", "BuiltImage", "Step", "default_steps", "layer_tar", "make_image",
           "make_snapshots", "random_image"]
