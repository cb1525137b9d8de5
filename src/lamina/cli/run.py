"""``lamina run [OPTIONS] IMAGE [COMMAND] [ARG...]``: create a container and run it.

In the foreground the container's stdio is ours, Ctrl+C stops it, and lamina exits with its
status (125, 126, 127 when it cannot start, as docker). With -d it runs under a monitor process
and lamina prints its ID. The container options are shared with ``create`` (create.py).
"""
from __future__ import annotations

import os
import sys

from .args import REMAINDER, ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from ..runtime.options import RunOptions

HELP = "Create and run a new container from an image"
HOST_PORTS_WARNING = "WARNING: Published ports are discarded when using host network mode"


def register(p: ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true",
                   help="run the container in the background and print its ID")
    register_container_options(p)


def register_container_options(p: ArgumentParser) -> None:
    """The options of ``run`` and ``create``, then IMAGE [COMMAND] [ARG...]."""
    many: dict[str, Any] = {"action": "append", "default": []}
    p.add_argument("-e", "--env", metavar="KEY=VALUE", **many,
                   help="set an environment variable (KEY alone: its value here, if set)")
    p.add_argument("--env-file", metavar="FILE", **many,
                   help="read environment variables from a file, one KEY=VALUE a line")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the container")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]",
                   help="user name or UID, and group name or GID")
    # Docker's -h is taken by --help here.
    p.add_argument("--hostname", help="the container's host name")
    p.add_argument("--name", help="a name for the container")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-p", "--publish", metavar="[IP:][HOST:]CONTAINER[/PROTO]", **many,
                   help="publish a container port on the host")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every exposed port on a free host port")
    p.add_argument("--network", "--net", default="bridge", metavar="MODE",
                   help="bridge (default), host or none")
    p.add_argument("--add-host", metavar="HOST:IP", **many,
                   help="add a line to /etc/hosts (IP may be host-gateway)")
    p.add_argument("--dns", metavar="IP", **many,
                   help="a name server for the container (instead of the host's)")
    p.add_argument("--dns-search", metavar="DOMAIN", **many,
                   help="a DNS search domain (. alone: none)")
    p.add_argument("--dns-option", metavar="OPTION", **many,
                   help="a resolv.conf option, e.g. ndots:2")
    p.add_argument("-v", "--volume", metavar="HOST|NAME:CONTAINER[:ro]", **many,
                   help="bind mount a host path, or mount a named volume (made when missing); "
                        "a container path alone mounts a new anonymous volume")
    p.add_argument("--mount", metavar="type=bind|volume|tmpfs,...", **many,
                   help="a bind, volume or tmpfs mount, in docker's --mount syntax")
    p.add_argument("--tmpfs", metavar="PATH[:OPTIONS]", **many, help="mount a tmpfs")
    p.add_argument("--read-only", action="store_true",
                   help="mount the container's root file system read-only")
    p.add_argument("--privileged", action="store_true",
                   help="give every capability and device to the container")
    p.add_argument("--cap-add", metavar="CAP", **many, help="add a Linux capability")
    p.add_argument("--cap-drop", metavar="CAP", **many, help="drop a Linux capability")
    p.add_argument("--security-opt", metavar="OPT", **many,
                   help="no-new-privileges[:true|false] or seccomp=unconfined")
    p.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", type=float, help="number of CPUs (e.g. 0.5)")
    p.add_argument("--pids-limit", type=int, metavar="N", help="limit on processes")
    p.add_argument("--ulimit", metavar="NAME=SOFT[:HARD]", **many, help="a resource limit")
    p.add_argument("--entrypoint", help="replace the image's ENTRYPOINT (and drop its CMD)")
    p.add_argument("--stop-signal", metavar="SIGNAL",
                   help="the signal that stops the container (default: the image's, or TERM)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]",
                   help="replaces the image's CMD")


def run(args: Namespace) -> int:
    from ..dataclass_cache import compiled_dataclasses

    with compiled_dataclasses("lamina"):    # start-up time: see there
        return _run(args)


def _run(args: Namespace) -> int:
    from ..api import containers as api
    from .common import open_store

    options = run_options(args)
    store = open_store(args)
    pull_if_missing(args.image, store, args)
    if not args.detach:
        return api.run(args.image, options=options, store=store, **create_arguments(args))
    container = api.create_container(args.image, options=options, store=store,
                                     **create_arguments(args))
    api.start_container(container.id, store=store)
    print(container.id)
    return 0


def pull_if_missing(image: str, store: Any, args: Namespace) -> None:
    """As ``docker run`` and ``create`` do: an image not in the store is pulled first."""
    from ..store.layout import ImageNotFoundError

    try:
        store.image(image)
    except ImageNotFoundError:
        from .pull import pull_one
        shown = image
        if not image.startswith("sha256:"):
            from ..image.reference import ImageReference
            shown = ImageReference.parse(image).with_default_tag().familiar()
        print(f"Unable to find image '{shown}' locally", file=sys.stderr, flush=True)
        pull_one(image, store=store, platform=getattr(args, "platform", None), out=sys.stderr,
                 quiet=False)


def create_arguments(args: Namespace) -> dict[str, Any]:
    """The arguments of ``create_container`` that are not RunOptions."""
    if args.network == "host" and (args.publish or args.publish_all):
        print(HOST_PORTS_WARNING, file=sys.stderr)
    return {"publish": args.publish, "publish_all": args.publish_all,
            "extra_hosts": args.add_host, "stop_signal": args.stop_signal}


def run_options(args: Namespace) -> "RunOptions":
    from ..runtime.options import RunOptions, parse_bytes

    binds, tmpfs = list(args.volume), list(args.tmpfs)
    for spec in args.mount:
        kind, value = parse_mount(spec)
        (tmpfs if kind == "tmpfs" else binds).append(value)
    return RunOptions(
        command=args.command, entrypoint=args.entrypoint,
        env=environment(args.env_file, args.env), workdir=args.workdir,
        user=args.user, hostname=args.hostname, tty=args.tty, interactive=args.interactive,
        name=args.name, remove=args.rm, binds=binds, tmpfs=tmpfs, read_only=args.read_only,
        network_mode="bridge" if args.network == "default" else args.network,
        dns=args.dns, dns_search=args.dns_search, dns_options=args.dns_option,
        privileged=args.privileged, cap_add=args.cap_add, cap_drop=args.cap_drop,
        security_opt=args.security_opt, memory=parse_bytes(args.memory) if args.memory else None,
        cpus=args.cpus, pids_limit=args.pids_limit, ulimits=args.ulimit)


def environment(env_files: list[str], env: list[str]) -> list[str]:
    """--env-file, then -e (which wins); -e KEY alone takes KEY's value here, and unsets it in
    the container when it has none here, as docker does."""
    out = [e for path in env_files for e in read_env_file(path)]
    return out + [e if "=" in e or e not in os.environ else f"{e}={os.environ[e]}" for e in env]


def read_env_file(path: str) -> list[str]:
    """Docker's --env-file: KEY=VALUE lines taken as they are (no quotes, no expansion);
    blank lines and # comments skipped; KEY alone takes its value here, or is left out."""
    from ..errors import UsageError

    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise UsageError(f"--env-file {path}: {err.strerror}") from None
    env = []
    for number, line in enumerate(lines, 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"{path}:{number}: invalid variable name {key!r}")
        if has_value:
            env.append(f"{key}={value}")
        elif key in os.environ:
            env.append(f"{key}={os.environ[key]}")
    return env


def parse_mount(spec: str) -> tuple[str, str]:
    """``--mount type=bind,source=/a,target=/b,readonly`` as ("bind", "/a:/b:ro"),
    ``type=volume,source=v,target=/b`` as ("volume", "v:/b") (no source: ":/b", an anonymous
    volume), and ``type=tmpfs,target=/t,tmpfs-size=64m`` as ("tmpfs", "/t:size=67108864")."""
    from ..errors import UsageError
    from ..runtime.options import parse_bytes

    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, has_value, value = item.partition("=")
        fields[key.strip().lower()] = value if has_value else "true"
    kind = fields.pop("type", "volume")
    source = fields.pop("source", None) or fields.pop("src", None)
    target = next((fields.pop(k) for k in ("target", "destination", "dst") if k in fields), None)
    if not target:
        raise UsageError(f"invalid --mount {spec!r}: target is required")
    readonly = next((fields.pop(k) for k in ("readonly", "ro") if k in fields), "false")
    fields.pop("consistency", None)     # a Docker Desktop hint, meaningless here
    if kind == "bind" and source:
        if not os.path.exists(source):
            raise UsageError(f'invalid mount config for type "bind": bind source path does '
                             f"not exist: {source}")
        modes = ["ro"] if readonly.lower() in ("true", "1") else []
        if "bind-propagation" in fields:
            modes.append(fields.pop("bind-propagation"))
        value = f"{source}:{target}" + (f":{','.join(modes)}" if modes else "")
    elif kind == "tmpfs" and not source:
        options = []
        if "tmpfs-size" in fields:
            options.append(f"size={parse_bytes(fields.pop('tmpfs-size'))}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields.pop('tmpfs-mode')}")
        value = f"{target}:{','.join(options)}" if options else target
    elif kind == "volume" and not (source or "").startswith("/"):
        modes = ["ro"] if readonly.lower() in ("true", "1") else []
        if fields.pop("volume-nocopy", "false").lower() in ("true", "1"):
            modes.append("nocopy")
        value = f"{source or ''}:{target}" + (f":{','.join(modes)}" if modes else "")
    else:
        raise UsageError(f"invalid --mount {spec!r}", hint="type=bind needs a source, "
                         "type=volume a volume name or none, type=tmpfs none")
    if fields:
        raise UsageError(f"invalid --mount {spec!r}: unknown key {next(iter(fields))!r}")
    return kind, value
