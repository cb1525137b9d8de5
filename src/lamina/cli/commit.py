"""``lamina commit [-c INSTRUCTION]... [-m MSG] [-a AUTHOR] [-p] CONTAINER [REPOSITORY[:TAG]]``:
a new image from a container's changes; prints its ID."""
from __future__ import annotations

from .args import ArgumentParser, ArgumentTypeError, Namespace

HELP = "Create a new image from a container's changes"


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ArgumentTypeError(f"invalid boolean value: {text!r}")


def register(p: ArgumentParser) -> None:
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, "
                        "ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, "
                        "WORKDIR); repeatable")
    p.add_argument("-m", "--message", metavar="MESSAGE", help="the commit message")
    p.add_argument("-a", "--author", metavar="AUTHOR",
                   help='the author (e.g., "Jane Doe <jane@example.com>")')
    p.add_argument("-p", "--pause", type=_bool, nargs="?", const=True, default=True,
                   metavar="true|false",
                   help="pause a running container while committing (default true)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]", help="name the image")


def run(args: Namespace) -> int:
    from ..api.commit import commit_container
    from .common import open_store

    image = commit_container(args.container, args.repository, changes=args.change,
                             message=args.message, author=args.author, pause=args.pause,
                             store=open_store(args))
    print(image.image_id)
    return 0
