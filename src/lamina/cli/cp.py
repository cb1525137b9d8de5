"""``lamina cp [-a] [-L] CONTAINER:SRC DEST|-`` and ``lamina cp [-a] [-L] SRC|- CONTAINER:DEST``:
copy files between a container (running or not) and the host, with Docker's rules for
directories and trailing slashes (api/cp.py). ``-`` is a tar stream on stdout or stdin."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Copy files/folders between a container and the local filesystem"


def register(p: ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true",
                   help="keep the owners (uid:gid) of the files copied in (default: root)")
    p.add_argument("-L", "--follow-link", action="store_true",
                   help="copy what a symlink given as SRC points to, not the link")
    p.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar "
                                                 "on stdin)")
    p.add_argument("destination", metavar="DEST", help="CONTAINER:PATH, a host path, or - "
                                                       "(a tar on stdout)")


def split(arg: str) -> tuple[str | None, str]:
    """(container, path) from ``CONTAINER:PATH``; (None, path) for a host path, as docker
    reads it: an absolute path, or one starting with ".", is the host's, colons or not."""
    if arg.startswith(("/", ".")) or arg == "-":
        return None, arg
    container, sep, path = arg.partition(":")
    return (container, path) if sep and container else (None, arg)


def run(args: Namespace) -> int:
    from ..api.cp import copy_from_container, copy_to_container
    from ..errors import UsageError

    src_container, src = split(args.source)
    dest_container, dest = split(args.destination)
    if src_container and dest_container:
        raise UsageError("copying between containers is not supported")
    if src_container:
        if dest == "-" and sys.stdout.isatty():
            raise UsageError("cowardly refusing to write a tar to a terminal",
                             hint="redirect the output, or give a destination path")
        sys.stdout.flush()
        copy_from_container(src_container, src, sys.stdout.buffer if dest == "-" else dest,
                            follow_link=args.follow_link)
    elif dest_container:
        copy_to_container(dest_container, sys.stdin.buffer if src == "-" else src, dest,
                          archive=args.archive, follow_link=args.follow_link)
    else:
        raise UsageError("must specify at least one container source",
                         hint="name a container path as CONTAINER:PATH")
    return 0
