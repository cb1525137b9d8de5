"""Shared test settings: where the upstream vectors and the real-world corpus live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The suite draws the same examples every run, so a red CI means a change broke something, not
# that a new input turned up; `make fuzz` (LAMINA_HYPOTHESIS=explore) is where new inputs are
# looked for.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("LAMINA_HYPOTHESIS", "suite"))

REPO = Path(__file__).resolve().parents[1]
# shared/ sits beside the checkout (../shared), in development and in CI alike.
SHARED = Path(os.environ.get("LAMINA_SHARED", REPO.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
REALWORLD = SHARED / "realworld"


def pytest_configure(config: pytest.Config) -> None:
    if not CONFORMANCE.is_dir():
        raise pytest.UsageError(
            f"conformance vectors not found at {CONFORMANCE}: "
            "put shared/ beside the checkout or set LAMINA_SHARED")
