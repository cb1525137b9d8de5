"""``lamina restart [-t N] CONTAINER...``: stop (as ``stop``) then start containers. The
container keeps the files it changed."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Restart one or more containers"


def register(p: ArgumentParser) -> None:
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout", metavar="SECONDS",
                   help="seconds to wait for it to stop before killing it (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import for_each

    return for_each(args.containers,
                    lambda ref: api.restart_container(ref, timeout=args.timeout))
