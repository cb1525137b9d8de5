"""``lamina builder prune``: remove build cache (Docker's ``docker builder prune``).

What goes: with ``-a`` every build cache record and ``RUN --mount=type=cache`` directory;
without it, those not used for 48 hours (Docker removes "dangling" cache by default; lamina
has no cache that dangles, so it takes the age Docker's documentation suggests for
``--filter until=``). ``--keep-storage SIZE`` removes only the oldest of those, until the
build cache holds at most SIZE. The layers that nothing else keeps are then collected, and
the space freed is printed as Docker does (``Total:``).
"""
from __future__ import annotations

import re

from .args import ArgumentParser, ArgumentTypeError, Namespace
from .common import confirm

HELP = "Manage builds"
PRUNE_HELP = "Remove build cache"
DEFAULT_WARNING = ("WARNING! This will remove the build cache not used in the last 48 hours.")
ALL_WARNING = "WARNING! This will remove all build cache."
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
          "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def register(p: ArgumentParser) -> None:
    sub = p.add_subparsers(dest="builder_command", metavar="COMMAND", required=True)
    cmd = sub.add_parser("prune", help=PRUNE_HELP, description=PRUNE_HELP)
    cmd.add_argument("-a", "--all", action="store_true",
                     help="remove all build cache, not just what was not used for 48 hours")
    cmd.add_argument("-f", "--force", action="store_true",
                     help="do not prompt for confirmation")
    cmd.add_argument("--keep-storage", metavar="SIZE", type=parse_size,
                     help="amount of disk space to keep for cache (e.g. 512MB, 2GB), oldest "
                          "removed first")
    cmd.set_defaults(_builder_run=run_prune)


def run(args: Namespace) -> int:
    return args._builder_run(args)


def parse_size(text: str) -> int:
    """``512MB``, ``2g``, ``1048576``: bytes, in binary units as Docker's --keep-storage."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ArgumentTypeError(f"invalid size {text!r}: expected e.g. 512MB or 2GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def run_prune(args: Namespace) -> int:
    from ..api.build import prune_cache
    from .common import open_store
    from .format import human_duration, human_size

    if not args.force and not confirm(ALL_WARNING if args.all else DEFAULT_WARNING,
                                      "builder prune"):
        return 0
    report = prune_cache(all=args.all, keep_storage=args.keep_storage, store=open_store(args))
    if report.removed:
        import time

        now = time.time()
        print(f"{'ID':<48}{'RECLAIMABLE':<16}{'SIZE':<16}LAST ACCESSED")
        for name, size, used in report.removed:
            print(f"{name[:25]:<48}{'true':<16}{human_size(size):<16}"
                  f"{human_duration(max(0.0, now - used))} ago")
    print(f"Total:\t{human_size(report.reclaimed)}")
    return 0
