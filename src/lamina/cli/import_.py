"""``lamina import``: a root file system tarball becomes a one-layer image."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Import the contents from a tarball to create a filesystem image"


def register(p: ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE|-",
                   help="the tarball (plain, gzip, bzip2, xz or zstd); - reads STDIN")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]",
                   help="name the image")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, "
                        "ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, "
                        "WORKDIR); repeatable")
    p.add_argument("-m", "--message", metavar="MESSAGE",
                   help="the history comment (default: Imported from -)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="the platform the image is for (default: this machine's)")


def run(args: Namespace) -> int:
    from ..api.importer import import_image
    from .common import open_store

    source = sys.stdin.buffer if args.file == "-" else args.file
    imported = import_image(source, args.repository, changes=args.change,
                            message=args.message, platform=args.platform,
                            store=open_store(args))
    print(imported.image_id)
    return 0
