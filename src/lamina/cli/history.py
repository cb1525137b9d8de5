"""``lamina history IMAGE``: the build steps of an image, newest first, with their sizes.

A step's SIZE is its layer's: uncompressed (the size its snapshot recorded) once the layer has
been unpacked, else the compressed size of its blob (see ``lamina.api.images``).
``--wasted`` reads the layers instead and shows where their bytes went (``cli/analyze.py``).
"""
from __future__ import annotations

import unicodedata

from .args import ArgumentParser, ArgumentTypeError, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..api import HistoryRow

HELP = "Show the history of an image"

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
MISSING = "<missing>"    # Docker's ID of a step that is not an image of its own here
CREATED_BY_WIDTH = 45    # docker truncates CREATED BY to this many columns


def register(p: ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="a name or an image ID")
    p.add_argument("-H", "--human", type=_bool, nargs="?", const=True, default=True,
                   metavar="true|false",
                   help="print sizes and dates in human readable format (default true; "
                        "-H=false prints bytes and RFC 3339 times)")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--format", metavar="FORMAT",
                   help="'table', 'table TEMPLATE', 'json' or a Go template over the fields "
                        ".ID .CreatedSince .CreatedAt .CreatedBy .Size .Comment")
    p.add_argument("--wasted", action="store_true",
                   help="per layer, the compressed and uncompressed sizes and the bytes later "
                        "layers overwrote or deleted, with the biggest offenders")
    from .analyze import register_common
    register_common(p)


def run(args: Namespace) -> int:
    from .. import api
    from .common import open_store
    from .template import render_rows

    if args.wasted:
        return _run_wasted(args)
    steps = api.history(args.image, store=open_store(args))
    rows = [_row(step, args.human, args.no_trunc) for step in steps]
    fmt = "{{.ID}}" if args.quiet else args.format
    print(render_rows(fmt, rows, TABLE, HEADERS), end="")
    return 0


def _run_wasted(args: Namespace) -> int:
    from ..errors import UsageError
    from .analyze import run_wasted

    if args.format not in (None, "", "table", "json") or args.quiet:
        raise UsageError("--wasted prints a table or, with --format json, JSON",
                         hint="drop -q and the template, or drop --wasted")
    return run_wasted(args)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "1", "t", "false", "0", "f"):
        raise ArgumentTypeError(f"invalid boolean value {text!r}")
    return value in ("true", "1", "t")


def _row(step: "HistoryRow", human: bool, no_trunc: bool) -> dict[str, str]:
    """One row, keys in the order ``--format json`` prints them (Docker's: sorted)."""
    from .format import human_size, parse_timestamp, short_id, since

    stamp = parse_timestamp(step.created)
    # Go's time.RFC3339 in local time: no fraction, "Z" for UTC.
    created_at = stamp.astimezone().isoformat(timespec="seconds").replace("+00:00", "Z") \
        if stamp else "N/A"
    created_by = step.created_by.replace("\t", " ")
    return {
        "Comment": step.comment,
        "CreatedAt": created_at,
        "CreatedBy": created_by if no_trunc else ellipsis(created_by, CREATED_BY_WIDTH),
        "CreatedSince": since(step.created) if human else created_at,
        "ID": MISSING if step.id is None else step.id if no_trunc else short_id(step.id),
        "Size": human_size(step.size) if human else str(step.size),
    }


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` display columns, the last being ``…`` (East Asian wide
    characters take two), as docker's formatter.Ellipsis does."""
    widths = [2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text]
    if sum(widths) <= width:
        return text
    used = cut = 0
    while used + widths[cut] <= width - 1:  # ends in range: the whole text is wider
        used += widths[cut]
        cut += 1
    return text[:cut] + "…"
