"""``lamina bootstrap``: make a base image on this machine, without a registry."""
from __future__ import annotations

import sys
import time

from .args import ArgumentParser, Namespace

HELP = "Make a base image without a registry: busybox, or Debian with mmdebstrap"


def register(p: ArgumentParser) -> None:
    p.add_argument("image", metavar="busybox|debian[:SUITE]",
                   help="busybox (from the busybox-static package), or Debian's SUITE "
                        "(default bookworm) from Debian's packages with mmdebstrap")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME",
                   help="name the image NAME instead (repeatable); default busybox:latest, "
                        "or debian:SUITE and, for minbase, debian:SUITE-slim")
    p.add_argument("--variant", metavar="VARIANT",
                   help="Debian's package set: minbase (default, also tagged -slim), buildd, "
                        "important, required or standard")
    p.add_argument("--include", action="append", default=[], metavar="PKG[,PKG...]",
                   help="Debian packages to install as well (repeatable)")
    p.add_argument("--mirror", action="append", default=[], metavar="URL",
                   help="apt source instead of deb.debian.org: a URL, or a 'deb URL SUITE "
                        "COMPONENT' line (repeatable)")


def run(args: Namespace) -> int:
    from ..api.bootstrap import bootstrap_busybox, bootstrap_debian
    from ..errors import UsageError
    from .common import open_store
    from .format import human_size

    name, _, suite = args.image.partition(":")
    start = time.monotonic()
    if name == "busybox" and not suite:
        if args.include or args.mirror or args.variant:
            raise UsageError("--variant, --include and --mirror are for debian only")
        image = bootstrap_busybox(tags=args.tag, store=open_store(args))
    elif name == "debian":
        include = [pkg for item in args.include for pkg in item.replace(",", " ").split()]
        image = bootstrap_debian(suite or "bookworm", variant=args.variant or "minbase",
                                 include=include, mirrors=args.mirror, tags=args.tag,
                                 store=open_store(args), progress=_progress)
    else:
        raise UsageError(f"cannot bootstrap {args.image!r}",
                         hint="give busybox, debian or debian:SUITE (e.g. debian:bookworm)")
    _progress(f"{', '.join(image.tags)}: {image.source}; 1 layer, {human_size(image.size)} "
              f"({human_size(image.blob_size)} compressed), "
              f"{time.monotonic() - start:.1f}s")
    print(image.image_id)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
