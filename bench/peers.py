"""The peers of issue 8 (Docker, Buildah, Podman, Skopeo) and a local registry, for one bench run.

- ``ensure_installed()`` installs the missing ones from Debian's packages (apt-get);
- ``Dockerd`` starts a private ``dockerd`` (data-root and exec-root under the run's temp dir,
  its own ``-H unix://`` socket, ``--iptables=false --bridge=none``: the host's network is not
  touched) and stops it; Buildah and Podman are daemonless and get their own ``--root`` and
  ``--runroot`` under the temp dir, so nothing of theirs outlives the run;
- ``Registry`` is a ``docker-registry`` on 127.0.0.1 with its storage under the temp dir.

Each tool is handed the same busybox base, from the tarball ``lamina save`` wrote.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

APT_PACKAGES = {"dockerd": "docker.io", "buildah": "buildah", "podman": "podman",
                "skopeo": "skopeo", "docker-registry": "docker-registry", "crun": "crun"}
DOCKER_CLIENT = "/usr/bin/docker"   # the client of Debian's docker.io, same version as its dockerd


def ensure_installed(log=print) -> dict[str, str]:
    """Install what is missing; return {tool: reason} for the tools still unusable."""
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items() if not shutil.which(tool)}
                     | ({"docker.io"} if not Path(DOCKER_CLIENT).exists() else set()))
    if missing:
        log(f"    installing from Debian's packages: {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        r = subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            log(f"    apt-get install failed: {r.stderr.strip()[-300:]}")
    problems = {}
    for tool in APT_PACKAGES:
        if not shutil.which(tool):
            problems[tool] = f"{tool} not installed (apt-get install {APT_PACKAGES[tool]} failed)"
    if not Path(DOCKER_CLIENT).exists():
        problems["docker"] = "docker client not installed"
    return problems


def version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dockerd:
    root: Path
    proc: subprocess.Popen | None = None
    host: str = ""

    def start(self, timeout: float = 60) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        sock = self.root / "docker.sock"
        self.host = f"unix://{sock}"
        self.log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "-H", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
             "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
             "--userland-proxy=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}: "
                                   + (self.root / "dockerd.log").read_text()[-500:])
            if sock.exists() and subprocess.run(self.cmd("version"), capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer in time: "
                           + (self.root / "dockerd.log").read_text()[-500:])

    def cmd(self, *args: str) -> list[str]:
        return [DOCKER_CLIENT, "-H", self.host, *args]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            subprocess.run(self.cmd("container", "prune", "-f"), capture_output=True, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        # the containerd dockerd started, should it have survived its parent
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        _unmount_under(self.root)


@dataclass
class Containers:
    """Podman's or Buildah's flags for a private storage under ``root``."""
    root: Path

    def flags(self) -> list[str]:
        return ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "overlay"]

    def podman(self, *args: str) -> list[str]:
        return ["podman", *self.flags(), "--cgroup-manager", "cgroupfs", "--events-backend",
                "file", "--tmpdir", str(self.root / "tmp"), *args]

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", *self.flags(), *args]

    def cleanup(self) -> None:
        pre = private_cgroup_view if needs_cgroup_workaround() else None
        subprocess.run(self.podman("rm", "-af"), capture_output=True, preexec_fn=pre)
        subprocess.run(self.buildah("rm", "-a"), capture_output=True, preexec_fn=pre)
        subprocess.run(self.podman("system", "reset", "-f"), capture_output=True, preexec_fn=pre)
        _unmount_under(self.root)


@dataclass
class Registry:
    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    generation: int = field(default=0)

    def start(self, timeout: float = 30) -> None:
        """Start (or restart) on an empty storage, so no blob is already there."""
        self.stop()
        self.generation += 1
        store = self.root / f"storage{self.generation}"
        store.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {store}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self.log = open(self.root / "registry.log", "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: "
                                   + (self.root / "registry.log").read_text()[-500:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not listen in time")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for old in self.root.glob("storage*"):
            shutil.rmtree(old, ignore_errors=True)


def needs_cgroup_workaround() -> bool:
    """A hybrid host (v1 tmpfs at /sys/fs/cgroup, a cgroup2 with controllers at .../unified):
    crun refuses it ("cgroups in hybrid mode not supported"), so buildah's, podman's and the
    bare crun's calls get the same private mount namespace without the cgroup2 mount that
    lamina's runtime calls get (lamina.runtime.crun)."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        controllers = Path(UNIFIED, "cgroup.controllers").read_text().strip()
    except OSError:
        return False
    fs = {line.split()[4]: line.split(" - ")[1].split()[0] for line in mounts if " - " in line}
    return fs.get("/sys/fs/cgroup") == "tmpfs" and fs.get(UNIFIED) == "cgroup2" and bool(controllers)


UNIFIED = "/sys/fs/cgroup/unified"
_libc = ctypes.CDLL(None, use_errno=True)


def private_cgroup_view() -> None:
    """preexec_fn: unshare the mount namespace and lazily unmount the cgroup2 of a hybrid host."""
    libc = _libc
    if libc.unshare(0x20000) != 0:                                   # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, 0x4000 | (1 << 18), None) != 0:   # MS_REC | MS_PRIVATE
        raise OSError(ctypes.get_errno(), "make / private")
    if libc.umount2(UNIFIED.encode(), 2) != 0:                       # MNT_DETACH
        raise OSError(ctypes.get_errno(), f"umount {UNIFIED}")


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever a peer left mounted under ``root`` (deepest first)."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve())
    points = [line.split()[4] for line in mounts]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
