"""``lamina logs [-f] [-t] [--tail N] CONTAINER``: what the container wrote, from its log.

Lines the container wrote on stderr go to stderr, the others to stdout, as docker does. Only
containers run with -d (or started with ``start``) have a log: in the foreground, the output
goes to the terminal only.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..runtime.containers import LogEntry

HELP = "Fetch the logs of a container"


def register(p: ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="follow the log output")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("-n", "--tail", default="all", metavar="N",
                   help='the number of lines to show from the end (default "all")')
    p.add_argument("container", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from ..errors import UsageError

    if args.tail == "all":
        tail = None
    elif args.tail.lstrip("-").isdigit():
        tail = None if int(args.tail) < 0 else int(args.tail)   # docker: negative means all
    else:
        raise UsageError(f"invalid --tail {args.tail!r}", hint='give a number or "all"')
    print_entries(api.container_logs(args.container, tail=tail, follow=args.follow),
                  timestamps=args.timestamps)
    return 0


def print_entries(entries: Iterable["LogEntry"], *, timestamps: bool) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for entry in entries:
        target = err if entry.stream == "stderr" else out
        text = entry.text.encode()
        target.write(f"{entry.time} ".encode() + text if timestamps else text)
        target.flush()
