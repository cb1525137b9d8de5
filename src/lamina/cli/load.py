"""``lamina load``: images from a tar archive (docker save, lamina save, skopeo)."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Load images from a tar archive or STDIN (docker save or an OCI image layout)"


def register(p: ArgumentParser) -> None:
    p.add_argument("-i", "--input", metavar="FILE",
                   help="read from FILE instead of STDIN (plain, gzip, bzip2, xz or zstd)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the Loaded image lines, not the names moved")


def run(args: Namespace) -> int:
    from ..api.archive import load
    from ..errors import UsageError
    from .common import open_store

    if args.input is None and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty",
                         hint="pipe an archive in, or name it with -i FILE")
    source = args.input if args.input is not None else sys.stdin.buffer
    for image in load(source, store=open_store(args)):
        if image.name is None:
            print(f"Loaded image ID: {image.image_id}")
            continue
        if image.replaced_id and not args.quiet:
            print(f"The image {image.name} already exists, renaming the old one with ID "
                  f"{image.replaced_id} to empty string")
        print(f"Loaded image: {image.name}")
    return 0
