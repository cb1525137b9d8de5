"""``lamina stop [-t N] CONTAINER...``: stop running containers.

Each gets its stop signal (``--stop-signal`` at run, else the image's STOPSIGNAL, else
SIGTERM), then SIGKILL when it has not stopped after ``-t`` seconds (default 10).
"""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Stop one or more running containers"


def register(p: ArgumentParser) -> None:
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout", metavar="SECONDS",
                   help="seconds to wait before killing it (default 10; -1: for ever)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import for_each

    return for_each(args.containers, lambda ref: api.stop_container(ref, timeout=args.timeout))
