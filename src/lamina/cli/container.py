"""``lamina container COMMAND``: the container commands in Docker's ``container`` group.

The top-level commands are here under their group names (``container ls`` is ``ps``,
``container rm`` is ``rm``); ``inspect`` here looks at containers only, and ``prune`` lives
only here, as in Docker.
"""
from __future__ import annotations

from .args import ArgumentParser, Namespace
from .common import confirm, print_prune_report, register_group

HELP = "Manage containers"

# group subcommand -> (module under lamina.cli, aliases)
REUSED: dict[str, tuple[str, list[str]]] = {
    "commit": ("commit", []), "cp": ("cp", []), "export": ("export", []),
    "create": ("create", []), "exec": ("exec_", []), "kill": ("kill", []),
    "logs": ("logs", []), "ls": ("ps", ["ps", "list"]), "port": ("port", []),
    "restart": ("restart", []), "rm": ("rm", ["remove"]), "run": ("run", []),
    "start": ("start", []), "stop": ("stop", []), "wait": ("wait", []),
}
PRUNE_HELP = "Remove all stopped containers"
INSPECT_HELP = "Display detailed information on one or more containers"
PRUNE_WARNING = "WARNING! This will remove all stopped containers."


def register(p: ArgumentParser) -> None:
    sub = p.add_subparsers(dest="container_command", metavar="COMMAND", required=True)
    register_group(sub, REUSED, "_container_run")
    cmd = sub.add_parser("inspect", help=INSPECT_HELP, description=INSPECT_HELP)
    cmd.add_argument("-f", "--format", metavar="TEMPLATE",
                     help="a Go template over each container's JSON, e.g. '{{.State.Status}}'")
    cmd.add_argument("containers", nargs="+", metavar="CONTAINER")
    cmd.set_defaults(_container_run=run_inspect)
    cmd = sub.add_parser("prune", help=PRUNE_HELP, description=PRUNE_HELP)
    cmd.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    cmd.set_defaults(_container_run=run_prune)


def run(args: Namespace) -> int:
    return args._container_run(args)


def run_inspect(args: Namespace) -> int:
    from ..api import containers as api
    from .common import print_inspected

    return print_inspected(args.containers, api.inspect_container, args.format)


def run_prune(args: Namespace) -> int:
    from ..api import containers as api

    if not args.force and not confirm(PRUNE_WARNING, "container prune"):
        return 0
    report = api.prune_containers()
    print_prune_report("Containers", report.removed, report.reclaimed)
    return 0
