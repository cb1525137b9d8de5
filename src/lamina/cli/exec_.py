"""``lamina exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]``: run a
command in a running container; lamina exits with its status."""
from __future__ import annotations

import os
import sys

from .args import REMAINDER, ArgumentParser, Namespace

HELP = "Execute a command in a running container"


def register(p: ArgumentParser) -> None:
    many: dict = {"action": "append", "default": []}
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-e", "--env", metavar="KEY=VALUE", **many, help="set an environment variable")
    p.add_argument("--env-file", metavar="FILE", **many,
                   help="read environment variables from a file")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or UID")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from ..errors import UsageError
    from .run import environment

    if not args.command:
        raise UsageError("exec needs a command", hint="lamina exec CONTAINER COMMAND [ARG...]")
    if args.interactive and args.tty and not args.detach and not os.isatty(0):
        raise UsageError("the input device is not a TTY", hint="drop -t, or run from a terminal")
    sys.stdout.flush()
    return api.exec_run(args.container, args.command,
                        env=environment(args.env_file, args.env), user=args.user,
                        workdir=args.workdir, tty=args.tty, interactive=args.interactive,
                        detach=args.detach)
