"""``lamina create [OPTIONS] IMAGE [COMMAND] [ARG...]``: a container, not started; prints its
ID. The options are ``run``'s (run.py)."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Create a new container"


def register(p: ArgumentParser) -> None:
    from .run import register_container_options

    register_container_options(p)


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import open_store
    from .run import create_arguments, pull_if_missing, run_options

    store = open_store(args)
    pull_if_missing(args.image, store, args)
    container = api.create_container(args.image, options=run_options(args), store=store,
                                     **create_arguments(args))
    print(container.id)
    return 0
