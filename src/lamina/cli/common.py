"""Helpers shared by command modules: reading inputs named on the command line, opening the
store."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import UsageError
from .args import Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from ..store import Store


def read_dockerfile(path: str, file: str | None) -> tuple[str, bytes]:
    """Find and read the Dockerfile the way ``docker build`` does; return (display name, bytes).

    ``path`` is the context folder, ``-`` for stdin, or a Dockerfile given in its place.
    """
    if path == "-" or file == "-":
        return "<stdin>", sys.stdin.buffer.read()
    context = Path(path)
    if file is not None:
        target = Path(file)
    elif context.is_file():
        target = context
    else:
        target = context / "Dockerfile"
        if not target.exists() and (context / "dockerfile").exists():
            target = context / "dockerfile"
    try:
        return str(target), target.read_bytes()
    except FileNotFoundError:
        if not context.exists():
            raise UsageError(f"{path}: no such file or folder",
                             hint="give the build context folder or the Dockerfile") from None
        raise UsageError(f"{target}: no Dockerfile there",
                         hint="name the Dockerfile with -f FILE") from None
    except IsADirectoryError:
        raise UsageError(f"{target} is a folder, not a Dockerfile",
                         hint="name the Dockerfile with -f FILE") from None
    except PermissionError:
        raise UsageError(f"{target}: permission denied") from None


def parse_build_args(items: list[str]) -> dict[str, str]:
    """``--build-arg K=V`` pairs; a bare ``K`` takes the value of $K, as Docker does."""
    import os

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"--build-arg {item!r}: the name is empty", hint="use KEY=VALUE")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def open_store(args: Namespace) -> "Store":
    """The store a command works on: ``$LAMINA_ROOT``, else /var/lib/lamina (``Store.open``
    picks it), or a ``root`` option if the command line grows one."""
    from ..store import Store

    return Store.open(getattr(args, "root", None))


def print_inspected(names: list[str], lookup: Callable[[str], Any], fmt: str | None) -> int:
    """``inspect`` as Docker prints it: a JSON array of what was found (or ``fmt`` rendered for
    each), the names not found reported on stderr, exit status 1 if any was not."""
    import json

    from ..errors import LaminaError
    from .template import Template

    template = Template(fmt) if fmt else None   # a bad template fails before any lookup
    found, status = [], 0
    for name in names:
        try:
            found.append(lookup(name))
        except LaminaError as err:
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
    if template is not None:
        for obj in found:
            print(template.render(obj))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status


def for_each(names: list[str], action: Callable[[str], Any], *, echo: bool = True) -> int:
    """Docker's way with several names (stop, rm, rmi, wait ...): act on each one, print its
    name as given once done (``echo``), report a failure and go on; exit status 1 if any
    failed."""
    from ..errors import LaminaError

    status = 0
    for name in names:
        try:
            action(name)
        except LaminaError as err:
            print(f"lamina: {err}", file=sys.stderr)
            status = 1
            continue
        if echo:
            print(name, flush=True)
    return status


def confirm(warning: str, command: str) -> bool:
    """Ask as docker's prune commands do; without a terminal to ask on, refuse rather than
    guess. ``command`` names what asks (``image prune``) in that refusal."""
    if not sys.stdin.isatty():
        raise UsageError(f"{command} asks for confirmation, but stdin is not a terminal",
                         hint="add -f (--force) to go on without asking")
    try:
        answer = input(f"{warning}\nAre you sure you want to continue? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def register_group(sub: Any, reused: dict[str, tuple[str, list[str]]], run_attr: str) -> None:
    """Add to a command group (``image``, ``container``) the top-level commands it reuses:
    ``reused`` maps a subcommand to (module under lamina.cli, aliases)."""
    import importlib

    for name, (module_name, aliases) in reused.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        cmd = sub.add_parser(name, aliases=aliases, help=module.HELP, description=module.HELP)
        module.register(cmd)
        cmd.set_defaults(**{run_attr: module.run})


def print_prune_report(title: str, lines: Iterable[str], reclaimed: int) -> None:
    """A prune's output as Docker prints it: ``Deleted <title>:``, one line each, then the
    space reclaimed."""
    from .format import human_size

    lines = list(lines)
    if lines:
        print(f"Deleted {title}:")
        print(*lines, sep="\n")
        print()
    print(f"Total reclaimed space: {human_size(reclaimed, 4)}")
