"""``lamina image COMMAND``: the image commands in Docker's ``image`` group.

``ls``, ``rm``, ``tag``, ``inspect`` and ``history`` are the top-level commands under their group
names (``image ls`` is ``images``, ``image rm`` is ``rmi``); ``prune`` lives only here, as in
Docker, and so do lamina's own ``analyze`` (where the bytes went) and ``verify`` (digests and
schemas).
"""
from __future__ import annotations

import importlib

from .args import ArgumentParser, Namespace
from .common import confirm, register_group

HELP = "Manage images"

# group subcommand -> (module under lamina.cli, aliases); prune is defined below
REUSED: dict[str, tuple[str, list[str]]] = {
    "history": ("history", []),
    "inspect": ("inspect", []),
    "ls": ("images", ["list"]),
    "rm": ("rmi", ["remove"]),
    "tag": ("tag", []),
}
# lamina's own subcommands of the group: name -> module under lamina.cli
OWN = {"analyze": "analyze", "verify": "verify"}
PRUNE_HELP = "Remove unused images"
DANGLING_WARNING = "WARNING! This will remove all dangling images."
ALL_WARNING = ("WARNING! This will remove all images without at least one container "
               "associated to them.")


def register(p: ArgumentParser) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    register_group(sub, REUSED, "_image_run")
    cmd = sub.add_parser("prune", help=PRUNE_HELP, description=PRUNE_HELP)
    register_prune(cmd)
    cmd.set_defaults(_image_run=run_prune)
    for name, module_name in OWN.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.register(cmd)
        cmd.set_defaults(_image_run=module.run)


def run(args: Namespace) -> int:
    return args._image_run(args)


def register_prune(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")


def run_prune(args: Namespace) -> int:
    from .. import api
    from .common import open_store
    from .format import human_size

    if not args.force and not confirm(ALL_WARNING if args.all else DANGLING_WARNING,
                                      "image prune"):
        return 0
    report = api.prune(all=args.all, store=open_store(args))
    if report.events:
        print("Deleted Images:")
        for event in report.events:
            print(f"{event.kind}: {event.name}")
        print()
    print(f"Total reclaimed space: {human_size(report.reclaimed, 4)}")
    return 0
