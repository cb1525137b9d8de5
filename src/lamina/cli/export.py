"""``lamina export [-o FILE] CONTAINER``: a container's file system as one flat tar."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Export a container's filesystem as a tar archive"


def register(p: ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (whole or not at all) instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api.cp import export_container
    from ..errors import UsageError

    if args.output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    export_container(args.container, args.output or sys.stdout.buffer)
    return 0
