"""Docker's default seccomp profile, converted to OCI `linux.seccomp` for one container.

The profile is in moby's format: each rule may apply only to some architectures or only when
the container has (or lacks) some capabilities, e.g. `sethostname` is allowed with
CAP_SYS_ADMIN and refused with EPERM without it. So the OCI form depends on the container's
capabilities and the CPU, and is computed per container (it takes well under a millisecond).

The profile comes from /usr/share/containers/seccomp.json (Debian's
golang-github-containers-common, kept current by the distribution) when present, else from
the copy of it shipped beside this module (containers/common 0.50.1, Apache-2.0).
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from ..image.digest import sha256_hex

PROFILE_PATHS = (Path("/usr/share/containers/seccomp.json"),
                 Path(__file__).with_name("seccomp.json"))

# uname -m -> the architecture names the profile's includes/excludes use (Go's GOARCH names)
_MACHINE_TO_ARCH = {"x86_64": "amd64", "i686": "x86", "aarch64": "arm64", "armv7l": "arm",
                    "ppc64le": "ppc64le", "s390x": "s390x", "mips64": "mips64",
                    "riscv64": "riscv64"}
_ARCH_TO_SCMP = {"amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "arm64": "SCMP_ARCH_AARCH64",
                 "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                 "mips64": "SCMP_ARCH_MIPS64", "riscv64": "SCMP_ARCH_RISCV64"}


def native_arch() -> str:
    machine = os.uname().machine    # what platform.machine() reads, without its import
    return _MACHINE_TO_ARCH.get(machine, machine)


@lru_cache(maxsize=1)
def load_profile() -> Mapping:
    """The moby-format default profile (the system's copy if installed, else lamina's)."""
    for path in PROFILE_PATHS:
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(PROFILE_PATHS[-1])


def _kernel_at_least(version: str, release: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        head = text.split("-")[0]
        return tuple(int(p) for p in head.split(".")[:3] if p.isdigit())
    return numbers(release) >= numbers(version)


def _applies(rule: Mapping, caps: set[str], arch: str, kernel: str) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if arch in (exc.get("arches") or ()) or caps & set(exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"], kernel):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not set(inc.get("caps") or ()) <= caps:
        return False
    return not (inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel))


def to_oci(profile: Mapping, caps: Iterable[str], *, arch: str | None = None,
           kernel: str | None = None) -> dict:
    """The OCI `linux.seccomp` object of `profile` for a container with bounding set `caps`."""
    arch = arch or native_arch()
    kernel = kernel or os.uname().release
    caps = set(caps)
    out: dict = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    else:
        for entry in profile.get("archMap") or ():
            if entry["architecture"] == _ARCH_TO_SCMP.get(arch):
                out["architectures"] = [entry["architecture"], *entry.get("subArchitectures", ())]
    rules = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, caps, arch, kernel):
            continue
        names = rule.get("names") or [rule["name"]]
        oci: dict = {"names": list(names), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            oci["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            oci["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                           for a in rule["args"]]
        rules.append(oci)
    out["syscalls"] = rules
    return out


# --- compiled filters -------------------------------------------------------------------------
# crun compiles the filter with libseccomp in every `create`: about 20 ms of the 30 a container
# takes here (crun 1.8.1 has no cache of its own). lamina compiles it once with the same
# libseccomp, keeps the BPF under the runtime's state dir (tmpfs), and hands it to crun in the
# `run.oci.seccomp_bpf_data` annotation: measured, `crun run` of busybox `true` went from 34 ms
# to 13-18 ms. The key covers everything the BPF depends on, as crun's own cache key does.

_ACTIONS = {"SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0, "SCMP_ACT_KILL_PROCESS": 0x80000000,
            "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
_WITH_ERRNO = {"SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@lru_cache(maxsize=1)
def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def _action(name: str, errno_ret: int | None) -> int:
    if name in _WITH_ERRNO:
        return _WITH_ERRNO[name] | ((1 if errno_ret is None else errno_ret) & 0xFFFF)
    if name in _ACTIONS and errno_ret is None:
        return _ACTIONS[name]
    raise ValueError(f"seccomp action {name} is not compiled by lamina")


def _check(ret: int, what: str) -> None:
    if ret < 0 and ret != -errno.EEXIST:
        raise OSError(-ret, f"libseccomp {what}: {os.strerror(-ret)}")


def compile_bpf(oci: Mapping) -> bytes:
    """The BPF program of an OCI `linux.seccomp` object, built as crun builds it."""
    lib = _libseccomp()
    default = _action(oci["defaultAction"], oci.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init")
    try:
        for arch in oci.get("architectures") or ():
            name = arch.removeprefix("SCMP_ARCH_").lower().encode()
            _check(lib.seccomp_arch_add(ctx, lib.seccomp_arch_resolve_name(name)), arch)
        for rule in oci["syscalls"]:
            action = _action(rule["action"], rule.get("errnoRet"))
            if action == default:
                continue
            cmps = [_ArgCmp(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                    for a in rule.get("args") or ()]
            # Comparisons of one argument twice cannot be ANDed: each becomes its own rule.
            distinct = len({c.arg for c in cmps}) == len(cmps)
            groups = [cmps] if distinct else [[c] for c in cmps]
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:                  # unknown to this libseccomp: crun skips it too
                    continue
                for group in groups:
                    array = (_ArgCmp * max(1, len(group)))(*group)
                    _check(lib.seccomp_rule_add_array(ctx, action, nr, len(group), array), name)
        fd = os.memfd_create("seccomp-bpf")
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "export")
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def cached_bpf(oci: Mapping, cache_dir: Path) -> bytes:
    """compile_bpf(oci), from `cache_dir` when this filter was compiled before."""
    v = _libseccomp().seccomp_version().contents
    uname = os.uname()
    key_text = json.dumps([oci, [v.major, v.minor, v.micro], uname.release, uname.machine],
                          sort_keys=True)
    path = cache_dir / (sha256_hex(key_text.encode()) + ".bpf")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = compile_bpf(oci)
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data
