"""``lamina`` entry point: a table of commands, each in its own module, imported only when run.

Each command module defines ``HELP`` (one line), ``register(parser)`` to add its arguments,
and ``run(args) -> int``. Only the command being run is imported and registered (all of them
for ``lamina --help``); a command's heavy imports happen inside its ``run``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

# name -> module under lamina.cli
COMMANDS: dict[str, str] = {
    "lint": "lint",
    "save": "save",
    "load": "load",
    "import": "import_",
    "bootstrap": "bootstrap",
    "images": "images",
    "tag": "tag",
    "rmi": "rmi",
    "inspect": "inspect",
    "history": "history",
    "image": "image",
    "system": "system",
    "build": "build",
    "pull": "pull",
    "push": "push",
    "login": "login",
    "logout": "logout",
    "run": "run",
    "create": "create",
    "start": "start",
    "ps": "ps",
    "logs": "logs",
    "stop": "stop",
    "restart": "restart",
    "kill": "kill",
    "rm": "rm",
    "wait": "wait",
    "port": "port",
    "exec": "exec_",
    "container": "container",
    "builder": "builder",
    "cp": "cp",
    "export": "export",
    "commit": "commit",
    "volume": "volume",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that command's (the others are not imported:
    each costs a module import, and the commands on fast paths cannot afford fifty)."""
    parser = argparse.ArgumentParser(
        prog="lamina",
        description="A daemonless, Docker-compatible container image builder and runtime.",
    )
    parser.add_argument("--version", action="version", version=f"lamina {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{__package__}.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.register(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command word, when it is the first argument and a known command."""
    if argv and argv[0] in COMMANDS:
        return argv[0]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_command_in(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..errors import LaminaError

    try:
        return args._run(args)
    except LaminaError as err:
        print(f"lamina: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lamina lint | head`: the reader went away; that is not an error of ours.
        sys.stderr.close()
        return 0
