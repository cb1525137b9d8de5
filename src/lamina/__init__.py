"""lamina: a daemonless, Docker-compatible container image builder and runtime.

The public API grows one function per CLI command; each is imported lazily so that
``import lamina`` stays cheap for the command line.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "lint", "LaminaError"]


def __getattr__(name: str):
    if name == "lint":
        from .dockerfile.lint import lint
        return lint
    if name == "LaminaError":
        from .errors import LaminaError
        return LaminaError
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")
