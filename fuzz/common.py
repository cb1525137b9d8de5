"""Shared by the atheris harnesses: run one target on one input, and let only LaminaError
(the documented way to refuse an input) pass; anything else is a crash atheris reports."""
from __future__ import annotations

import sys
from typing import Callable

from lamina.errors import LaminaError


def main(target: Callable[[bytes], None]) -> None:
    import atheris

    def one(data: bytes) -> None:
        try:
            target(data)
        except LaminaError:
            pass

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
