"""``lamina info``: what lamina runs with on this machine, and why.

Every answer comes from the code that makes the decision (the runtime driver, the network,
the store, the registry config), asked here rather than decided again. A probe that fails
gives a value that says so, and a warning: ``info`` itself never fails for a broken part.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..store import Store, default_root

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class StorageInfo:
    """``lamina info``: the state root and how layers become a container's root, and why."""

    root: str
    root_from: str                  # "LAMINA_ROOT" or "default"
    backing_filesystem: str         # the file system type the state root lives on
    driver: str                     # "overlay"
    snapshotter: str                # how layers become a container's root
    why: str
    overlay_in_kernel: bool         # /proc/filesystems lists overlay
    snapshots: int


@dataclass(frozen=True)
class RuntimeInfo:
    """``lamina info``: the OCI runtime and the cgroup version it runs under, and why."""

    name: str                       # "crun", "runc", or "" when none is found
    path: str
    version: str
    why: str
    cgroup_version: str             # "1", "2", or "1 (hybrid)"
    cgroup_why: str
    hybrid_workaround: bool
    workaround_why: str


@dataclass(frozen=True)
class NetworkInfo:
    """``lamina info``: the CNI bridge network containers get, and the plugins it lacks."""

    backend: str                    # "CNI"
    plugin_dir: str
    plugins_needed: tuple[str, ...]
    plugins_missing: tuple[str, ...]
    plugins_found: tuple[str, ...]
    network: str
    bridge: str
    subnet: str
    iptables: str                   # "v1.8.9 (nf_tables)"


@dataclass(frozen=True)
class RegistryInfo:
    """``lamina info``: where registry settings and credentials come from, and what they say."""

    config_file: str
    config_present: bool
    mirrors: tuple[str, ...]
    insecure_registries: tuple[str, ...]
    certs_directory: str
    credentials_file: str
    credentials_present: bool


@dataclass(frozen=True)
class SystemInfo:
    """``lamina info``: what lamina runs with on this machine, and what the store holds."""

    version: str
    python: str
    kernel: str
    operating_system: str
    architecture: str
    cpus: int
    memory: int                     # bytes
    storage: StorageInfo
    runtime: RuntimeInfo
    network: NetworkInfo
    registry: RegistryInfo
    images: int
    containers: int
    containers_running: int
    containers_created: int
    containers_exited: int
    volumes: int
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def info(*, store: Store | None = None) -> SystemInfo:
    """What lamina uses here: versions, state root, snapshotter, runtime, network, registry
    settings, and how many images, containers and volumes the state root holds."""
    from .. import __version__

    warnings: list[str] = []
    root = store.root if store is not None else default_root()
    if store is None and root.is_dir():
        store = _open(root, warnings)
    storage = _storage(root, store)
    runtime = _runtime(warnings)
    network = _network(warnings)
    registry = _registry(root, warnings)
    containers = _containers(store, warnings)
    return SystemInfo(
        version=__version__,
        python=f"{platform.python_version()} ({platform.python_implementation()}, "
               f"{sys.executable})",
        kernel=platform.release(), operating_system=_os_name(),
        architecture=platform.machine(), cpus=os.cpu_count() or 0, memory=_memory(),
        storage=storage, runtime=runtime, network=network, registry=registry,
        images=_images(store, warnings), containers=len(containers),
        containers_running=sum(c.status == "running" for c in containers),
        containers_created=sum(c.status == "created" for c in containers),
        containers_exited=sum(c.status == "exited" for c in containers),
        volumes=_volumes(store, warnings), warnings=tuple(warnings))


def _open(root: Path, warnings: list[str]) -> Store | None:
    from ..errors import LaminaError
    try:
        return Store.open(root)
    except LaminaError as err:
        warnings.append(f"the state root cannot be opened: {err.message}")
        return None


def _storage(root: Path, store: Store | None) -> StorageInfo:
    from ..runtime.mountinfo import mount_types

    types = mount_types(_read("/proc/self/mountinfo"))
    real = os.path.realpath(root if root.exists() else root.parent)
    backing = max(((m, t) for m, t in types.items()
                   if real == m or real.startswith(m.rstrip("/") + "/")),
                  key=lambda item: len(item[0]), default=("", "unknown"))[1]
    overlay = any(line.split()[-1] == "overlay"
                  for line in _read("/proc/filesystems").splitlines() if line.strip())
    snapshots = 0
    if store is not None:
        snapshots = sum(1 for e in os.scandir(store.snapshots.dir) if not e.name.startswith("."))
    return StorageInfo(
        root=str(root), root_from="LAMINA_ROOT" if os.environ.get("LAMINA_ROOT") else "default",
        backing_filesystem=backing, driver="overlay",
        snapshotter="native overlayfs (the kernel's), over one unpacked snapshot per layer",
        why="lamina runs as root and mounts the kernel overlay itself (no fuse-overlayfs); "
            "each layer is unpacked once, shared by every image and container stacking it",
        overlay_in_kernel=overlay, snapshots=snapshots)


def _runtime(warnings: list[str]) -> RuntimeInfo:
    from ..errors import LaminaError
    from ..runtime.crun import (CGROUP_ROOT, RUNTIMES, UNIFIED, find_runtime,
                                needs_hybrid_workaround)
    from ..runtime.mountinfo import mount_types

    mountinfo = _read("/proc/self/mountinfo")
    types = mount_types(mountinfo)
    workaround = needs_hybrid_workaround(
        mountinfo, lambda path: Path(path, "cgroup.controllers").read_text())
    if types.get(CGROUP_ROOT) == "cgroup2":
        version, cgroup_why = "2", f"{CGROUP_ROOT} is a cgroup2 mount (unified hierarchy)"
    elif types.get(UNIFIED) == "cgroup2":
        version = "1 (hybrid)"
        cgroup_why = (f"{CGROUP_ROOT} holds the v1 controllers, and a cgroup2 is mounted at "
                      f"{UNIFIED}")
    elif types.get(CGROUP_ROOT) == "tmpfs":
        version, cgroup_why = "1", f"{CGROUP_ROOT} holds the v1 controllers only"
    else:
        version, cgroup_why = "unknown", f"nothing known is mounted at {CGROUP_ROOT}"
    workaround_why = (
        f"the cgroup2 at {UNIFIED} has controllers, which crun and runc refuse (\"cgroups in "
        "hybrid mode not supported\"): each runtime call that sets up cgroups runs in a "
        "private mount namespace without that mount" if workaround
        else "not needed: the runtime sees a pure v1 or v2 host")
    try:
        binary = find_runtime()
    except LaminaError as err:
        warnings.append(f"no OCI runtime: {err.message}")
        return RuntimeInfo("", "", "", err.hint or err.message, version, cgroup_why,
                           workaround, workaround_why)
    chosen = os.environ.get("LAMINA_RUNTIME", "").strip()
    if chosen:
        why = f"chosen by LAMINA_RUNTIME={chosen}"
    elif binary.name == RUNTIMES[0]:
        why = f"the first of {', '.join(RUNTIMES)} found on PATH (crun starts containers " \
              "faster); set LAMINA_RUNTIME to choose another"
    else:
        why = f"{RUNTIMES[0]} is not on PATH; set LAMINA_RUNTIME to choose another"
    return RuntimeInfo(binary.name, str(binary), _runtime_version(binary, warnings), why,
                       version, cgroup_why, workaround, workaround_why)


def _runtime_version(binary: Path, warnings: list[str]) -> str:
    import subprocess
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as err:
        warnings.append(f"{binary} --version failed: {err}")
        return "unknown"
    for line in out.splitlines():
        words = line.split()
        if "version" in words and words.index("version") + 1 < len(words):
            return words[words.index("version") + 1]
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _network(warnings: list[str]) -> NetworkInfo:
    from ..errors import LaminaError
    from ..runtime.netrules import run_tool
    from ..runtime.network import DEFAULT_NETWORK
    from ..runtime.ports import PortMapping

    net = DEFAULT_NETWORK
    # The plugins the network runs for a container that publishes a port (the most it needs).
    chain = net.plugins([PortMapping(80, host_port=8080)])
    needed = tuple(dict.fromkeys(
        name for plugin in chain for name in (plugin["type"], plugin.get("ipam", {}).get("type"))
        if name))
    directory = Path(net.cni_path)
    try:
        found = tuple(sorted(e.name for e in os.scandir(directory) if e.is_file()))
    except OSError:
        found = ()
    missing = tuple(p for p in needed if p not in found)
    if missing:
        warnings.append(f"CNI plugins missing from {directory}: {', '.join(missing)} "
                        "(install containernetworking-plugins): --network bridge will fail")
    try:
        iptables = run_tool(["iptables", "--version"]).strip().removeprefix("iptables ")
    except LaminaError as err:
        iptables = "not found"
        warnings.append(f"iptables: {err.message}")
    return NetworkInfo("CNI", str(directory), needed, missing, found, net.name, net.bridge,
                       net.subnet, iptables)


def _registry(root: Path, warnings: list[str]) -> RegistryInfo:
    from ..errors import LaminaError
    from ..registry.config import CONFIG_FILE, RegistryConfig
    from ..registry.credentials import config_path

    path = root / CONFIG_FILE
    try:
        config = RegistryConfig.load(root)
    except LaminaError as err:
        warnings.append(f"registry config: {err.message}")
        config = RegistryConfig()
    credentials = config_path()
    return RegistryInfo(str(path), path.is_file(), config.registry_mirrors,
                        config.insecure_registries, str(config.certs_directory),
                        str(credentials), credentials.is_file())


def _images(store: Store | None, warnings: list[str]) -> int:
    from ..errors import LaminaError
    if store is None:
        return 0
    try:
        return len({entry.descriptor.digest for entry in store.index.list()})
    except LaminaError as err:
        warnings.append(f"the image index cannot be read: {err.message}")
        return 0


def _containers(store: Store | None, warnings: list[str]) -> list[Any]:
    from ..errors import LaminaError
    from .containers import list_containers
    if store is None:
        return []
    try:
        return list_containers(all=True, store=store)
    except LaminaError as err:
        warnings.append(f"the containers cannot be listed: {err.message}")
        return []


def _volumes(store: Store | None, warnings: list[str]) -> int:
    from ..errors import LaminaError
    from .volumes import list_volumes
    if store is None:
        return 0
    try:
        return len(list_volumes(store=store))
    except LaminaError as err:
        warnings.append(f"the volumes cannot be listed: {err.message}")
        return 0


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def _memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
