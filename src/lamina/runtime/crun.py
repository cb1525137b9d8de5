"""The OCI runtime driver: crun (or runc) on the command line.

Hybrid cgroup hosts (PLATFORM.md section 0): crun and runc refuse to start a container when
/sys/fs/cgroup is a v1 tmpfs *and* the cgroup2 mount at /sys/fs/cgroup/unified has controllers
("cgroups in hybrid mode not supported"). The workaround gives each runtime call a private
mount namespace without that cgroup2 mount, so that the runtime sees a pure v1 host. It is done
in the child between fork and exec (unshare + umount through libc): measured on this machine,
`crun run` of busybox `true` took 9.1 ms this way against 10.3 ms through
`unshare -m sh -c 'umount ... && exec crun'` (medians of 10; one exec of unshare and one of
sh fewer).
Pure v1 and pure v2 hosts call the runtime directly.

The runtime keeps its state under its own root (/run/lamina/<runtime>), not the default
/run/crun, so lamina's containers never collide with those of podman or of a user's crun.
"""
from __future__ import annotations

import binascii
import ctypes
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from . import seccomp
from .errors import CommandNotFoundError, CommandNotInvokableError, ContainerError
from .mountinfo import mount_types

STATE_ROOT = Path("/run/lamina")
BPF_ANNOTATION = "run.oci.seccomp_bpf_data"     # crun: a compiled filter, base64
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"

# Calls that set cgroups up or change them need the workaround. start, delete (it removes the
# cgroups its state file names), kill, state and list were measured to work without it.
_CGROUP_CALLS = {"run", "create", "exec", "update", "pause", "resume"}


def needs_hybrid_workaround(mountinfo: str, read_controllers: Callable[[str], str]) -> bool:
    """True on a hybrid host: a v1 tmpfs at /sys/fs/cgroup and a cgroup2 with controllers."""
    types = mount_types(mountinfo)
    if types.get(CGROUP_ROOT) != "tmpfs" or types.get(UNIFIED) != "cgroup2":
        return False
    try:
        return bool(read_controllers(UNIFIED).strip())
    except OSError:
        return False


def _read_controllers(path: str) -> str:
    return Path(path, "cgroup.controllers").read_text()


def _host_needs_workaround() -> bool:
    return needs_hybrid_workaround(Path("/proc/self/mountinfo").read_text(), _read_controllers)


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE, MNT_DETACH = 0x20000, 0x4000, 1 << 18, 2


def _private_cgroup_view() -> None:
    """preexec_fn: a private mount namespace where /sys/fs/cgroup/unified is not mounted.

    Runs in the forked child only. Raising here fails the subprocess call with
    SubprocessError in the parent.
    """
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "make / private")
    if _libc.umount2(UNIFIED.encode(), MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), f"umount {UNIFIED}")


# A `create` or `run` left running after lamina is killed (kill -9) could register its container
# after the next command cleaned up: the runtime process dies with the lamina that started it.
_DIE_WITH_US = {"create", "run"}
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the lamina thread that started it dies."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _die_with_parent_in_cgroup_view() -> None:
    _die_with_parent()
    _private_cgroup_view()


RUNTIMES = ("crun", "runc")     # in order of preference: crun starts containers faster


def find_runtime() -> Path:
    """The OCI runtime to use: $LAMINA_RUNTIME (a name on PATH or a path) when set, else crun,
    else runc."""
    chosen = os.environ.get("LAMINA_RUNTIME", "").strip()
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise ContainerError(f"LAMINA_RUNTIME={chosen}: no such OCI runtime on PATH",
                                 hint="set it to crun, runc or the path of an OCI runtime, "
                                      "or unset it to use crun (runc where crun is missing)")
        return Path(found)
    for name in RUNTIMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ContainerError("no OCI runtime found",
                         hint="install crun or runc (scripts/setup.sh installs both)")


def runtime_of(container_id: str) -> "Runtime":
    """The runtime that holds state for `container_id` (crun or runc, whichever LAMINA_RUNTIME
    was when it was created); the default runtime when none does."""
    for name in RUNTIMES:
        found = shutil.which(name)
        if found and (STATE_ROOT / name / container_id).exists():
            return Runtime(Path(found))
    return Runtime()


def log_messages(log: Path) -> list[str]:
    """The error messages of a runtime's JSON log (one object per line)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level", "error") == "error" and entry.get("msg"):
            out.append(str(entry["msg"]))
    return out


def start_error(message: str, command: str) -> ContainerError:
    """Docker's exit code for an error the runtime reported while starting `command`.

    crun: "executable file `x` not found in $PATH: No such file or directory",
    "open executable: Permission denied" (also "Operation not permitted" for a directory), and,
    from the container's init once started, "exec container process `x`: Exec format error".
    runc: "exec: \"x\": executable file not found in $PATH", "exec /x: permission denied".
    """
    lower = message.lower()
    reason = lower.rsplit(": ", 1)[-1]          # the strerror() part
    if "executable file" in lower and "not found" in lower:
        return CommandNotFoundError(f'exec: "{command}": executable file not found in $PATH')
    is_exec = "exec" in lower and ("executable" in lower or "container process" in lower
                                   or bool(command) and command.lower() in lower)
    if is_exec and reason == "no such file or directory":
        # The file is there (crun checked) but its interpreter or loader is not.
        return CommandNotFoundError(f'exec: "{command}": no such file or directory '
                                    "(is the interpreter of the script or a library missing?)")
    if is_exec and reason in ("permission denied", "operation not permitted",
                              "is a directory", "exec format error"):
        return CommandNotInvokableError(f'exec: "{command}": {reason}')
    return ContainerError(f"OCI runtime error: {message}")


class Runtime:
    """One OCI runtime binary, with its state root and the hybrid-cgroup workaround if needed."""

    def __init__(self, binary: Path | None = None, *, root: Path | None = None,
                 workaround: bool | None = None) -> None:
        self.binary = binary or find_runtime()
        self.name = self.binary.name
        self.root = root or STATE_ROOT / self.name
        self._workaround = workaround

    @cached_property
    def workaround(self) -> bool:
        return _host_needs_workaround() if self._workaround is None else self._workaround

    def argv(self, *args: str, log: Path | None = None) -> list[str]:
        argv = [str(self.binary), "--root", str(self.root)]
        if log is not None:
            # crun reads "file:PATH" (a bare path with a ':' would be taken as a log type).
            argv += [f"--log=file:{log}" if self.name == "crun" else f"--log={log}",
                     "--log-format=json"]
        return argv + list(args)

    def call(self, *args: str, log: Path | None = None, check: bool = True,
             new_session: bool = False, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
             stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
        cgroup_view = self.workaround and args[0] in _CGROUP_CALLS
        if args[0] in _DIE_WITH_US:
            preexec = _die_with_parent_in_cgroup_view if cgroup_view else _die_with_parent
        else:
            preexec = _private_cgroup_view if cgroup_view else None
        try:
            done = subprocess.run(self.argv(*args, log=log), stdin=stdin, stdout=stdout,
                                  stderr=stderr, preexec_fn=preexec,
                                  start_new_session=new_session)
        except (OSError, subprocess.SubprocessError) as e:
            raise ContainerError(f"cannot run {self.name}: {e}") from e
        if check and done.returncode != 0:
            err = (done.stderr or b"").decode(errors="replace").strip()
            raise ContainerError(f"{self.name} {args[0]} failed: {err or done.returncode}")
        return done

    def prepare_spec(self, config: dict) -> None:
        """Fit `config` (an OCI runtime spec) to this runtime and host, in place."""
        self.add_compiled_seccomp(config)
        if self.name == "runc" and not _cgroup2_only():
            _drop_device_denials_under_wildcards(config)

    def add_compiled_seccomp(self, config: dict) -> None:
        """crun only: put the compiled seccomp filter in `config`, so crun need not compile it.

        Without libseccomp, or for a filter lamina does not compile, crun compiles it itself.
        """
        if self.name != "crun" or "seccomp" not in config.get("linux", {}):
            return
        try:
            data = seccomp.cached_bpf(config["linux"]["seccomp"], STATE_ROOT / "seccomp")
        except (OSError, ValueError):
            return
        config.setdefault("annotations", {})[BPF_ANNOTATION] = \
            binascii.b2a_base64(data, newline=False).decode()     # base64's import costs ms

    # --- the runtime's verbs -------------------------------------------------------------------

    def create(self, container_id: str, bundle: Path, *, pid_file: Path, log: Path,
               console_socket: Path | None = None, command: str = "", **stdio) -> None:
        """`create`: set the container up; its init waits before exec until start().

        The container inherits the stdin/stdout/stderr given (unless it has a terminal); the
        runtime and the container run in a new session, so a terminal's ^C reaches lamina
        only, which forwards it. A failure raises the error start_error() maps from the
        runtime's log for `command` (the container's argv[0]).

        Prefer create + start to `run --detach`: a container that exits at once can be reaped
        by the runtime itself before a subreaper waiting for it gets the chance (seen with
        `true`), and its exit status is then lost.
        """
        args = ["create", "--pid-file", str(pid_file), "--bundle", str(bundle)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        done = self.call(*args, container_id, log=log, check=False, new_session=True, **stdio)
        if done.returncode != 0:
            messages = log_messages(log)
            text = messages[-1] if messages else f"{self.name} exited with {done.returncode}"
            raise start_error(text, command)

    def spawn_run(self, container_id: str, bundle: Path, *, pid_file: Path, log: Path,
                  **stdio) -> subprocess.Popen:
        """`run` in the foreground, started and not waited for: one runtime process creates
        the container, starts it, forwards the signals it gets to it, waits for it, deletes
        it and exits with its status (128+N when signal N killed it), where create, start
        and delete take three. The container inherits the stdio given; the runtime runs in a
        new session and dies with the lamina thread that started it."""
        preexec = _die_with_parent_in_cgroup_view if self.workaround else _die_with_parent
        argv = self.argv("run", "--pid-file", str(pid_file), "--bundle", str(bundle),
                         container_id, log=log)
        try:
            return subprocess.Popen(argv, preexec_fn=preexec, start_new_session=True, **stdio)
        except (OSError, subprocess.SubprocessError) as e:
            raise ContainerError(f"cannot run {self.name}: {e}") from e

    def start(self, container_id: str) -> None:
        self.call("start", container_id)

    def kill(self, container_id: str, signal: int) -> None:
        self.call("kill", container_id, str(signal))

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self.call("delete", *(["--force"] if force else []), container_id)

    def state(self, container_id: str) -> dict | None:
        """The runtime's state of the container, or None when it does not know it."""
        done = self.call("state", container_id, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def list(self) -> list[dict]:
        done = self.call("list", "--format", "json", check=False)
        # runc prints "null" when it has no containers
        return (json.loads(done.stdout or b"[]") or []) if done.returncode == 0 else []


def _cgroup2_only() -> bool:
    return mount_types(Path("/proc/self/mountinfo").read_text()).get(CGROUP_ROOT) == "cgroup2"


def _drop_device_denials_under_wildcards(config: dict) -> None:
    """runc refuses, on cgroup v1, a deny rule for devices that an earlier allow rule covers with
    a wildcard (Docker's "c *:* m" then "deny c 10:229 rwm" for /dev/fuse: "cannot punch hole
    in existing wildcard rule"). The v1 kernel only removes exceptions that match a deny rule
    exactly, so such a rule changes nothing there (the default deny already covers read and
    write): leave it out."""
    rules = config.get("linux", {}).get("resources", {}).get("devices")
    if not rules:
        return
    kept: list[dict] = []
    for rule in rules:
        covered = any(r.get("allow") and r.get("type", "a") in ("a", rule.get("type", "a"))
                      and "major" not in r for r in kept)
        if rule.get("allow") or "major" not in rule or not covered:
            kept.append(rule)
    config["linux"]["resources"]["devices"] = kept


def remove_cgroup_parents(relative: str, root: str = CGROUP_ROOT) -> None:
    """rmdir the now-empty parents the runtime leaves behind (e.g. /lamina in each v1 controller).

    Best effort: a parent still holding another container's cgroup stays.
    """
    parts = [p for p in relative.strip("/").split("/") if p][:-1]
    bases = [root] + [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    for base in bases:
        for depth in range(len(parts), 0, -1):
            try:
                os.rmdir(os.path.join(base, *parts[:depth]))
            except OSError:
                break

