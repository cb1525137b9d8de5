"""``lamina port CONTAINER [PRIVATE_PORT[/PROTO]]``: the container's published ports."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "List port mappings or a specific mapping for the container"


def register(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def run(args: Namespace) -> int:
    from ..api import containers as api

    for line in api.container_port(args.container, args.private):
        print(line)
    return 0
