"""Wait out the kernel's cgroup-migration stall while lamina does its own work.

On a host with cgroup v1 hierarchies (hybrid, as here), the OCI runtime moves each new
container (and each `exec`) into its cgroups by writing its pid to ``cgroup.procs``. The
kernel takes one global lock for that, and after a quiet spell the first writer waits for an
RCU grace period before it gets it: measured 15-20 ms here for a bare `crun run` started
100 ms after the previous one, against 8 ms when runs follow each other at once (the lock
stays in writer mode for about one grace period after its last writer).

``start()`` starts a thread that writes lamina's own pid to the ``cgroup.procs`` of the cgroup
lamina is already in, every few milliseconds: a move to where the process already is, so
nothing changes, but the kernel takes the same lock. The grace period then passes while
lamina parses, mounts and writes the bundle, and the runtime's writes find the lock ready.
The thread ends ``seconds`` after the last ``start()`` (lamina usually exits before); on a
host without cgroup v1 hierarchies, or where the file cannot be written, it does nothing.
"""
from __future__ import annotations

import _thread
import os
import time

INTERVAL = 0.003        # well under one grace period: the lock never goes back to idle
CGROUP_ROOT = "/sys/fs/cgroup"

_state = {"until": 0.0, "running": False}
_lock = _thread.allocate_lock()


def own_procs_file(proc_cgroup: str, root: str = CGROUP_ROOT) -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup in its first cgroup v1 hierarchy,
    from the text of /proc/self/cgroup (``ID:CONTROLLERS:PATH`` lines; ID 0 is cgroup v2)."""
    for line in proc_cgroup.splitlines():
        ident, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if ident == "0" or not controllers or not path.startswith("/"):
            continue
        name = controllers.removeprefix("name=")
        return f"{root}/{name}{path.rstrip('/')}/cgroup.procs"
    return None


def start(seconds: float = 0.5) -> None:
    """Keep the lock warm for the next ``seconds`` (a running warmer is extended)."""
    with _lock:
        _state["until"] = time.monotonic() + seconds
        if _state["running"]:
            return
        try:
            with open("/proc/self/cgroup") as f:
                path = own_procs_file(f.read())
            if path is None:
                return
            os.close(os.open(path, os.O_WRONLY | os.O_CLOEXEC))    # writable here at all?
        except OSError:
            return
        _state["running"] = True
    _thread.start_new_thread(_warm, (path, str(os.getpid()).encode()))


def _write(path: str, pid: bytes) -> None:
    # Opened for each write, not held: a descriptor kept for half a second could be closed
    # by another's mistake and its number reused (a pipe), which would then get our pid.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, pid)
    finally:
        os.close(fd)


def _warm(path: str, pid: bytes) -> None:
    try:
        while True:
            with _lock:     # decided under the lock: a start() now either sees us run or not
                if time.monotonic() >= _state["until"]:
                    _state["running"] = False
                    return
            _write(path, pid)     # the first one waits out the grace period
            time.sleep(INTERVAL)
    except OSError:
        with _lock:
            _state["running"] = False
