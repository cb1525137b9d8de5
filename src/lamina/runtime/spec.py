"""The OCI runtime config (config.json) for a container, with Docker's defaults.

Pure: values in, a dict out. The defaults follow moby's (oci/defaults.go and the daemon):
14 capabilities, masked and read-only /proc and /sys paths, the /dev, /proc, /sys mounts,
the devices cgroup allow-list, `noNewPrivileges` false, and the environment rules.
"""
from __future__ import annotations

import posixpath
from collections import namedtuple
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import seccomp
from .errors import ContainerError
from .options import RunOptions
from .users import ExecUser

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Literal

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# Every capability, in kernel order (0 = CHOWN ... 40 = CHECKPOINT_RESTORE).
ALL_CAPS = tuple("CAP_" + n for n in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split())

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_NOSUID_NOEXEC_NODEV = ("nosuid", "noexec", "nodev")


def _default_mounts(privileged: bool) -> list[dict]:
    sys_ro = [] if privileged else ["ro"]   # --privileged gets a writable /sys, as in Docker
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": list(_NOSUID_NOEXEC_NODEV)},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*_NOSUID_NOEXEC_NODEV, *sys_ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*_NOSUID_NOEXEC_NODEV, *sys_ro]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": list(_NOSUID_NOEXEC_NODEV)},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]},
    ]


def _dev(kind: str, major: int | None, minor: int | None, allow: bool = True) -> dict:
    rule: dict = {"allow": allow, "type": kind, "access": "rwm"}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


# moby's devices cgroup rules plus those runc adds itself: mknod of anything, the ptys.
DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    _dev("c", 1, 3), _dev("c", 1, 5), _dev("c", 1, 7), _dev("c", 1, 8), _dev("c", 1, 9),
    _dev("c", 5, 0), _dev("c", 5, 1), _dev("c", 5, 2), _dev("c", 136, None),
    _dev("c", 10, 229, allow=False),   # /dev/fuse stays denied
]

RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
UNLIMITED = 2**64 - 1


# --- capabilities -----------------------------------------------------------------------------

def _cap_name(name: str) -> str:
    upper = name.upper()
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full != "CAP_ALL" and full not in ALL_CAPS:
        raise ContainerError(f"unknown capability: {name!r}")
    return full


def caps_from_mask(mask: int) -> list[str]:
    """Capability names of a bit mask (the CapBnd line of /proc/PID/status)."""
    return [name for bit, name in enumerate(ALL_CAPS) if mask >> bit & 1]


def capabilities(add: Sequence[str] = (), drop: Sequence[str] = (), privileged: bool = False,
                 available: Sequence[str] = ALL_CAPS) -> list[str]:
    """The capability set after --cap-add/--cap-drop, with Docker's rules for ALL.

    "All" (--privileged, --cap-add ALL) means all that lamina itself has (`available`):
    asking the runtime for more fails.
    """
    if privileged:
        return list(available)
    adds, drops = [_cap_name(c) for c in add], [_cap_name(c) for c in drop]
    if "CAP_ALL" in adds:
        caps = [c for c in available if c not in drops]
    elif "CAP_ALL" in drops:
        caps = [c for c in adds if c != "CAP_ALL"]
    else:
        caps = [c for c in DEFAULT_CAPS if c not in drops] + adds
    return list(dict.fromkeys(caps))


# --- environment ------------------------------------------------------------------------------

def _apply_env(base: list[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: K=V replaces K in place or appends; a bare K unsets."""
    out = list(base)
    for item in overrides:
        key, has_value, _ = item.partition("=")
        where = next((i for i, e in enumerate(out) if e.partition("=")[0] == key), None)
        if not has_value:
            if where is not None:
                del out[where]
        elif where is None:
            out.append(item)
        else:
            out[where] = item
    return out


def environment(image_env: Sequence[str], run_env: Sequence[str], *, hostname: str,
                tty: bool, home: str) -> list[str]:
    """The process environment: Docker's defaults, then the image's Env, then -e; HOME last."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
    env = _apply_env(_apply_env(base, image_env), run_env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")    # runc and crun set it from passwd when the env has none
    return env


# --- mounts -----------------------------------------------------------------------------------

class Bind(namedtuple("Bind", "source destination read_only propagation")):
    """A ``-v``/``--mount`` bind: host ``source``, container ``destination``, ``read_only``
    (a bool) and ``propagation`` (``rprivate`` unless given)."""

    __slots__ = ()


_PROPAGATIONS = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def _container_path(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise ContainerError(f"invalid {what} {path!r}: the container path must be absolute")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise ContainerError(f"invalid {what} {path!r}: the destination cannot be '/'")
    return clean


def parse_bind(spec: str) -> Bind:
    """-v /host:/container[:ro|rw][,propagation]; SELinux z/Z and nocopy are accepted."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ContainerError(f"invalid volume specification: {spec!r}",
                             hint="use /host/path:/container/path[:ro]")
    if not parts[0].startswith("/"):
        raise ContainerError(f"invalid volume specification: {spec!r}: "
                             "named volumes are not supported, give an absolute host path")
    read_only, propagation = False, "rprivate"
    for mode in (parts[2].split(",") if len(parts) == 3 else ()):
        if mode in ("ro", "rw"):
            read_only = mode == "ro"
        elif mode in _PROPAGATIONS:
            propagation = mode
        elif mode not in ("z", "Z", "nocopy"):
            raise ContainerError(f"invalid mode {mode!r} in volume specification {spec!r}")
    return Bind(posixpath.normpath(parts[0]), _container_path(parts[1], "volume specification"),
                read_only, propagation)


def _tmpfs_mount(spec: str) -> dict:
    """--tmpfs /path[:opts], over Docker's defaults noexec,nosuid,nodev (opts win)."""
    path, _, opts = spec.partition(":")
    options = list(_NOSUID_NOEXEC_NODEV)
    for opt in filter(None, opts.split(",")):
        flag = opt.removeprefix("no")
        key = opt.partition("=")[0]
        options = [o for o in options
                   if o.removeprefix("no") != flag and o.partition("=")[0] != key]
        options.append(opt)
    return {"destination": _container_path(path, "tmpfs"), "type": "tmpfs", "source": "tmpfs",
            "options": options}


def _user_mounts(options: RunOptions, etc_files: Mapping[str, Path]) -> list[dict]:
    mounts = []
    for spec in options.binds:
        b = parse_bind(spec)
        mounts.append({"destination": b.destination, "type": "bind", "source": b.source,
                       "options": ["rbind", b.propagation, "ro" if b.read_only else "rw"]})
    mounts.extend(_tmpfs_mount(spec) for spec in options.tmpfs)
    # The generated /etc files, unless the user mounts their own there. Like Docker's, they
    # are writable, unless the whole root is read-only.
    taken = {m["destination"] for m in mounts}
    mode = "ro" if options.read_only else "rw"
    for dest, source in etc_files.items():
        if dest not in taken:
            mounts.append({"destination": dest, "type": "bind", "source": str(source),
                           "options": ["rbind", "rprivate", mode]})
    # Parents before children, as Docker sorts them; the sort is stable for equal depths.
    return sorted(mounts, key=lambda m: m["destination"].count("/"))


def mounts(options: RunOptions, etc_files: Mapping[str, Path]) -> list[dict]:
    """Docker's default mounts, minus those a user mount replaces, then the user mounts."""
    user = _user_mounts(options, etc_files)
    taken = {m["destination"] for m in user}
    return [m for m in _default_mounts(options.privileged) if m["destination"] not in taken] + user


# --- resources and limits ---------------------------------------------------------------------

def resources(options: RunOptions) -> dict:
    res: dict = {"devices": [{"allow": True, "access": "rwm"}] if options.privileged
                 else [dict(rule) for rule in DEVICE_RULES]}
    if options.memory:
        # Docker's default --memory-swap is twice --memory (as much swap as memory).
        res["memory"] = {"limit": options.memory, "swap": 2 * options.memory}
    if options.cpus:
        period = 100_000
        res["cpu"] = {"quota": round(options.cpus * period), "period": period}
    if options.pids_limit and options.pids_limit > 0:
        res["pids"] = {"limit": options.pids_limit}
    return res


def _rlimit_value(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ContainerError(f"invalid ulimit {spec!r}: {text!r} is not a number") from None
    return UNLIMITED if value == -1 else value


def rlimits(ulimits: Sequence[str]) -> list[dict]:
    """--ulimit name=soft[:hard]. Other limits are inherited from lamina's process, as Docker's
    containers inherit dockerd's (raising a hard limit needs CAP_SYS_RESOURCE, not a given)."""
    limits: dict[str, tuple[int, int]] = {}
    for spec in ulimits:
        name, _, values = spec.partition("=")
        if name not in RLIMITS or not values:
            raise ContainerError(f"invalid ulimit {spec!r}",
                                 hint=f"use name=soft[:hard] with a name in {', '.join(RLIMITS)}")
        soft, _, hard = values.partition(":")
        soft_n = _rlimit_value(soft, spec)
        hard_n = _rlimit_value(hard, spec) if hard else soft_n
        if soft_n > hard_n:
            raise ContainerError(f"invalid ulimit {spec!r}: soft limit is above the hard limit")
        limits[name] = (soft_n, hard_n)
    return [{"type": f"RLIMIT_{n.upper()}", "soft": s, "hard": h} for n, (s, h) in limits.items()]


# --- security options -------------------------------------------------------------------------

def _security(security_opt: Sequence[str]) -> tuple[bool, bool]:
    """(no_new_privileges, seccomp) from --security-opt values."""
    nnp, use_seccomp = False, True
    for opt in security_opt:
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
        elif key == "seccomp" and value == "unconfined":
            use_seccomp = False
        else:
            raise ContainerError(f"unsupported --security-opt {opt!r}",
                                 hint="lamina knows no-new-privileges[:true|false] "
                                      "and seccomp=unconfined")
    return nnp, use_seccomp


# --- the whole config -------------------------------------------------------------------------

if TYPE_CHECKING:   # no namespace | a new empty one | join this one
    Network = Literal["host", "none"] | Path


def build_spec(image_config: Mapping, options: RunOptions, *, args: Sequence[str],
               user: ExecUser, hostname: str, rootfs: Path, network: Network,
               etc_files: Mapping[str, Path], cgroups_path: str,
               seccomp_profile: Mapping | None, console_size: tuple[int, int] | None = None,
               host_devices: Sequence[Mapping] = (), available_caps: Sequence[str] = ALL_CAPS
               ) -> dict:
    """config.json for one container.

    `etc_files` maps /etc/hosts, /etc/hostname, /etc/resolv.conf to the generated files;
    `seccomp_profile` is the moby-format profile (None: no seccomp); `host_devices` are the
    `linux.devices` entries a --privileged container gets; `console_size` is (rows, columns);
    `available_caps` are lamina's own capabilities, the most a container can get.
    """
    caps = capabilities(options.cap_add, options.cap_drop, options.privileged, available_caps)
    no_new_privileges, use_seccomp = _security(options.security_opt)
    process: dict = {
        "terminal": options.tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": list(args),
        "env": environment(image_config.get("Env") or (), options.env, hostname=hostname,
                           tty=options.tty, home=user.home),
        "cwd": options.workdir or image_config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges,
    }
    if options.ulimits:
        process["rlimits"] = rlimits(options.ulimits)
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    if options.tty and console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}

    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})
    elif network != "host":
        namespaces.append({"type": "network", "path": str(network)})

    linux: dict = {
        "namespaces": namespaces,
        "resources": resources(options),
        "cgroupsPath": cgroups_path,
    }
    if options.privileged:
        linux["devices"] = [dict(d) for d in host_devices]
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if use_seccomp and seccomp_profile is not None:
            linux["seccomp"] = seccomp.to_oci(seccomp_profile, caps)

    spec = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": options.read_only},
        "hostname": hostname,
        "mounts": mounts(options, etc_files),
        "linux": linux,
    }
    if options.name:
        spec["annotations"] = {"org.lamina.container.name": options.name}
    return spec
