"""``lamina push``: an image to a registry, as ``docker push`` prints it."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Upload an image to a registry"


def register(p: ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="push every local tag of the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")


def run(args: Namespace) -> int:
    from ..api.registry import push, push_all_tags
    from ..image.reference import ImageReference
    from .common import open_store
    from .pull import LayerDisplay

    store = open_store(args)
    ref = ImageReference.parse(args.name)
    display = None if args.quiet else LayerDisplay(sys.stdout)
    if display is not None:
        print(f"The push refers to repository [{ref.repository}]", flush=True)
    progress = display.update if display else None
    if args.all_tags:
        results = push_all_tags(args.name, store=store, progress=progress)
    else:
        results = [push(args.name, store=store, progress=progress)]
    for result in results:
        if args.quiet:
            print(result.reference)
        else:
            print(f"{result.tag}: digest: {result.digest} size: {result.size}")
    return 0
