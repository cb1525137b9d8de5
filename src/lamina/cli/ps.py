"""``lamina ps [-a] [-q] [--no-trunc] [--format F]``: list containers as ``docker ps`` does."""
from __future__ import annotations


from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from datetime import datetime

    from ..runtime.containers import Container

HELP = "List containers"

HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "Status": "STATUS",
           "Ports": "PORTS", "Names": "NAMES", "State": "STATE", "Networks": "NETWORKS"}
TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
         "\t{{.Names}}")


def register(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("--format", metavar="FORMAT",
                   help="'table', 'table TEMPLATE', 'json' or a Go template over the fields "
                        ".ID .Image .Command .RunningFor .CreatedAt .Status .State .Ports "
                        ".Names .Networks")


def run(args: Namespace) -> int:
    from ..api import containers as api
    from .template import render_rows

    rows = [row(c, args.no_trunc) for c in api.list_containers(all=args.all)]
    fmt = "{{.ID}}" if args.quiet else args.format
    print(render_rows(fmt, rows, TABLE, HEADERS), end="")
    return 0


def row(c: "Container", no_trunc: bool = False) -> dict[str, str]:
    """One container's fields, keys in the order ``--format json`` prints them (sorted)."""
    from .format import parse_timestamp, since

    created = parse_timestamp(c.created)
    return {
        "Command": command_text(c.argv, no_trunc),
        # Go's time.Time.String() in local time, as docker prints CreatedAt
        "CreatedAt": created.astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z") if created
        else "",
        "ID": c.id if no_trunc else c.id[:12],
        "Image": c.image,
        "Names": c.name,
        "Networks": c.run_options.network_mode,
        "Ports": ports_text(c),
        "RunningFor": since(c.created),
        "State": c.status,
        "Status": status_text(c),
    }


def command_text(argv: tuple[str, ...], no_trunc: bool) -> str:
    """Docker's COMMAND: the arguments joined (those with a space in single quotes), cut to
    20 characters with an ellipsis, in double quotes."""
    text = " ".join(f"'{a}'" if " " in a else a for a in argv)
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def status_text(c: "Container", now: "datetime | None" = None) -> str:
    """Docker's STATUS: ``Up 3 seconds``, ``Exited (0) 2 minutes ago``, ``Created``."""
    from datetime import datetime, timezone

    from .format import human_duration, parse_timestamp

    now = now or datetime.now(timezone.utc)
    if c.status == "running":
        started = parse_timestamp(c.started) or now
        return "Up " + human_duration((now - started).total_seconds())
    if c.status == "exited":
        finished = parse_timestamp(c.finished) or now
        return (f"Exited ({c.exit_code}) "
                f"{human_duration((now - finished).total_seconds())} ago")
    return "Created"


def ports_text(c: "Container") -> str:
    """Docker's PORTS: ``127.0.0.1:8282->8080/tcp, 9000/tcp`` for a running container:
    the published ports (runs of consecutive ports as ranges), then the exposed ones."""
    if c.status != "running":
        return ""
    published = sorted(c.ports, key=lambda m: (m.container_port, m.protocol, m.host_ip))
    parts: list[str] = []
    run: list = []
    for m in published + [None]:     # None flushes the last run
        last = run[-1] if run else None
        if (m is not None and last is not None and m.host_ip == last.host_ip
                and m.protocol == last.protocol and m.container_port == last.container_port + 1
                and m.host_port == last.host_port + 1):
            run.append(m)
            continue
        if run:
            first = run[0]
            host = f"{first.host_port}-{last.host_port}" if len(run) > 1 else str(first.host_port)
            ctr = (f"{first.container_port}-{last.container_port}" if len(run) > 1
                   else str(first.container_port))
            parts.append(f"{first.host_ip or '0.0.0.0'}:{host}->{ctr}/{first.protocol}")
        run = [m] if m is not None else []
    mapped = {m.private for m in published}
    exposed = [key if "/" in key else f"{key}/tcp"
               for key in c.image_config.get("ExposedPorts") or {}]
    if c.run_options.network_mode == "bridge":
        parts += sorted(p for p in exposed if p not in mapped)
    return ", ".join(parts)
