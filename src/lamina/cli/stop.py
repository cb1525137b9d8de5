"""``lamina stop [-t N] CONTAINER...``: stop running containers.

Each gets its stop signal (``--stop-signal`` at run, else the image's STOPSIGNAL, else
SIGTERM), then SIGKILL when it has not stopped after ``-t`` seconds (default 10).
"""
from __future__ import annotations

import argparse
import sys

HELP = "Stop one or more running containers"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout", metavar="SECONDS",
                   help="seconds to wait before killing it (default 10; -1: for ever)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace) -> int:
    from ..api import containers as api

    return for_each(args.containers, lambda ref: api.stop_container(ref, timeout=args.timeout))


def for_each(refs: list[str], action) -> int:
    """Act on each container, printing its name as given; report a failure and go on; exit 1
    if any failed (docker's way for stop, kill, rm, restart...)."""
    from ..errors import LaminaError

    status = 0
    for ref in refs:
        try:
            action(ref)
        except LaminaError as err:
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
            continue
        print(ref)
    return status
