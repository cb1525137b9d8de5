"""``lamina system df``, ``lamina system check [--repair]`` and ``lamina system info`` (the
same as ``lamina info``): the store and the machine as a whole."""
from __future__ import annotations


from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..api import Problem, UsageRow

HELP = "Manage lamina: disk usage, store check, system information"

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def register(p: ArgumentParser) -> None:
    sub = p.add_subparsers(dest="system_command", metavar="COMMAND", required=True)
    df = sub.add_parser("df", help="Show disk usage", description="Show disk usage")
    df.add_argument("--format", metavar="FORMAT",
                    help="'table', 'table TEMPLATE', 'json' or a Go template over the fields "
                         ".Type .TotalCount .Active .Size .Reclaimable")
    df.set_defaults(_system_run=_run_df)
    check = sub.add_parser(
        "check", help="Verify the store: blobs, images, snapshots",
        description="Verify every blob's digest, every image's manifest, config and layers "
                    "(sizes, diff IDs, the OCI image-spec rules: the checks of `lamina image "
                    "verify`), and every snapshot's metadata; print each problem and what to "
                    "do.")
    check.add_argument("--repair", action="store_true",
                       help="also fix what is safe: remove damaged blobs no image uses and "
                            "names whose manifest is gone")
    check.set_defaults(_system_run=_run_check)
    from . import info  # Docker's `system info` is `info`
    cmd = sub.add_parser("info", help=info.HELP, description=info.HELP)
    info.register(cmd)
    cmd.set_defaults(_system_run=info.run)


def run(args: Namespace) -> int:
    return args._system_run(args)


def _run_df(args: Namespace) -> int:
    from .. import api
    from .common import open_store
    from .template import render_rows

    usage = api.disk_usage(store=open_store(args))
    print(render_rows(args.format, [_df_row(row) for row in usage.rows], DF_TABLE, DF_HEADERS),
          end="")
    return 0


def _df_row(row: "UsageRow") -> dict[str, str]:
    """Docker's shape: sizes with 4 significant digits; RECLAIMABLE with its share of SIZE,
    except for the build cache (keys sorted, as ``--format json`` prints them)."""
    from .format import human_size

    reclaimable = human_size(row.reclaimable, 4)
    if row.size and row.type != "Build Cache":
        reclaimable += f" ({row.reclaimable * 100 // row.size}%)"
    return {"Active": str(row.active), "Reclaimable": reclaimable,
            "Size": human_size(row.size, 4), "TotalCount": str(row.total), "Type": row.type}


def _run_check(args: Namespace) -> int:
    from .. import api
    from .common import open_store

    report = api.check(repair=args.repair, store=open_store(args))
    for problem in report.problems:
        print(_describe(problem))
    checked = (f"{report.blobs} blob(s), {report.images} image(s), "
               f"{report.snapshots} snapshot(s) checked")
    if not report.problems:
        print(f"No problems found: {checked}.")
        return 0
    repaired = sum(1 for p in report.problems if p.repaired)
    print(f"{len(report.problems)} problem(s) found, {repaired} repaired: {checked}.")
    return 0 if report.ok else 1


def _describe(problem: "Problem") -> str:
    text = f"{problem.subject}: {problem.message}"
    if problem.repaired:
        return f"{text}\n  repaired: {problem.repaired}"
    return f"{text}\n  fix: {problem.action}"
