"""``lamina wait CONTAINER...``: block until containers stop, then print their exit codes."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Block until one or more containers stop, then print their exit codes"


def register(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import for_each

    return for_each(args.containers, lambda ref: print(api.wait_container(ref), flush=True),
                    echo=False)
