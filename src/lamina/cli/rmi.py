"""``lamina rmi [-f] IMAGE...``: remove images as ``docker rmi`` does, then their unused content."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Remove one or more images"


def register(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="a name or an image ID")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove an image used by a container, or an ID with several names")


def run(args: Namespace) -> int:
    from .. import api
    from .common import for_each, open_store

    store = open_store(args)

    def remove(name: str) -> None:
        for event in api.remove([name], force=args.force, store=store):
            print(f"{event.kind.title()}: {event.name}")

    return for_each(args.images, remove, echo=False)   # one failure does not stop the others
