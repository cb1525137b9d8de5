"""`lamina run` in the foreground: one container from an image's layers, start to clean-up.

Layout of a container's directory, `<state_dir>/<id>/`:
    upper/ work/ merged/    the overlay: the container's changes, overlay's scratch, the root
    bundle/config.json      the OCI bundle (and init.pid, the container init's pid)
    hosts hostname resolv.conf   bind-mounted over the container's /etc files
    runtime.log             the OCI runtime's JSON log
Everything mounted is unmounted when the container exits, whatever happened; the directory
(with the container's changes in upper/) stays unless `remove` (--rm).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import cgroupwarm, seccomp
from .command import resolve_command
from .crun import Runtime, remove_cgroup_parents
from .errors import ContainerError
from .options import RunOptions
from .process import run_attached, run_in_one_call, terminal_size
from .rootfs import make_dir_in_root, mount_overlay, unmount
from .spec import ALL_CAPS, build_spec, caps_from_mask, parse_bind
from .users import resolve_user

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from .network import NetworkAttachment
    from .spec import Network

HOSTS_HEADER = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
# Docker's fallback when the host's only resolvers are on its loopback (unreachable from a netns).
FALLBACK_NAMESERVERS = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
# /dev entries Docker leaves out of a privileged container's devices.
_SKIPPED_DEV = {"pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"}


def run_container(*, state_dir: Path, lowers: Sequence[Path], image_config: Mapping,
                  options: RunOptions, network: NetworkAttachment | None = None,
                  on_started: Callable[[int], None] | None = None,
                  on_exited: Callable[[], None] | None = None,
                  volatile: bool | None = None, one_call: bool = False) -> int:
    """Run the image whose layer directories are `lowers` (topmost first); its exit status.

    `image_config` is the `config` part of the image config (Docker's keys: Entrypoint, Cmd,
    Env, WorkingDir, User, ...). `network`, from network.attach(), gives the container's id,
    the namespace to join and the /etc/hosts lines; the caller detaches it afterwards.
    `on_started(pid)` is called with the container init's pid once its process runs,
    `on_exited()` once it has exited, before the clean-up (which it may overlap).
    `volatile` (default: `options.remove`) mounts the root without syncs, for a container
    whose changes are thrown away when it exits.
    `one_call`: without a terminal and with crun, one `crun run` runs the container rather
    than create, start and delete (process.run_in_one_call: faster, same behaviour).
    Raises ContainerError (exit code 125, 126 or 127) when the container cannot be set up or
    its command cannot run.
    """
    cgroupwarm.start()      # the runtime's first cgroup write stalls unless warmed ahead
    argv = resolve_command(image_config, entrypoint=options.entrypoint, command=options.command)
    workdir = options.workdir or image_config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise ContainerError(f"the working directory {workdir!r} is invalid, "
                             "it needs to be an absolute path")
    netns = _network_namespace(options, network)
    # os.urandom rather than secrets, whose import costs a run a few ms
    container_id = network.container_id if network else os.urandom(32).hex()
    hostname = options.hostname or (os.uname().nodename if options.network_mode == "host"
                                    else container_id[:12])
    cdir = Path(state_dir) / container_id
    upper, work, merged, bundle = cdir / "upper", cdir / "work", cdir / "merged", cdir / "bundle"
    runtime = Runtime() if on_started is None else \
        _ReportingRuntime(on_started, pid_file=bundle / "init.pid")

    with contextlib.ExitStack() as cleanup:
        for d in (upper, work, merged, bundle):
            d.mkdir(parents=True)
        if options.remove:
            cleanup.callback(_remove_dir, cdir, merged)
        if not lowers:                     # FROM scratch: overlay needs a lower dir
            lowers = [cdir / "empty"]
            lowers[0].mkdir()
        mount_overlay(lowers, upper, work, merged,
                      volatile=options.remove if volatile is None else volatile)
        cleanup.callback(unmount, merged)

        user = resolve_user(merged, options.user or image_config.get("User"))
        make_dir_in_root(merged, workdir)   # Docker creates a missing working directory
        for spec in options.binds:          # and, for -v, a missing host path as a directory
            source = parse_bind(spec).source
            if not os.path.lexists(source):
                Path(source).mkdir(parents=True, exist_ok=True)
        etc_files = _write_etc_files(cdir, hostname, options,
                                     network.hosts_entries if network else None)

        cgroups_path = f"/lamina/{container_id}"
        config = build_spec(
            image_config, options, args=argv, user=user, hostname=hostname, rootfs=merged,
            network=netns, etc_files=etc_files, cgroups_path=cgroups_path,
            seccomp_profile=seccomp.load_profile(),
            console_size=terminal_size(0) or terminal_size(1),
            host_devices=_host_devices() if options.privileged else (),
            available_caps=_own_capabilities())
        runtime.prepare_spec(config)
        (bundle / "config.json").write_text(json.dumps(config))   # compact: C encoder, fast

        cleanup.callback(remove_cgroup_parents, cgroups_path)
        if one_call and not options.tty and runtime.name == "crun":
            # `crun run` deletes the container as it exits; _delete_left deletes what is left
            # when it could not (killed, or failed before).
            cleanup.callback(_delete_left, runtime, container_id)
            code = run_in_one_call(runtime, container_id, bundle,
                                   interactive=options.interactive, command=argv[0],
                                   log=cdir / "runtime.log", on_started=on_started)
        else:
            cleanup.callback(_delete, runtime, container_id)
            code = run_attached(runtime, container_id, bundle, tty=options.tty,
                                interactive=options.interactive, command=argv[0],
                                log=cdir / "runtime.log")
        if on_exited is not None:
            on_exited()
        return code


def _network_namespace(options: RunOptions, network: NetworkAttachment | None) -> Network:
    if network is not None:
        if network.mode != options.network_mode:
            raise ContainerError(f"the network attachment is for {network.mode!r}, "
                                 f"the container for {options.network_mode!r}")
        if network.netns_path:
            return Path(network.netns_path)
        return "host" if network.mode == "host" else "none"
    if options.network_mode == "host":
        return "host"
    # TODO(network): without an attachment from network.attach(), "bridge" runs in a fresh
    # namespace with only lo, like "none".
    return "none"


def _write_etc_files(cdir: Path, hostname: str, options: RunOptions,
                     hosts_entries: Sequence[str] | None) -> dict[str, Path]:
    """The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker makes them.

    /etc/hosts holds `hosts_entries` when the network code gives them.
    """
    mode = options.network_mode
    files = {"/etc/hostname": cdir / "hostname", "/etc/hosts": cdir / "hosts",
             "/etc/resolv.conf": cdir / "resolv.conf"}
    files["/etc/hostname"].write_text(hostname + "\n")
    if hosts_entries is not None:
        hosts = "".join(f"{line}\n" for line in hosts_entries)
    elif mode == "host":                # the host's own file, as Docker does for --network host
        hosts = _read("/etc/hosts")
    else:
        hosts = f"{HOSTS_HEADER}127.0.0.1\t{hostname}\n"
    files["/etc/hosts"].write_text(hosts)
    resolv = _read("/etc/resolv.conf")
    if mode != "host":
        resolv = _without_loopback_nameservers(resolv)
    if options.dns or options.dns_search or options.dns_options:
        resolv = _with_dns_options(resolv, options)
    files["/etc/resolv.conf"].write_text(resolv)
    return files


def _with_dns_options(resolv: str, options: RunOptions) -> str:
    """resolv.conf as Docker writes it for --dns, --dns-search, --dns-option: each one given
    replaces the host's lines of its kind, the others are kept; nothing else is."""
    def values(keyword: str) -> list[str]:
        return [word for line in resolv.splitlines() if line.split()[:1] == [keyword]
                for word in line.split()[1:]]
    nameservers = list(options.dns) or values("nameserver")
    search = list(options.dns_search) or values("search")
    dns_options = list(options.dns_options) or values("options")
    lines = [f"nameserver {ip}" for ip in nameservers]
    if search and search != ["."]:     # "." alone means: no search domain
        lines.append("search " + " ".join(search))
    if dns_options:
        lines.append("options " + " ".join(dns_options))
    return "".join(line + "\n" for line in lines)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def _without_loopback_nameservers(resolv: str) -> str:
    def loopback(line: str) -> bool:
        words = line.split()
        return (len(words) > 1 and words[0] == "nameserver"
                and (words[1].startswith("127.") or words[1] == "::1"))
    lines = [line for line in resolv.splitlines(keepends=True) if not loopback(line)]
    if not any(line.startswith("nameserver") for line in lines):
        lines.append(FALLBACK_NAMESERVERS)
    return "".join(lines)


def _host_devices() -> list[dict]:
    """The host's device nodes, for a --privileged container's `linux.devices`."""
    devices = []
    for top, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if not (top == "/dev" and d in _SKIPPED_DEV)]
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else None
            if kind and path != "/dev/console":
                devices.append({"path": path, "type": kind, "major": os.major(st.st_rdev),
                                "minor": os.minor(st.st_rdev),
                                "fileMode": stat.S_IMODE(st.st_mode),
                                "uid": st.st_uid, "gid": st.st_gid})
    return devices


def _own_capabilities() -> list[str]:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapBnd:"):
            return caps_from_mask(int(line.split()[1], 16))
    return list(ALL_CAPS)


class _ReportingRuntime(Runtime):
    """The OCI runtime, calling `on_started(pid)` once `start` has run the container's init.

    run_attached() creates, starts and waits for the container in one call; its `start` is
    the moment the container's process runs, so the report rides on it.
    """

    def __init__(self, on_started: Callable[[int], None], *, pid_file: Path) -> None:
        super().__init__()
        self._on_started, self._pid_file = on_started, pid_file

    def start(self, container_id: str) -> None:
        super().start(container_id)
        self._on_started(int(self._pid_file.read_text()))   # written by `create`


def _delete(runtime: Runtime, container_id: str) -> None:
    """Delete the runtime's record of the container, if it made one."""
    try:
        runtime.delete(container_id, force=True)
    except ContainerError:
        if runtime.state(container_id) is not None:
            raise


def _delete_left(runtime: Runtime, container_id: str) -> None:
    """_delete, when the runtime still has a state directory for the container."""
    if (runtime.root / container_id).exists():
        _delete(runtime, container_id)


def _remove_dir(cdir: Path, merged: Path) -> None:
    if os.path.ismount(merged):         # never walk into a mounted root file system
        raise ContainerError(f"{merged} is still mounted; not removing {cdir}")
    shutil.rmtree(cdir)
