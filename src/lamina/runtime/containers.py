"""Containers on disk: one directory per container, its state record, its log, and its lock.

    <root>/containers/<id>/
      state.json     the record (``Container``); every change replaces it whole (temp + rename)
      monitor.lock   held (flock, exclusive) by the process supervising the container while it
                     runs: its monitor when detached, the ``lamina run`` itself in the
                     foreground. The kernel drops the lock when that process dies, even by
                     SIGKILL, so a "running" record whose lock is free has lost its supervisor;
                     ``sweep`` cleans up after it. The supervisor writes the exit code into the
                     file before letting go, for a ``wait`` on a --rm container that is gone.
      log            the container's output, as Docker's json-file driver writes it: one
                     ``{"log": "line\\n", "stream": "stdout", "time": "<RFC 3339 ns>"}`` a line
      upper/ work/ merged/ bundle/ hosts ...   one run's directories (runtime/run.py)
      layers/<n>     the upper directories of earlier runs, stacked under the next run's
                     (``run_lowers``), so a restarted container keeps its file changes

Names are unique: a record is created under ``containers/.lock``, which also serialises every
read-modify-write of a record. state.json is not fsync'ed: a record matters only while its
processes live, and atomic replacement is enough for those to survive a ``kill -9``.

    <root>/containers/names/<name>   the ID of the container called <name>

The name index makes ``create`` and a lookup by name read one record, not all of them. It is
written under the lock: the name file before the record, and removed after the directory, so
a crash in between leaves at worst a name file whose container is gone, which counts as free.
A store made before the index gets it from the records on the first ``create``.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from ..store.locks import directory_lock
from .errors import ContainerError
from .options import RunOptions

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from ..store import Store
    from .ports import PortMapping
    from .volumes import VolumeMount

ROOT_PREFIX = "container-"          # the GC root that keeps a container's image
EXIT_UNKNOWN = 255                  # the code of a container whose supervisor died with it


class NoSuchContainerError(LaminaError):
    """Docker's ``No such container: NAME``; exit status 1, as docker's."""

    exit_code = 1


class ContainerConflictError(LaminaError):
    """An ambiguous ID prefix, a container in the wrong state for what was asked."""

    exit_code = 1


def now() -> str:
    """The current time in RFC 3339 with nanoseconds, UTC, as Docker records times."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


@dataclass(frozen=True)
class Container:
    """A container's record. Values never change; ``ContainerStore.update`` writes a new one."""

    id: str                             # 64 hex digits
    name: str
    image: str                          # the image as the user named it
    image_id: str                       # its config digest
    image_digest: str                   # its manifest digest, which the GC root names
    created: str                        # RFC 3339
    argv: tuple[str, ...]               # ENTRYPOINT + CMD as resolved at create
    image_config: dict[str, Any]        # the image config's "config" (Docker's keys)
    options: dict[str, Any]             # the RunOptions, as JSON
    publish: tuple[dict[str, Any], ...] = ()    # requested -p/-P mappings (PortMapping JSON)
    extra_hosts: tuple[str, ...] = ()   # --add-host as "name:ip" (ip may be host-gateway)
    stop_signal: str = ""               # --stop-signal; empty: the image's, else SIGTERM
    lowers: tuple[str, ...] | None = None   # the image's snapshots, topmost first; None
                                            # until the image is unpacked
    status: str = "created"             # created | running | exited
    pid: int = 0                        # the container's init, while it runs
    exit_code: int = 0
    error: str = ""                     # why it could not start, or why it stopped
    started: str = ""
    finished: str = ""
    network: dict[str, Any] | None = None   # the NetworkAttachment while it runs
    runs: int = 0                       # how many times it was started
    volumes: tuple[dict[str, Any], ...] = ()    # the volumes it mounts (VolumeMount JSON)

    @property
    def run_options(self) -> RunOptions:
        return RunOptions(**self.options)

    @property
    def ports(self) -> tuple[PortMapping, ...]:
        """The published ports with their host ports, while it runs."""
        from .ports import PortMapping
        return tuple(PortMapping.from_json(p) for p in (self.network or {}).get("ports", ()))

    @property
    def volume_mounts(self) -> "tuple[VolumeMount, ...]":
        from .volumes import VolumeMount
        return tuple(VolumeMount.from_json(v) for v in self.volumes)

    @property
    def signal_to_stop(self) -> int:
        return parse_signal(self.stop_signal or self.image_config.get("StopSignal") or "TERM")

    def to_json(self) -> bytes:
        # Compact: with an indent, json drops its C encoder (~4x slower on a run's 5 writes).
        # The fields hold JSON values already: no dataclasses.asdict, which deep-copies them.
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Container":
        data = json.loads(raw)
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) and "tuple" in str(known[k].type) else v
                  for k, v in data.items() if k in known}
        return cls(**values)


def parse_signal(text: str | int) -> int:
    """A signal by name (``TERM``, ``SIGTERM``, ``sigkill``) or number (``9``)."""
    value = str(text).strip().upper()
    if value.isdigit():
        number = int(value)
        if 0 < number < signal.NSIG:
            return number
    else:
        with contextlib.suppress(KeyError):
            return int(signal.Signals["SIG" + value.removeprefix("SIG")])
    raise ContainerError(f"invalid signal: {text}", hint="use a name such as TERM or a number")


def parse_extra_host(spec: str) -> tuple[str, str]:
    """``--add-host name:ip`` (or ``name=ip``) as (name, ip); ip may be ``host-gateway``."""
    import ipaddress

    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    if not name or not ip:
        raise ContainerError(f'bad format for add-host: "{spec}"', hint="use NAME:IP")
    if ip != "host-gateway":
        try:
            ip = str(ipaddress.ip_address(ip.strip("[]")))
        except ValueError:
            raise ContainerError(f'invalid IP address in add-host: "{ip}"') from None
    return name, ip


# --- names ------------------------------------------------------------------------------------

_ADJECTIVES = ("agile amber bold brave bright calm cheerful clever cosmic crisp daring eager "
               "fancy gentle golden happy humble jolly keen lively lucid merry mellow nimble "
               "patient proud quiet rapid serene sharp silent smooth steady swift tender "
               "vivid warm wise witty zesty").split()
_NOUNS = ("acorn aspen badger beacon birch canyon cedar comet cypress delta dune ember falcon "
          "fern fjord glacier harbor heron island juniper kestrel lagoon lantern lynx maple "
          "meadow mesa nebula orchid otter pebble pine quartz raven reef sparrow spruce "
          "summit tundra walnut willow").split()


def _pick(words: list[str]) -> str:
    # os.urandom rather than secrets: `secrets` imports hmac and random, a few ms of every run.
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def random_name() -> str:
    """A name for a container started without --name: ``adjective_noun``, like Docker's."""
    return f"{_pick(_ADJECTIVES)}_{_pick(_NOUNS)}"


# --- the store of records ---------------------------------------------------------------------

class ContainerStore:
    """The containers under one state root."""

    def __init__(self, root: Path, store: "Store | None" = None) -> None:
        self.root = Path(root)
        self.dir = self.root / "containers"
        self._store = store

    @property
    def store(self) -> "Store":
        """The image store, opened on first use (only removals need it, for the GC root)."""
        if self._store is None:
            from ..store import Store
            self._store = Store.open(self.root)
        return self._store

    def path(self, container_id: str) -> Path:
        return self.dir / container_id

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return directory_lock(self.dir)

    def _write(self, container: Container) -> None:
        target = self.path(container.id) / "state.json"
        partial = target.with_name(".state.json.tmp")
        partial.write_bytes(container.to_json())
        os.replace(partial, target)

    def load(self, container_id: str) -> Container | None:
        try:
            return Container.from_json((self.path(container_id) / "state.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list(self) -> list[Container]:
        """Every container, the newest first (as ``docker ps`` lists them)."""
        try:
            ids = [e.name for e in os.scandir(self.dir) if e.is_dir() and len(e.name) == 64]
        except FileNotFoundError:
            return []
        found = [c for c in map(self.load, ids) if c is not None]
        return sorted(found, key=lambda c: c.created, reverse=True)

    def create(self, container: Container) -> Container:
        """Record a new container; its name (``random_name()`` when empty) must be free."""
        with self._locked():
            self._index_names()
            name = container.name
            if not name:
                name = random_name()
                while self._named(name) is not None:
                    name = f"{random_name()}{int.from_bytes(os.urandom(1), 'big') % 100}"
            elif (owner := self._named(name)) is not None:  # docker run and create exit 125
                raise ContainerError(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{owner.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name.")
            container = dataclasses.replace(container, name=name)
            self._name_file(name).write_text(container.id)
            self.path(container.id).mkdir()
            self._write(container)
        return container

    # --- the name index (see the module docstring); call with the lock held -------------------

    def _name_file(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ContainerError(f"invalid container name {name!r}, "
                                 "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        return self.dir / "names" / name

    def _named(self, name: str) -> Container | None:
        """The container called ``name``, by its name file; None when the name is free."""
        try:
            container_id = self._name_file(name).read_text()
        except FileNotFoundError:
            return None
        found = self.load(container_id) if len(container_id) == 64 else None
        return found if found is not None and found.name == name else None

    def _index_names(self) -> None:
        """Make names/ from the records when it is missing (a store from before the index)."""
        names = self.dir / "names"
        if names.is_dir():
            return
        partial = self.dir / ".names.tmp"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for c in self.list():
            if c.name:
                (partial / c.name).write_text(c.id)
        os.rename(partial, names)

    def update(self, container_id: str, **changes: Any) -> Container:
        with self._locked():
            current = self.load(container_id)
            if current is None:
                raise NoSuchContainerError(f"No such container: {container_id}")
            updated = dataclasses.replace(current, **changes)
            self._write(updated)
        return updated

    def get(self, ref: str) -> Container:
        """Find a container as Docker does: its full ID, its name, then a unique ID prefix."""
        ref = ref.removeprefix("/")
        if len(ref) == 64 and (found := self.load(ref)) is not None:
            return found
        if ref and "/" not in ref and not ref.startswith(".") and (self.dir / "names").is_dir() \
                and (found := self._named(ref)) is not None:
            return found
        containers = self.list()
        for c in containers:
            if c.name == ref:
                return c
        matches = [c for c in containers if ref and c.id.startswith(ref)]
        if len(matches) > 1:
            raise ContainerConflictError(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NoSuchContainerError(f"No such container: {ref}",
                                       hint="`lamina ps -a` lists the containers")
        return matches[0]

    def delete(self, container: Container, *, volumes: bool = False) -> None:
        """Remove the container's directory and the GC root that keeps its image; with
        ``volumes``, its anonymous volumes too (those no other container uses)."""
        cdir = self.path(container.id)
        if os.path.ismount(cdir / "merged"):   # never walk into a mounted root file system
            raise ContainerError(f"{cdir / 'merged'} is still mounted; not removing {cdir}")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(cdir)
        if container.name and "/" not in container.name:
            with self._locked():
                name_file = self.dir / "names" / container.name
                with contextlib.suppress(FileNotFoundError):
                    if name_file.read_text() == container.id:  # not a new container's
                        name_file.unlink()
        self.store.roots.remove(ROOT_PREFIX + container.id)
        if not (volumes and container.volumes):
            return
        anonymous = [m.name for m in container.volume_mounts if m.anonymous and m.name]
        if anonymous:
            from .volumes import VolumeStore

            store = VolumeStore(self.root)
            with store.locked():
                in_use = {m.name for c in self.list() for m in c.volume_mounts}
                for name in anonymous:
                    if name not in in_use and store.find(name) is not None:
                        store.remove(name)

    # --- supervision --------------------------------------------------------------------------

    def lock(self, container_id: str, timeout: float = 0.0) -> int | None:
        """Take the container's monitor lock, trying for up to ``timeout`` seconds; its fd, or
        None when another process holds it (or the container is gone)."""
        try:
            fd = os.open(self.path(container_id) / "monitor.lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)

    def supervised(self, container_id: str) -> bool:
        """Whether a live process holds the container's lock (it runs, or is starting)."""
        fd = self.lock(container_id)
        if fd is None:
            return self.path(container_id).exists()
        os.close(fd)
        return False

    def wait(self, container_id: str, timeout: float | None = None) -> int | None:
        """Block until nothing supervises the container; its exit code, None on timeout."""
        try:
            fd = os.open(self.path(container_id) / "monitor.lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return EXIT_UNKNOWN         # removed before we could look
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | (0 if deadline is None else fcntl.LOCK_NB))
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return None
                    time.sleep(0.02)
            written = os.pread(fd, 16, 0).strip()
        finally:
            os.close(fd)
        record = self.load(container_id)
        if record is not None and record.status == "running":    # its supervisor died
            self.sweep()
            record = self.load(container_id)
        if record is not None:
            return record.exit_code
        return int(written) if written.isdigit() else EXIT_UNKNOWN     # gone with --rm

    # --- clean-up after dead supervisors ------------------------------------------------------

    def sweep(self) -> list[str]:
        """Clean up after supervisors that died (``kill -9`` of lamina or of a monitor).

        A "running" container whose lock is free is killed if it still runs, unmounted,
        deleted from the OCI runtime and recorded as exited (137 when it had to be killed,
        255 when it was gone); its network is released, and with --rm it is removed. The lock
        of each container cleaned is held meanwhile, so nobody starts it under our feet.
        Returns the IDs of the containers cleaned up.
        """
        networks = {p.stem for p in (self.root / "networks").glob("*.json")}
        held: dict[str, int] = {}
        cleaned = []
        try:
            for c in self.list():
                fd = self.lock(c.id)
                if fd is None:
                    continue
                held[c.id] = fd
                if c.status == "running" or self._has_leftovers(c):
                    self._clean_up(c)
                    cleaned.append(c.id)
            # A build's RUN containers live under builds/, not containers/: what a killed build
            # left is cleaned here, and while some build runs, networks without a container
            # of ours may be its RUN's (made before its directory): not stale.
            building = self._sweep_builds()
            # A network whose container is gone, or whose container nobody supervises, is stale.
            dead = {n for n in networks
                    if n in held or (not self.path(n).exists() and not building)}
            if dead:
                from .network import cleanup_stale
                cleanup_stale(self.root, live_container_ids=networks - dead)
            for cid in cleaned:
                c = self.load(cid)
                if c is not None and c.run_options.remove:
                    self.delete(c, volumes=True)
        finally:
            for fd in held.values():
                os.close(fd)
        return cleaned

    def _sweep_builds(self) -> bool:
        """Clean up after builds killed on the way (their directory unlocked): their RUN
        containers in the runtime, mounts and directory. True while some build runs."""
        parent = self.root / "builds"
        builds = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
        if not builds:
            return False
        from ..store.locks import is_abandoned
        dead = [p for p in builds if is_abandoned(p)]
        if dead:
            from .builddirs import remove_abandoned_builds
            from .crun import runtime_of
            for build in dead:
                for cdir in build.iterdir():
                    runtime = runtime_of(cdir.name)
                    if is_abandoned(build) and runtime.state(cdir.name) is not None:
                        with contextlib.suppress(ContainerError):
                            runtime.delete(cdir.name, force=True)
            remove_abandoned_builds(self.store)  # rechecks each under the store lock
        return len(dead) < len(builds)

    def _has_leftovers(self, c: Container) -> bool:
        """What a supervisor killed while it set the container up may have left."""
        from .crun import STATE_ROOT
        return (os.path.ismount(self.path(c.id) / "merged")
                or any((STATE_ROOT / rt / c.id).exists() for rt in ("crun", "runc")))

    def _clean_up(self, c: Container) -> None:
        from .crun import remove_cgroup_parents, runtime_of
        from .rootfs import unmount

        runtime = runtime_of(c.id)
        state = runtime.state(c.id)
        killed = state is not None and state.get("status") != "stopped"
        if state is not None:
            with contextlib.suppress(ContainerError):
                runtime.delete(c.id, force=True)        # kills what still runs
        unmount(self.path(c.id) / "merged")
        remove_cgroup_parents(f"/lamina/{c.id}")
        if c.status == "running":
            self.update(c.id, status="exited", exit_code=137 if killed else EXIT_UNKNOWN,
                        finished=now(), pid=0, network=None,
                        error="its supervising lamina process died")


# --- a container's directories for one run ----------------------------------------------------

def run_lowers(cdir: Path, image_lowers: tuple[str, ...]) -> list[Path]:
    """Make ``cdir`` ready for another run; the lower directories for it, topmost first.

    run.py makes a fresh upper directory for every run. To keep the changes of earlier runs,
    as Docker does across a restart, the last run's upper directory moves to layers/<n> and
    stacks over the image's layers: overlayfs reads its whiteouts and opaque directories in a
    lower directory as it did in the upper one.
    """
    layers = cdir / "layers"
    if (cdir / "upper").exists():
        layers.mkdir(exist_ok=True)
        os.replace(cdir / "upper", layers / str(len(os.listdir(layers))))
    for name in ("work", "merged", "bundle", "empty"):
        path = cdir / name
        if os.path.ismount(path):
            raise ContainerError(f"{path} is still mounted", hint="run `lamina ps` to clean up")
        shutil.rmtree(path, ignore_errors=True)
    return earlier_layers(cdir) + [Path(p) for p in image_lowers]


def earlier_layers(cdir: Path) -> list[Path]:
    """The upper directories of the container's earlier runs (layers/<n>), topmost first."""
    layers = cdir / "layers"
    if not layers.exists():
        return []
    return sorted(layers.iterdir(), key=lambda p: int(p.name), reverse=True)


# --- the log ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogEntry:
    """One line of a container's output, as ``lamina logs`` gives it."""

    stream: str     # stdout | stderr
    time: str       # RFC 3339 with nanoseconds
    text: str       # one line, with its newline (the last may lack it)


class LogWriter:
    """Appends a container's output to its log, one JSON object per line, as json-file does.

    Output is cut into lines; a line longer than ``MAX_LINE`` is cut into entries of that size
    (Docker's 16 KiB). What is left without a newline at the end is written by ``close``.
    """

    MAX_LINE = 16 * 1024

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)
        self._pending: dict[str, bytes] = collections.defaultdict(bytes)

    def write(self, stream: str, data: bytes) -> None:
        buffer = self._pending[stream] + data
        while True:
            cut = buffer.find(b"\n") + 1 or (len(buffer) >= self.MAX_LINE and self.MAX_LINE)
            if not cut:
                break
            self._entry(stream, buffer[:cut])
            buffer = buffer[cut:]
        self._pending[stream] = buffer

    def _entry(self, stream: str, line: bytes) -> None:
        entry = {"log": line.decode(errors="replace"), "stream": stream, "time": now()}
        self._file.write(json.dumps(entry).encode() + b"\n")   # one write: readers see lines

    def close(self) -> None:
        for stream, rest in self._pending.items():
            if rest:
                self._entry(stream, rest)
        self._file.close()


def read_log(path: Path, *, tail: int | None = None, offset: int = 0
             ) -> tuple[list[LogEntry], int]:
    """The entries of a log from byte ``offset`` (the last ``tail`` of them), and the offset
    after the last complete line, where a follower reads on."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            # One more than asked for: the last line may be a partial one, read next time.
            lines = list(collections.deque(f, maxlen=tail + 1) if tail is not None else f)
            end = f.tell()
    except FileNotFoundError:
        return [], offset
    if lines and not lines[-1].endswith(b"\n"):
        end -= len(lines.pop())
    if tail is not None:
        lines = lines[max(0, len(lines) - tail):] if tail else []
    entries = []
    for line in lines:
        try:
            obj = json.loads(line)
            entries.append(LogEntry(obj["stream"], obj["time"], obj["log"]))
        except (ValueError, KeyError):
            continue
    return entries, end


def new_id() -> str:
    return os.urandom(32).hex()
