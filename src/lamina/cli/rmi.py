"""``lamina rmi [-f] IMAGE...``: remove images as ``docker rmi`` does, then their unused content."""
from __future__ import annotations

import argparse
import sys

HELP = "Remove one or more images"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="a name or an image ID")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove an image used by a container, or an ID with several names")


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..errors import LaminaError
    from .common import open_store

    store = open_store(args)
    status = 0
    for name in args.images:  # one at a time, so that one failure does not stop the others
        try:
            events = api.remove([name], force=args.force, store=store)
        except LaminaError as err:
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
            continue
        for event in events:
            print(f"{event.kind.title()}: {event.name}")
    return status
