"""``lamina images [REPOSITORY[:TAG]]``: list the local images as ``docker images`` does."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api import ImageSummary

HELP = "List images"

HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}
TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
TABLE_DIGESTS = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}"
                 "\t{{.Size}}")
NONE = "<none>"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]",
                   help="only images of this name (wildcards * ? [...] allowed)")
    p.add_argument("-a", "--all", action="store_true",
                   help="show all images (default hides untagged images)")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                   help="filter output: dangling=true|false, reference=PATTERN")
    p.add_argument("--format", metavar="FORMAT",
                   help="'table', 'table TEMPLATE', 'json' or a Go template over the fields "
                        ".Repository .Tag .ID .Digest .CreatedSince .CreatedAt .Size")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")


def run(args: argparse.Namespace) -> int:
    from .. import api
    from .common import open_store
    from .template import render_rows

    dangling, patterns = _filters(args.filter)
    if args.reference:
        patterns.append(args.reference)
    found = api.images(open_store(args), all=args.all, reference=patterns, dangling=dangling)
    rows = [_row(image, repo_tag, args.no_trunc)
            for image in found for repo_tag in image.repo_tags or [None]]
    if args.quiet:
        fmt = "{{.ID}}"
    elif args.format in (None, "", "table"):
        fmt = TABLE_DIGESTS if args.digests else TABLE
    else:
        fmt = args.format
    print(render_rows(fmt, rows, TABLE, HEADERS), end="")
    return 0


def _filters(items: list[str]) -> tuple[bool | None, list[str]]:
    """``dangling=`` and ``reference=`` filters, the two lamina knows."""
    from ..errors import UsageError

    dangling, patterns = None, []
    for item in items:
        key, _, value = item.partition("=")
        if key == "dangling" and value.lower() in ("true", "1", "false", "0"):
            dangling = value.lower() in ("true", "1")
        elif key == "reference" and value:
            patterns.append(value)
        else:
            raise UsageError(f"invalid filter {item!r}",
                             hint="use dangling=true, dangling=false or reference=PATTERN")
    return dangling, patterns


def _row(image: "ImageSummary", repo_tag: str | None, no_trunc: bool) -> dict[str, str]:
    """One row, keys in the order ``--format json`` prints them (Docker's: sorted)."""
    from ..api.images import split_repo_tag
    from .format import human_size, parse_timestamp, short_id, since

    repository, tag = split_repo_tag(repo_tag) if repo_tag else (NONE, NONE)
    stamp = parse_timestamp(image.created)
    return {
        # Go's time.Time.String() in local time, as docker prints CreatedAt
        "CreatedAt": stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z") if stamp else "N/A",
        "CreatedSince": since(image.created),
        "Digest": image.digest,
        "ID": image.id if no_trunc else short_id(image.id),
        "Repository": repository,
        "Size": human_size(image.size),
        "Tag": tag or NONE,
    }
