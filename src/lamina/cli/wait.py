"""``lamina wait CONTAINER...``: block until containers stop, then print their exit codes."""
from __future__ import annotations

import argparse
import sys

HELP = "Block until one or more containers stop, then print their exit codes"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace) -> int:
    from ..api import containers as api
    from ..errors import LaminaError

    status = 0
    for ref in args.containers:
        try:
            print(api.wait_container(ref), flush=True)
        except LaminaError as err:
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
    return status
