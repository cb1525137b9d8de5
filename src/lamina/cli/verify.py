"""``lamina image verify IMAGE...``: the checks of ``lamina system check``, for some images.

Every blob of each image is hashed, every layer decompressed and its tar hashed against the
config's diff ID, and the manifest, index and config checked against the OCI image-spec
rules. Each problem is printed with what to do; the exit status is 1 if any image has one
(or is not found).
"""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Verify images: recompute every digest, size and diff ID, check the OCI schemas"


def register(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="names or image IDs")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the problems (the exit status says the rest)")


def run(args: Namespace) -> int:
    from .. import api
    from .common import for_each, open_store

    store = open_store(args)
    damaged = []

    def verify(name: str) -> None:
        report = api.verify(name, store=store)
        if report.ok:
            if not args.quiet:
                print(f"{name}: OK ({report.blobs} blob(s) hashed, {report.layers} layer(s) "
                      "decompressed, schemas valid)")
            return
        damaged.append(name)
        print(f"{name}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            print(f"  {problem.message}")
        print(f"  fix: {report.problems[0].action}")

    status = for_each(args.images, verify, echo=False)   # a name not found: reported, go on
    return 1 if damaged else status
