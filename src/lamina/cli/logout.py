"""``lamina logout``: forget the saved credentials of a registry."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Log out from a registry (Docker Hub when no server is given)"


def register(p: ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER", help="HOST[:PORT] of the registry")


def run(args: Namespace) -> int:
    from ..api.registry import logout

    result = logout(args.server)
    if result.removed:
        print(f"Removing login credentials for {result.server}")
    else:
        print(f"Not logged in to {result.server}")
    return 0
