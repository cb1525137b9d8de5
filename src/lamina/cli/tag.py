"""``lamina tag SOURCE TARGET``: give an image another name, as ``docker tag`` does."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"


def register(p: ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]", help="a name or an image ID")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]", help="the new name")


def run(args: Namespace) -> int:
    from .. import api
    from .common import open_store

    api.tag(args.source, args.target, store=open_store(args))
    return 0
