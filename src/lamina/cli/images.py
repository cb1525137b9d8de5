"""``lamina images [REPOSITORY[:TAG]]``: list the local images as ``docker images`` does."""
from __future__ import annotations


from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..api import ImageSummary
    from ..store import Store

HELP = "List images"

HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}
TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
TABLE_DIGESTS = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}"
                 "\t{{.Size}}")
NONE = "<none>"


def register(p: ArgumentParser) -> None:
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


def run(args: Namespace) -> int:
    from .. import api
    from .common import open_store
    from .template import render_rows

    dangling, patterns = _filters(args.filter)
    if args.reference:
        patterns.append(args.reference)
    store = open_store(args)
    found = api.images(store, all=args.all, reference=patterns, dangling=dangling)
    rows = [_row(image, repository, tag, digest, args.no_trunc)
            for image in found
            for repository, tag, digest in _names(image, store, extra=not patterns)]
    fmt = "{{.ID}}" if args.quiet else args.format
    print(render_rows(fmt, rows, TABLE_DIGESTS if args.digests else TABLE, HEADERS), end="")
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


def _names(image: "ImageSummary", store: "Store",
           extra: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows of one image, as Docker makes them: a row per tag,
    with the digest the registry knows that repository's image by (RepoDigests: what a pull
    got or a push sent), else <none>; with ``extra``, a row more for each repository the
    image has a digest in but no tag (pulled by digest, or the tag since removed)."""
    from ..api.images import split_repo_tag
    from ..api.registry import repo_digests

    digests: dict[str, str] = {}
    for entry in repo_digests(image.digest, store=store):
        repository, _, digest = entry.rpartition("@")
        digests.setdefault(repository, digest)
    rows = []
    for repo_tag in image.repo_tags:
        repository, tag = split_repo_tag(repo_tag)
        rows.append((repository, tag or NONE, digests.get(repository, NONE)))
    tagged = {repository for repository, _, _ in rows}
    if extra:
        rows += [(repository, NONE, digest) for repository, digest in digests.items()
                 if repository not in tagged]
    return rows or [(NONE, NONE, NONE)]


def _row(image: "ImageSummary", repository: str, tag: str, digest: str,
         no_trunc: bool) -> dict[str, str]:
    """One row, keys in the order ``--format json`` prints them (Docker's: sorted)."""
    from .format import human_size, parse_timestamp, short_id, since

    stamp = parse_timestamp(image.created)
    return {
        # Go's time.Time.String() in local time, as docker prints CreatedAt
        "CreatedAt": stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z") if stamp else "N/A",
        "CreatedSince": since(image.created),
        "Digest": digest,
        "ID": image.id if no_trunc else short_id(image.id),
        "Repository": repository,
        "Size": human_size(image.size),
        "Tag": tag,
    }
