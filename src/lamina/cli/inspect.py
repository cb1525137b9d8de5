"""``lamina inspect [--format T] IMAGE...``: images as ``docker image inspect`` shows them."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Display detailed information on one or more images"


def register(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="a name or an image ID")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Go template over each image's JSON, e.g. '{{.Config.Env}}' or "
                        "'{{json .RootFS}}'")


def run(args: Namespace) -> int:
    from .. import api
    from ..errors import LaminaError
    from .common import open_store, print_inspected

    store = open_store(args)

    def lookup(name: str) -> dict:
        try:
            return api.inspect(name, store=store)
        except api.NoSuchImageError as no_image:
            from ..api.containers import inspect_container   # perhaps a container of that name
            try:
                return inspect_container(name, store=store)
            except LaminaError:
                raise no_image from None

    return print_inspected(args.images, lookup, args.format)
