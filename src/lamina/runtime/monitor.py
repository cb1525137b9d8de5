"""The supervisor of a container: in the foreground, ``lamina run`` itself; detached, a monitor.

``supervise()`` runs a container once, from network to exit status, holding its monitor lock
throughout (containers.py): it sets the network up, runs the container (run.py: overlay,
crun, signals, exit status), releases the network, records the exit code and time, and
removes the container when it was run with --rm. A container that cannot start keeps the
status "created" with the error and its exit code (125, 126, 127), as Docker's does.

A detached container's supervisor is its own small process, lamina's conmon:
``python -m lamina.runtime.monitor ID FD``, started by ``spawn()``. It forks at once, and the
first process exits, so the monitor is nobody's child and outlives the lamina that started it.
It is a child subreaper while the container runs (process.py), so it can wait for the
container's init and get its exit status. Its stdout and stderr are pipes that a thread
copies into the container's log: the container writes there, and so do run.py's relays (a
pty's output with -t). With -i the
container's stdin is a pipe the monitor keeps open and never writes, so the container does not
see an end of input, as with Docker when nothing is attached. Once the container's process
runs (run_container's ``on_started``), the monitor reports to ``spawn`` on pipe FD: JSON
``{"exit_code": 0}``, or the error and its exit code when the container could not start.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import LaminaError
from .containers import (EXIT_UNKNOWN, Container, ContainerConflictError, ContainerStore,
                         LogWriter, now, parse_extra_host, run_lowers)
from .errors import ContainerError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from .network import NetworkAttachment

LOCK_TIMEOUT = 5.0      # a sweep may hold the lock of a container being started, briefly


def supervise(containers: ContainerStore, container_id: str, *,
              on_started: Callable[[], None] | None = None, foreground: bool = False) -> int:
    """Run the container to its end; its exit status. When it cannot start, the error (a
    ContainerError with Docker's exit code, or a NetworkError) is recorded and raised.
    ``on_started`` is called once the container's process exists. ``foreground``: attached
    to our stdio (``lamina run`` without -d), which one runtime call can do."""
    lock = containers.lock(container_id, timeout=LOCK_TIMEOUT)
    if lock is None:
        raise ContainerConflictError(f"container {container_id[:12]} is already running")
    code = EXIT_UNKNOWN
    try:
        container = containers.load(container_id)
        if container is None:
            raise ContainerError(f"container {container_id[:12]} was removed")
        code = _run(containers, container, on_started, foreground)
        return code
    except LaminaError as err:
        code = err.exit_code
        raise
    finally:
        # For `wait` on a --rm container whose record is gone by the time it reads.
        os.ftruncate(lock, 0)
        os.pwrite(lock, f"{code}\n".encode(), 0)
        os.close(lock)


def _run(containers: ContainerStore, c: Container, on_started: Callable[[], None] | None,
         foreground: bool = False) -> int:
    from .network import attach, detach
    from .run import run_container

    options = c.run_options
    cdir = containers.path(c.id)
    if c.lowers is None:
        raise ContainerError(f"the image of container {c.id[:12]} was never unpacked",
                             hint="remove the container and create it again")
    # The volumes are bound as their data directories; --rm is done here, once the network is
    # released: run.py must keep the container's directory.
    binds: tuple[str, ...] = ()
    if options.binds or c.volumes:      # else `run` need not import volumes.py
        from .volumes import VolumeStore, bind_specs, host_binds
        binds = (*host_binds(options.binds),
                 *bind_specs(VolumeStore(containers.root), c.volume_mounts))
    run_options = dataclasses.replace(options, remove=False, binds=binds)
    ports = []
    if c.publish:
        from .ports import PortMapping
        ports = [PortMapping.from_json(p) for p in c.publish]
    started_pid = 0

    def started(pid: int) -> None:
        nonlocal started_pid
        started_pid = pid
        containers.update(c.id, pid=pid)
        if on_started is not None:
            on_started()

    # Once the container has exited, its network is released in a thread (CNI DEL is the
    # slowest part of the clean-up) while run_container deletes it from the runtime and
    # unmounts its root, and, with --rm, while its directory is removed. A kept container
    # waits for the release before its record says "exited", so that a failed one shows there.
    detaching: _Once | None = None
    try:
        lowers = run_lowers(cdir, c.lowers)
        attachment = attach(c.id, mode=options.network_mode, ports=ports,
                            hostname=options.hostname or c.id[:12], state_root=containers.root)
        detaching = _Once(lambda: detach(attachment, state_root=containers.root))
        try:
            attachment = _with_extra_hosts(attachment, c.extra_hosts)
            containers.update(c.id, status="running", started=now(), finished="", error="",
                              exit_code=0, pid=0, network=attachment.to_json(), runs=c.runs + 1)
            code = run_container(state_dir=containers.dir, lowers=lowers,
                                 image_config=c.image_config, options=run_options,
                                 network=attachment, on_started=started,
                                 on_exited=detaching.start if attachment.mode == "bridge"
                                 else None, volatile=options.remove, one_call=foreground)
        finally:
            if not options.remove:
                detaching.finish()
        containers.update(c.id, status="exited", exit_code=code, finished=now(), pid=0,
                          network=None)
        return code
    except BaseException as err:    # ^C while setting up included: the record must not stay
        failed = err if isinstance(err, LaminaError) else ContainerError(repr(err))
        containers.update(c.id, status="exited" if started_pid else "created",
                          exit_code=failed.exit_code, error=failed.message, finished=now(),
                          pid=0, network=None)
        raise
    finally:
        try:
            if options.remove:
                containers.delete(c, volumes=True)
        finally:
            if options.remove and detaching is not None:
                detaching.finish()      # the command returns once the network is gone


class _Once:
    """Runs ``action`` once: in a thread from ``start()``, or at ``finish()`` if not started;
    ``finish()`` returns when it is done and raises what it raised."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="detach")
            self._thread.start()

    def _run(self) -> None:
        try:
            self._action()
        except BaseException as err:    # handed to finish(), in the caller's thread
            self._error = err

    def finish(self) -> None:
        if self._thread is None:
            self._action()
            return
        self._thread.join()
        if self._error is not None:
            raise self._error


def _with_extra_hosts(attachment: "NetworkAttachment", extra_hosts: tuple[str, ...]
                      ) -> "NetworkAttachment":
    """The attachment with --add-host lines in /etc/hosts: after the localhost lines and
    before the container's own, where Docker puts them. host-gateway is the bridge's address
    (the host itself: 127.0.0.1 without a bridge)."""
    if not extra_hosts:
        return attachment
    lines = []
    for spec in extra_hosts:
        name, ip = parse_extra_host(spec)
        lines.append(f"{attachment.gateway or '127.0.0.1' if ip == 'host-gateway' else ip}"
                     f"\t{name}")
    entries = list(attachment.hosts_entries)
    at = len(entries) - 1 if attachment.ip_address else len(entries)
    return dataclasses.replace(attachment,
                               hosts_entries=tuple(entries[:at] + lines + entries[at:]))


# --- the detached monitor process -------------------------------------------------------------

def spawn(root: Path, container_id: str) -> None:
    """Start the monitor of a detached container; return once the container runs.

    Raises ContainerError, with the exit code the monitor reported, when it cannot start.
    """
    read_fd, write_fd = os.pipe()
    try:
        subprocess.run([sys.executable, "-m", __name__, container_id, str(write_fd)],
                       pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True, cwd="/", check=True,
                       env={**os.environ, "LAMINA_ROOT": str(root)})
    except (OSError, subprocess.CalledProcessError) as err:
        os.close(read_fd)
        raise ContainerError(f"cannot start the container's monitor: {err}") from None
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    try:
        report = json.loads(raw)
    except ValueError:
        report = {"exit_code": 125, "error": "the container's monitor died before it started"}
    if report["exit_code"] or report.get("error"):
        err = ContainerError(report.get("error") or "the container did not start")
        err.exit_code = report["exit_code"] or 125
        raise err


class _Report:
    """The monitor's one message to ``spawn``."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def send(self, exit_code: int = 0, error: str = "") -> None:
        with self._lock:
            if self._fd is None:
                return
            os.write(self._fd, json.dumps({"exit_code": exit_code, "error": error}).encode())
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def _output_to_log(log: Path, keep_stdin_open: bool) -> Iterator[None]:
    """Point our stdio at the container's log (see the module docstring)."""
    writer = LogWriter(log)
    streams = {}
    for fd, name in ((1, "stdout"), (2, "stderr")):
        read_end, write_end = os.pipe()     # not inheritable: crun gets only the dup'ed ends
        os.dup2(write_end, fd)
        os.close(write_end)
        streams[read_end] = name
    if keep_stdin_open:
        read_end, never_written = os.pipe()     # the write end stays open until we exit
        os.dup2(read_end, 0)
        os.close(read_end)
    pump = threading.Thread(target=_pump, args=(streams, writer), name="log", daemon=True)
    pump.start()
    try:
        yield
    finally:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (1, 2):   # our write ends go: the pump sees EOF once the container's do too
            os.dup2(devnull, fd)
        os.close(devnull)
        pump.join(timeout=10)
        writer.close()


def _pump(streams: dict[int, str], writer: LogWriter) -> None:
    open_fds = list(streams)
    while open_fds:
        ready, _, _ = select.select(open_fds, [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                writer.write(streams[fd], data)
            else:
                open_fds.remove(fd)
                os.close(fd)


def main(argv: list[str]) -> int:
    container_id, report_fd = argv[0], int(argv[1])
    if os.fork():
        os._exit(0)     # `spawn` waits for this first process only
    report = _Report(report_fd)
    try:
        containers = ContainerStore(Path(os.environ["LAMINA_ROOT"]))    # set by `spawn`
        container = containers.load(container_id)
        if container is None:
            raise ContainerError(f"No such container: {container_id}")
        with _output_to_log(containers.path(container_id) / "log",
                            keep_stdin_open=container.run_options.interactive):
            supervise(containers, container_id, on_started=report.send)
    except LaminaError as err:
        report.send(err.exit_code, str(err))
        return err.exit_code
    except BaseException as err:        # a bug: say so rather than leave `spawn` guessing
        report.send(125, f"the container's monitor failed: {err!r}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
