"""``lamina save``: images to a tar archive that docker load, skopeo and umoci read."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Save one or more images to a tar archive (streamed to STDOUT by default)"


def register(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="an image name, ID or digest; a name without a tag saves all its tags")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (whole or not at all) instead of STDOUT")


def run(args: Namespace) -> int:
    from ..api.archive import save
    from ..errors import UsageError
    from .common import open_store

    if args.output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    save(args.images, args.output or sys.stdout.buffer, store=open_store(args))
    return 0
