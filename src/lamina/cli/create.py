"""``lamina create [OPTIONS] IMAGE [COMMAND] [ARG...]``: a container, not started; prints its
ID. The options are ``run``'s (run.py)."""
from __future__ import annotations

import argparse
import sys

HELP = "Create a new container"


def register(p: argparse.ArgumentParser) -> None:
    from .run import register_container_options

    register_container_options(p)


def run(args: argparse.Namespace) -> int:
    from ..api import containers as api
    from .common import open_store
    from .run import create_arguments, run_options

    try:
        container = api.create_container(args.image, options=run_options(args),
                                         store=open_store(args), **create_arguments(args))
    except api.ImageNotLocalError as err:
        print(f"Unable to find image '{err.reference}' locally", file=sys.stderr)
        raise
    print(container.id)
    return 0
