"""``lamina kill [-s SIGNAL] CONTAINER...``: send a signal (default KILL) to containers."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Kill one or more running containers"


def register(p: ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="KILL", metavar="SIGNAL",
                   help="the signal: a name (TERM, SIGHUP) or a number (default KILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from ..runtime.containers import parse_signal
    from .common import for_each

    signum = parse_signal(args.signal)     # a bad signal fails once, before any container
    return for_each(args.containers, lambda ref: api.kill_container(ref, signum))
