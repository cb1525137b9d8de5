"""``lamina`` entry point: a table of commands, each in its own module, imported only when run.

Each command module defines ``HELP`` (one line), ``register(parser)`` to add its arguments,
and ``run(args) -> int``. Only the command being run is imported and registered (all of them
for ``lamina --help``); a command's heavy imports happen inside its ``run``.
"""
from __future__ import annotations

import gc
import importlib
import os
import sys

from .. import __version__
from .args import ArgumentParser

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
    "info": "info",
}


def build_parser(only: str | None = None) -> ArgumentParser:
    """The argument parser; with ``only``, just that command's (the others are not imported:
    each costs a module import, and the commands on fast paths cannot afford fifty)."""
    parser = ArgumentParser(
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


# The `lamina` process allocates some 15,000 long-lived objects while it imports (modules,
# classes, functions): with CPython's default threshold (700) the cyclic GC runs ~40 times over
# them, ~10 ms of CPU for a `run --rm ... true`. A higher first threshold still collects during
# long, allocating commands (a build, a pull).
GC_THRESHOLD = (50_000, 20, 20)


def main(argv: list[str] | None = None) -> int:
    if argv is not None:    # a Python caller of ours: its process, its rules
        return _main(argv)
    gc.set_threshold(*GC_THRESHOLD)
    code = _main(sys.argv[1:])
    _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the `lamina` process without the interpreter's teardown, which frees every module
    and object one by one (~20 ms after a `run`; the kernel frees them at once). Not while a
    thread that a normal exit would wait for still runs, nor when stdout cannot be flushed
    (the normal exit reports that)."""
    threading = sys.modules.get("threading")
    if threading is not None and any(t.is_alive() and not t.daemon
                                     and t is not threading.main_thread()
                                     for t in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _main(argv: list[str]) -> int:
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
