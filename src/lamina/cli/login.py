"""``lamina login``: check credentials against a registry and save them in Docker's
config.json (or its credential helper). The password is never echoed or printed."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Log in to a registry (Docker Hub when no server is given)"


def register(p: ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER", help="HOST[:PORT] of the registry")
    p.add_argument("-u", "--username", help="the user name")
    p.add_argument("-p", "--password", help="the password (prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from STDIN")


def run(args: Namespace) -> int:
    from ..api.registry import login
    from ..errors import UsageError

    password = args.password
    if args.password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not args.username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    username = args.username or _ask("Username: ", secret=False)
    if not password:
        password = _ask("Password: ", secret=True)
    result = login(args.server, username=username, password=password)
    if result.stored_in.endswith("config.json"):
        print(f"WARNING! Your password will be stored unencrypted in {result.stored_in}.\n"
              "Configure a credential helper to remove this warning. See\n"
              "https://docs.docker.com/go/credential-store/", file=sys.stderr)
    print("Login Succeeded")
    return 0


def _ask(prompt: str, *, secret: bool) -> str:
    from ..errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError("cannot ask for credentials: STDIN is not a terminal",
                         hint="give --username and --password-stdin")
    if secret:
        import getpass

        return getpass.getpass(prompt)
    return input(prompt).strip()
