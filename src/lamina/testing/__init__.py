"""Fakes for tests, lamina's and its users': nothing here is imported by lamina itself.

- ``FakeRegistry``: an in-process OCI registry on 127.0.0.1 (auth flows, faults, a request log);
- ``FaultProxy``: an HTTP proxy that breaks requests to a real registry on purpose;
- ``random_image``, ``make_image``, ``Step``: images written straight into a store, with
  deterministic digests, in milliseconds;
- ``temporary_store``: a state root of its own for the length of a test;
- ``image_files``: what an image holds, file by file, read from its layers (no container).

docs/api.md ("Testing with lamina.testing") shows them at work. Names are imported on first use.
"""
from __future__ import annotations

import importlib

_LAZY = {  # name -> submodule
    "FakeRegistry": "registry",
    "FaultProxy": "proxy",
    **{name: "images" for name in (
        "BuiltImage", "Step", "default_steps", "layer_tar", "make_image", "make_snapshots",
        "random_image")},
    "temporary_store": "store",
    "image_files": "files", "ImageFile": "files",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
