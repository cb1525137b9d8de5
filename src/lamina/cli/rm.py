"""``lamina rm [-f] [-v] CONTAINER...``: remove containers, their files, and the hold they
had on their image; with -v their anonymous volumes too."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Remove one or more containers"


def register(p: ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true",
                   help="kill and remove a running container")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="remove the anonymous volumes of the container too")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import for_each

    return for_each(args.containers, lambda ref: api.remove_container(
        ref, force=args.force, volumes=args.volumes))
