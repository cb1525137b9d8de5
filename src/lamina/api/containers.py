"""The container commands as a Python API: run, create, start, stop, kill, rm, ps, logs, ...

    from lamina.api.containers import create_container, run, start_container, stop_container
    status = run("busybox", options=RunOptions(command=["echo", "hi"], remove=True))
    box = create_container("busybox", options=RunOptions(command=["sleep", "60"]))
    start_container(box.id)
    stop_container(box.name, timeout=2)

Each function works on the state root ``$LAMINA_ROOT`` (default ``/var/lib/lamina``), or on the
``store``'s, and first cleans up after supervisors that died (``ContainerStore.sweep``).
Containers are found by name, full ID or unique ID prefix. Nothing prints: values are returned,
failures raised as LaminaError with Docker's exit codes.

Who supervises a container (runtime/monitor.py): ``run`` runs it in the caller's process,
attached to its stdio, so the container ends with the caller; ``start_container`` starts a
monitor process that outlives the caller (``lamina run -d`` is create, then start).
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import LaminaError
from ..runtime.containers import (ROOT_PREFIX, Container, ContainerConflictError,
                                  ContainerStore, LogEntry, NoSuchContainerError, new_id, now,
                                  parse_extra_host, parse_signal, read_log)
from ..runtime.errors import ContainerError
from ..runtime.options import RunOptions

# `lamina run` imports this module: what only some commands or options use (volumes, ports,
# the image store's GC, crun) is imported inside the functions that need it.
TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from ..runtime.volumes import VolumeMount
    from ..store import Store

__all__ = [
    "Container", "ContainerPruneReport", "ImageNotLocalError", "NoSuchContainerError",
    "ContainerConflictError", "container_logs", "container_port", "create_container",
    "exec_run", "inspect_container", "kill_container", "list_containers", "prune_containers",
    "remove_container", "restart_container", "run", "start_container", "stop_container",
    "wait_container",
]

DEFAULT_STOP_TIMEOUT = 10       # seconds, as Docker's


class ImageNotLocalError(LaminaError):
    """The image is not in the store (the CLI pulls it first; the API leaves that to the caller,
    as Docker's API does)."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"No such image: {reference}",
                         hint=f"pull it with `lamina pull {reference}`, or `lamina load`, "
                              "`lamina import` or `lamina bootstrap` one")
        self.reference = reference     # as Docker shows it: busybox:latest


@dataclass(frozen=True)
class ContainerPruneReport:
    """What ``lamina container prune`` removed, and the bytes it freed."""

    removed: tuple[str, ...]    # container IDs
    reclaimed: int              # bytes


def _containers(store: "Store | None") -> ContainerStore:
    """The containers of ``store``'s root (the default root without one), swept."""
    if store is not None:
        containers = ContainerStore(store.root, store)
    else:
        # $LAMINA_ROOT as Store.open reads it, without importing the store (ps stays fast).
        containers = ContainerStore(Path(os.environ.get("LAMINA_ROOT") or "/var/lib/lamina"))
    containers.sweep()
    return containers


# --- create, run, start -----------------------------------------------------------------------

def create_container(image: str, *, options: RunOptions = RunOptions(),
                     publish: Sequence[str] = (), publish_all: bool = False,
                     extra_hosts: Sequence[str] = (), stop_signal: str | None = None,
                     store: "Store | None" = None) -> Container:
    """``docker create``: a container of ``image`` with ``options``, not started.

    ``publish`` are ``-p`` values, ``publish_all`` is ``-P``, ``extra_hosts`` are ``--add-host``
    values. The image is unpacked now, and kept (a GC root) until the container is removed.
    """
    from ..store import Store
    store = store or Store.open()
    return _create(_containers(store), store, image, options, publish, publish_all,
                   extra_hosts, stop_signal)


def run(image: str, *, options: RunOptions = RunOptions(), publish: Sequence[str] = (),
        publish_all: bool = False, extra_hosts: Sequence[str] = (),
        stop_signal: str | None = None, store: "Store | None" = None) -> int:
    """``docker run`` in the foreground: create the container, run it attached to our stdio
    (signals forwarded), and return its exit status. Raises ContainerError (exit code 125,
    126 or 127) when it cannot start."""
    from ..runtime.monitor import supervise
    from ..store import Store

    store = store or Store.open()
    containers = _containers(store)
    container = _create(containers, store, image, options, publish, publish_all, extra_hosts,
                        stop_signal)
    return supervise(containers, container.id, foreground=True)


def _create(containers: ContainerStore, store: "Store", image: str, options: RunOptions,
            publish: Sequence[str], publish_all: bool, extra_hosts: Sequence[str],
            stop_signal: str | None) -> Container:
    from ..image.reference import ImageReference
    from ..runtime.command import resolve_command
    from ..store import Roots
    from ..store.layout import ImageNotFoundError
    from ..store.unpack import unpack_image

    try:
        found = store.image(image)
    except ImageNotFoundError:
        shown = image if image.startswith("sha256:") else \
            ImageReference.parse(image).with_default_tag().familiar()
        raise ImageNotLocalError(shown) from None
    config = json.loads(found.config_bytes()).get("config") or {}
    argv = resolve_command(config, entrypoint=options.entrypoint, command=options.command)
    mappings = []
    if publish or publish_all:
        from ..runtime.ports import parse_publish, publish_all as exposed_mappings
        mappings = [m for spec in publish for m in parse_publish(spec)]
        if publish_all:
            mappings += exposed_mappings(config.get("ExposedPorts") or {})
    for spec in extra_hosts:
        parse_extra_host(spec)
    if stop_signal:
        parse_signal(stop_signal)
    volumes: list[VolumeMount] = []
    if options.binds or config.get("Volumes"):
        from ..runtime.volumes import plan_mounts
        volumes = plan_mounts(options.binds, list(config.get("Volumes") or {}),
                              [spec.partition(":")[0] for spec in options.tmpfs])
    record = containers.create(Container(
        id=new_id(), name=options.name or "", image=image,
        image_id=found.manifest().config.digest, image_digest=found.digest(), created=now(),
        argv=tuple(argv), image_config=config, options=_to_json(options),
        publish=tuple(m.to_json() for m in mappings), extra_hosts=tuple(extra_hosts),
        stop_signal=stop_signal or ""))
    try:
        # A --rm container's root needs no fsync: a crash takes the container with it.
        store.roots.put(ROOT_PREFIX + record.id, Roots(images=frozenset({found.digest()})),
                        durable=not options.remove)
        lowers = unpack_image(store, found)
        record = containers.update(record.id, lowers=tuple(str(p) for p in lowers),
                                   options=_to_json(replace(options, name=record.name)))
        if volumes:
            record = _add_volumes(containers, record, volumes)
        return record
    except BaseException:
        containers.delete(containers.load(record.id) or record, volumes=True)
        raise


def _add_volumes(containers: ContainerStore, record: Container,
                 planned: Sequence["VolumeMount"]) -> Container:
    """Make the container's volumes that do not exist yet and record them as its own; then
    fill those that are empty with the image's files at their mount points, as Docker does."""
    from ..runtime.containerfs import container_root
    from ..runtime.rootfs import resolve_in_root
    from ..runtime.volumes import VolumeStore, fill

    volumes = VolumeStore(containers.root)
    with volumes.locked():          # no `volume rm` between making a volume and recording it
        made = [replace(m, name=volumes.create(m.name or None, anonymous=m.anonymous).name)
                for m in planned]
        record = containers.update(record.id, volumes=tuple(m.to_json() for m in made))
    to_fill = [m for m in made if m.copy and not any(volumes.data(m.name).iterdir())]
    if to_fill:
        with container_root(containers, record) as view:
            for m in to_fill:
                fill(volumes.data(m.name), resolve_in_root(view.root, m.destination))
    return record


def _to_json(options: RunOptions) -> dict[str, Any]:
    from dataclasses import asdict
    return asdict(options)


def start_container(ref: str, *, store: "Store | None" = None) -> Container:
    """``docker start``: run a created or stopped container detached, under a monitor process
    that outlives the caller; return once it runs. A running container is left as it is."""
    from ..runtime.monitor import spawn

    containers = _containers(store)
    container = containers.get(ref)
    if container.status != "running":
        spawn(containers.root, container.id)
    return containers.load(container.id) or container


# --- stop, kill, restart, wait, remove --------------------------------------------------------

def stop_container(ref: str, *, timeout: float | None = None,
                   store: "Store | None" = None) -> Container:
    """``docker stop``: the stop signal (--stop-signal, the image's STOPSIGNAL, else SIGTERM),
    then SIGKILL after ``timeout`` seconds (default 10; negative: wait for ever). Returns
    once the container has stopped (at once if it was not running)."""
    containers = _containers(store)
    container = containers.get(ref)
    if container.status == "running":
        _stop(containers, container, DEFAULT_STOP_TIMEOUT if timeout is None else timeout)
    return containers.load(container.id) or container


def _stop(containers: ContainerStore, container: Container, timeout: float) -> None:
    from ..runtime.crun import Runtime

    runtime = Runtime()
    _signal(runtime, container, container.signal_to_stop)
    if containers.wait(container.id, None if timeout < 0 else timeout) is None:
        _signal(runtime, container, signal.SIGKILL)
        containers.wait(container.id)


def _signal(runtime, container: Container, signum: int) -> None:
    try:
        runtime.kill(container.id, signum)
    except ContainerError:
        if runtime.state(container.id) is not None:     # it runs, and still refuses
            raise


def kill_container(ref: str, signal_: str | int = "KILL", *,
                   store: "Store | None" = None) -> Container:
    """``docker kill``: send a signal (default SIGKILL) to the container's init."""
    from ..runtime.crun import Runtime

    containers = _containers(store)
    container = containers.get(ref)
    signum = parse_signal(signal_)
    if container.status != "running":
        raise ContainerConflictError(f"cannot kill container: {ref}: container "
                                     f"{container.id} is not running")
    Runtime().kill(container.id, signum)
    return container


def restart_container(ref: str, *, timeout: float | None = None,
                      store: "Store | None" = None) -> Container:
    """``docker restart``: stop (as ``stop_container``) then start."""
    container = stop_container(ref, timeout=timeout, store=store)
    return start_container(container.id, store=store)


def wait_container(ref: str, *, store: "Store | None" = None) -> int:
    """``docker wait``: block until the container stops; its exit code."""
    containers = _containers(store)
    container = containers.get(ref)
    code = containers.wait(container.id)
    assert code is not None     # no timeout
    return code


def remove_container(ref: str, *, force: bool = False, volumes: bool = False,
                     store: "Store | None" = None) -> Container:
    """``docker rm``: remove a container that is not running (``force``: kill it first), its
    files, and the GC root that kept its image; with ``volumes`` (``-v``), its anonymous
    volumes too."""
    containers = _containers(store)
    container = containers.get(ref)
    if container.status == "running":
        if not force:
            raise ContainerConflictError(
                f'cannot remove container "/{container.name}": container is running: stop '
                "the container before removing or force remove")
        _stop(containers, container, 0)
    lock = containers.lock(container.id, timeout=5)
    if lock is None:
        if containers.load(container.id) is None:   # a --rm container removed itself
            return container
        raise ContainerConflictError(f"container {container.id[:12]} is being started")
    try:
        containers.delete(containers.load(container.id) or container, volumes=volumes)
    finally:
        os.close(lock)
    return container


def prune_containers(*, store: "Store | None" = None) -> ContainerPruneReport:
    """``docker container prune``: remove every container that is not running."""
    from ..runtime.volumes import disk_usage

    containers = _containers(store)
    removed, reclaimed = [], 0
    for container in containers.list():
        if container.status == "running":
            continue
        lock = containers.lock(container.id)
        if lock is None:        # being started right now
            continue
        try:
            size = disk_usage(containers.path(container.id))
            containers.delete(container)
        finally:
            os.close(lock)
        removed.append(container.id)
        reclaimed += size
    return ContainerPruneReport(tuple(removed), reclaimed)


# --- looking -----------------------------------------------------------------------------------

def list_containers(*, all: bool = False, store: "Store | None" = None) -> list[Container]:
    """``docker ps``: the running containers (``all``: every one), the newest first."""
    found = _containers(store).list()
    return found if all else [c for c in found if c.status == "running"]


def get_container(ref: str, *, store: "Store | None" = None) -> Container:
    """One container by name, full ID or unique ID prefix."""
    return _containers(store).get(ref)


def container_logs(ref: str, *, tail: int | None = None, follow: bool = False,
                   store: "Store | None" = None) -> Iterator[LogEntry]:
    """``docker logs``: the container's output (the last ``tail`` lines), and with ``follow``
    what it writes next, until it stops. What is there is read now, the rest as iterated."""
    containers = _containers(store)
    container = containers.get(ref)
    path = containers.path(container.id) / "log"
    entries, offset = read_log(path, tail=tail)
    if not follow:
        return iter(entries)
    return _follow(containers, container.id, path, entries, offset)


def _follow(containers: ContainerStore, container_id: str, path: Path, entries: list[LogEntry],
            offset: int) -> Iterator[LogEntry]:
    yield from entries
    while True:
        running = containers.supervised(container_id)
        entries, offset = read_log(path, offset=offset)
        yield from entries
        if not running:     # read once more after it stopped: nothing is written after that
            return
        if not entries:
            time.sleep(0.1)


def container_port(ref: str, private: str | None = None, *,
                   store: "Store | None" = None) -> list[str]:
    """``docker port``: ``8080/tcp -> 0.0.0.0:8282`` lines, or the host addresses of one
    container port (``8080``, ``8080/udp``)."""
    from ..runtime.ports import port_lines

    container = _containers(store).get(ref)
    lines = port_lines(container.ports, private)
    if private is not None and not lines:
        shown = private if "/" in private else f"{private}/tcp"
        raise NoSuchContainerError(f"No public port '{shown}' published for {ref}")
    return lines


def exec_run(ref: str, argv: Sequence[str], *, env: Sequence[str] = (),
             user: str | None = None, workdir: str | None = None, tty: bool = False,
             interactive: bool = False, detach: bool = False,
             store: "Store | None" = None) -> int:
    """``docker exec``: run ``argv`` in the running container; its exit status (126 or 127
    when it cannot run, as ``run``'s)."""
    from ..runtime.exec import exec_in_container

    containers = _containers(store)
    container = containers.get(ref)
    if container.status != "running" or container.pid == 0:
        raise ContainerConflictError(f"container {container.id} is not running")
    return exec_in_container(containers.path(container.id), container.id, argv, env=env,
                             user=user, workdir=workdir, tty=tty, interactive=interactive,
                             detach=detach)


def inspect_container(ref: str, *, store: "Store | None" = None) -> dict[str, Any]:
    """The container as ``docker container inspect`` shows it (Docker's keys)."""
    containers = _containers(store)
    c = containers.get(ref)
    options = c.run_options
    network = c.network or {}
    state = {
        "Status": c.status, "Running": c.status == "running", "Paused": False,
        "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": c.pid,
        "ExitCode": c.exit_code, "Error": c.error,
        "StartedAt": c.started or "0001-01-01T00:00:00Z",
        "FinishedAt": c.finished or "0001-01-01T00:00:00Z",
    }
    ports: dict[str, Any] = {key: None for key in c.image_config.get("ExposedPorts") or {}}
    for m in c.ports:
        ports.setdefault(m.private, None)
        ports[m.private] = (ports[m.private] or []) + [
            {"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}]
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.argv[0],
        "Args": list(c.argv[1:]),
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": str(containers.path(c.id) / "resolv.conf"),
        "HostnamePath": str(containers.path(c.id) / "hostname"),
        "HostsPath": str(containers.path(c.id) / "hosts"),
        "LogPath": str(containers.path(c.id) / "log"),
        "Name": "/" + c.name,
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": list(options.binds), "NetworkMode": options.network_mode,
            "PortBindings": _port_bindings(c),
            "AutoRemove": options.remove, "Privileged": options.privileged,
            "CapAdd": list(options.cap_add) or None, "CapDrop": list(options.cap_drop) or None,
            "SecurityOpt": list(options.security_opt) or None,
            "ReadonlyRootfs": options.read_only,
            "Tmpfs": {spec.partition(":")[0]: spec.partition(":")[2] for spec in options.tmpfs},
            "Memory": options.memory or 0, "NanoCpus": int((options.cpus or 0) * 1e9),
            "PidsLimit": options.pids_limit, "ExtraHosts": list(c.extra_hosts) or None,
            "Dns": list(options.dns), "DnsSearch": list(options.dns_search),
            "DnsOptions": list(options.dns_options),
        },
        "Mounts": _mounts(containers, c),
        "Config": {
            "Hostname": options.hostname or c.id[:12],
            "User": options.user or c.image_config.get("User", ""),
            "Tty": options.tty, "OpenStdin": options.interactive,
            "Env": _env(c), "Cmd": list(options.command) or c.image_config.get("Cmd"),
            "Image": c.image,
            "WorkingDir": options.workdir or c.image_config.get("WorkingDir", ""),
            "Entrypoint": c.image_config.get("Entrypoint") if options.entrypoint is None
            else [options.entrypoint] if isinstance(options.entrypoint, str)
            else list(options.entrypoint),
            "ExposedPorts": c.image_config.get("ExposedPorts"),
            "Labels": c.image_config.get("Labels") or {},
            "StopSignal": c.stop_signal or c.image_config.get("StopSignal"),
        },
        "NetworkSettings": {
            "Ports": ports,
            "IPAddress": network.get("ip_address") or "",
            "Gateway": network.get("gateway") or "",
        },
    }


def _mounts(containers: ContainerStore, c: Container) -> list[dict[str, Any]]:
    """Docker's Mounts: the host binds, then the volumes."""
    from ..runtime.spec import parse_bind
    from ..runtime.volumes import VolumeStore, host_binds

    binds = [{"Type": "bind", "Source": b.source, "Destination": b.destination, "Mode": "",
              "RW": not b.read_only, "Propagation": b.propagation}
             for b in map(parse_bind, host_binds(c.run_options.binds))]
    volumes = VolumeStore(containers.root)
    return binds + [{"Type": "volume", "Name": m.name, "Source": str(volumes.data(m.name)),
                     "Destination": m.destination, "Driver": "local", "Mode": "",
                     "RW": not m.read_only, "Propagation": ""} for m in c.volume_mounts]


def _port_bindings(c: Container) -> dict[str, list[dict[str, str]]]:
    from ..runtime.ports import PortMapping

    bindings: dict[str, list[dict[str, str]]] = {}
    for m in map(PortMapping.from_json, c.publish):
        port = str(m.host_port or "") + (f"-{m.host_port_end}" if m.host_port_end else "")
        bindings.setdefault(m.private, []).append({"HostIp": m.host_ip, "HostPort": port})
    return bindings


def _env(c: Container) -> list[str]:
    """Config.Env as Docker shows it: the image's Env with -e applied (environment() also adds
    HOSTNAME and HOME for the process; Docker's record has neither)."""
    from ..runtime.spec import environment

    options = c.run_options
    env = environment(c.image_config.get("Env") or (), options.env, hostname="",
                      tty=options.tty, home="")
    return [e for e in env if e not in ("HOSTNAME=", "HOME=")]
