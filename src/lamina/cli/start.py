"""``lamina start [-a] CONTAINER...``: start created or stopped containers, each under a
monitor process. With -a, stay attached to the one container's output and exit with its
status; Ctrl+C is passed on to it."""
from __future__ import annotations

from .args import ArgumentParser, Namespace

HELP = "Start one or more stopped containers"


def register(p: ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true",
                   help="print the container's output until it exits, and exit with its status")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from ..errors import UsageError
    from .common import for_each

    if args.attach:
        if len(args.containers) > 1:
            raise UsageError("you cannot start and attach multiple containers at once")
        return _start_attached(args.containers[0])
    return for_each(args.containers, api.start_container)


def _start_attached(ref: str) -> int:
    """Start, then copy the container's log (from where it stands now) until it stops."""
    import signal

    from ..api import containers as api
    from .logs import print_entries

    container = api.get_container(ref)
    output = api.container_logs(container.id, tail=0, follow=True)   # from the end, as of now
    api.start_container(container.id)
    # Forward ^C and the like to the container, as docker's --sig-proxy does.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: _forward(container.id, signum))
    print_entries(output, timestamps=False)
    return api.wait_container(container.id)


def _forward(container_id: str, signum: int) -> None:
    from ..api import containers as api
    from ..errors import LaminaError

    try:
        api.kill_container(container_id, signum)
    except LaminaError:
        pass    # it has stopped already
