"""``lamina inspect [--format T] IMAGE...``: images as ``docker image inspect`` shows them."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "Display detailed information on one or more images"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="a name or an image ID")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Go template over each image's JSON, e.g. '{{.Config.Env}}' or "
                        "'{{json .RootFS}}'")


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..errors import LaminaError
    from .common import open_store
    from .template import Template

    template = Template(args.format) if args.format else None  # a bad template fails first
    store = open_store(args)
    found, status = [], 0
    for name in args.images:  # like docker: print what is found, report the rest, exit 1
        try:
            found.append(api.inspect(name, store=store))
        except LaminaError as err:
            if isinstance(err, api.NoSuchImageError):  # perhaps a container of that name
                from ..api.containers import inspect_container
                try:
                    found.append(inspect_container(name, store=store))
                    continue
                except LaminaError:
                    pass
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
    if template is not None:
        for obj in found:
            print(template.render(obj))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status
