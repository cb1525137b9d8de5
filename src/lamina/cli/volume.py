"""``lamina volume COMMAND``: create, ls, inspect, rm and prune volumes, as ``docker volume``."""
from __future__ import annotations


from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..runtime.volumes import Volume

HELP = "Manage volumes"
TABLE = "table {{.Driver}}\t{{.Name}}"
HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Scope": "SCOPE", "CreatedAt": "CREATED"}
PRUNE_WARNINGS = {False: "WARNING! This will remove anonymous local volumes not used by at "
                         "least one container.",
                  True: "WARNING! This will remove all local volumes not used by at least "
                        "one container."}


def register(p: ArgumentParser) -> None:
    sub = p.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)

    cmd = sub.add_parser("create", help="Create a volume", description="Create a volume")
    cmd.add_argument("name", nargs="?", metavar="VOLUME",
                     help="its name (default: 64 random hex digits)")
    cmd.add_argument("-d", "--driver", default="local", help="the volume driver (local)")
    cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="set metadata on the volume; repeatable")
    cmd.set_defaults(_volume_run=_create)

    cmd = sub.add_parser("ls", aliases=["list"], help="List volumes",
                         description="List volumes")
    cmd.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    cmd.add_argument("--format", metavar="FORMAT",
                     help="'table', 'table TEMPLATE', 'json' or a Go template over the fields "
                          ".Name .Driver .Mountpoint .Labels .Scope .CreatedAt")
    cmd.set_defaults(_volume_run=_ls)

    cmd = sub.add_parser("inspect", help="Display detailed information on one or more volumes",
                         description="Display detailed information on one or more volumes")
    cmd.add_argument("-f", "--format", metavar="TEMPLATE",
                     help="a Go template over each volume's JSON, e.g. '{{.Mountpoint}}'")
    cmd.add_argument("names", nargs="+", metavar="VOLUME")
    cmd.set_defaults(_volume_run=_inspect)

    cmd = sub.add_parser("rm", aliases=["remove"], help="Remove one or more volumes",
                         description="Remove one or more volumes; a volume in use stays")
    cmd.add_argument("-f", "--force", action="store_true",
                     help="no error for a volume that does not exist")
    cmd.add_argument("names", nargs="+", metavar="VOLUME")
    cmd.set_defaults(_volume_run=_rm)

    cmd = sub.add_parser("prune", help="Remove unused local volumes",
                         description="Remove the anonymous volumes no container uses")
    cmd.add_argument("-a", "--all", action="store_true",
                     help="remove the unused named volumes too")
    cmd.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    cmd.set_defaults(_volume_run=_prune)


def run(args: Namespace) -> int:
    return args._volume_run(args)


def _create(args: Namespace) -> int:
    from ..api.volumes import create_volume
    from ..errors import UsageError

    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label {item!r}", hint="use KEY=VALUE")
        labels[key] = value
    print(create_volume(args.name, labels=labels, driver=args.driver).name)
    return 0


def row(volume: "Volume") -> dict[str, str]:
    """One volume's fields for --format, as docker's (Labels as k=v,k=v)."""
    return {"CreatedAt": volume.created, "Driver": volume.driver,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())),
            "Mountpoint": str(volume.mountpoint), "Name": volume.name, "Scope": "local"}


def _ls(args: Namespace) -> int:
    from ..api.volumes import list_volumes
    from .template import render_rows

    fmt = "{{.Name}}" if args.quiet else args.format
    print(render_rows(fmt, [row(v) for v in list_volumes()], TABLE, HEADERS), end="")
    return 0


def _inspect(args: Namespace) -> int:
    from ..api.volumes import inspect_volume
    from .common import print_inspected

    return print_inspected(args.names, inspect_volume, args.format)


def _rm(args: Namespace) -> int:
    from ..api.volumes import remove_volume

    from .common import for_each

    return for_each(args.names, lambda name: remove_volume(name, force=args.force))


def _prune(args: Namespace) -> int:
    from ..api.volumes import prune_volumes
    from .common import confirm, print_prune_report

    if not args.force and not confirm(PRUNE_WARNINGS[args.all], "volume prune"):
        return 0
    report = prune_volumes(all=args.all)
    print_prune_report("Volumes", report.removed, report.reclaimed)
    return 0
