"""RUN's container: a command over the parent's snapshots, its changes kept in an upper dir.

``run_step_container`` runs one RUN through the runtime (``run_container``, crun) in a
network of its own (``bridge`` by default, so ``apt-get install`` reaches the internet through
masquerade; ``host`` or ``none`` on request), with the step's extra mounts, and leaves the
container's upper dir behind for the caller to turn into a layer.

The container's output is captured through a pipe of its own, and a thread hands the bytes
to the progress display, keeping the last lines for an error. The runtime writes a
container's output to the process's descriptors 1 and 2, so a build whose stages run one after
another runs its containers in this process, with 1 and 2 pointed at the pipe; when stages
build in parallel, each container runs in a helper process (``python -c ...`` calling
``_child_main``, started in some 50 ms) whose descriptors 1 and 2 are its pipe.

The root is a ``volatile`` overlay: unmounting it does not sync the whole file system (a
syncfs each time). Its upper dir is read right away into the layer blob, which the content
store fsyncs; the snapshot it then becomes needs no more durability than one unpacked from a
blob (snapshots.py).

What the mounts leave behind is removed from the upper dir before it becomes a layer: the
runtime creates missing mount points (``/etc/hosts``, a cache mount's target, ``/proc`` in an
image that has none) as empty files and directories in it, and Docker's layers hold none.
"""
from __future__ import annotations

import collections
import contextlib
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError

# Mount points the runtime may create in the root file system (its own mounts and the /etc
# files bound over); removed from the upper dir when they are empty and were not there before.
RUNTIME_MOUNT_POINTS = ("etc/hosts", "etc/resolv.conf", "etc/hostname", "proc", "sys", "dev")
TAIL_LINES = 20
# Held by the container that runs in this process, its output through descriptors 1 and 2.
_IN_PROCESS = threading.Lock()


@dataclass(frozen=True)
class Bind:
    """A host directory (or file's directory) mounted into the step's container."""

    source: Path
    target: str               # absolute, in the container
    read_only: bool = True


@dataclass(frozen=True)
class ContainerRequest:
    """What one RUN step's container runs, as whom, and with which network and mounts."""

    argv: tuple[str, ...]
    env: tuple[str, ...]              # K=V, the whole environment of the command
    workdir: str
    user: str | None
    network: str                      # bridge, host, none
    binds: tuple[Bind, ...] = ()
    tmpfs: tuple[str, ...] = ()       # RunOptions.tmpfs specs


@dataclass(frozen=True)
class ContainerResult:
    """How a RUN step's container ended, and where its changes are to become a layer."""

    exit_code: int
    container_dir: Path               # remove it once the upper dir is used
    upper: Path
    tail: tuple[str, ...]             # the last lines of output


def run_step_container(state_root: Path, state_dir: Path, lowers: Sequence[Path],
                       request: ContainerRequest,
                       on_output: Callable[[bytes], None]) -> ContainerResult:
    """Run ``request`` over ``lowers`` (topmost first); the upper dir stays in the result.

    The container's directory is made in ``state_dir``; ``state_root`` keeps the network
    records (as for ``lamina run``).

    On an error before the command ran (network, runtime), nothing stays behind.
    """
    from ..runtime import RunOptions, run_container
    from ..runtime.network import attach, detach

    container_id = os.urandom(16).hex()
    cdir = state_dir / container_id
    for bind in request.binds:
        if ":" in str(bind.source) or ":" in bind.target:
            raise LaminaError(f"cannot mount {bind.target}: ':' in a mount path is not "
                              "supported", hint="use a path without ':'")
    options = RunOptions(
        command=request.argv, env=(), workdir=request.workdir, user=request.user,
        network_mode=request.network, tmpfs=request.tmpfs,
        binds=tuple(f"{b.source}:{b.target}:{'ro' if b.read_only else 'rw'}"
                    for b in request.binds))
    image_config = {"Env": list(request.env), "WorkingDir": request.workdir,
                    "User": request.user or ""}
    state_dir.mkdir(parents=True, exist_ok=True)
    network = attach(container_id, mode=request.network, state_root=state_root)
    try:
        # In-process capture points the process's descriptors 1 and 2 at a pipe: safe only when
        # no other thread runs a container meanwhile, i.e. on the main thread of a build whose
        # stages run one after another. Parallel stages run on pool threads: helpers for all.
        if threading.current_thread() is threading.main_thread() and \
                _IN_PROCESS.acquire(blocking=False):
            try:
                with _captured_output(on_output) as tail:
                    code = run_container(state_dir=state_dir, lowers=lowers,
                                         image_config=image_config, options=options,
                                         network=network, volatile=True, one_call=True)
            finally:
                _IN_PROCESS.release()
        else:
            code, tail = _run_in_helper(
                (state_dir, list(lowers), image_config, options, network), on_output)
    except BaseException:
        shutil.rmtree(cdir, ignore_errors=True)
        raise
    finally:
        detach(network, state_root=state_root)
    upper = cdir / "upper"
    remove_mount_points(upper, lowers, [*RUNTIME_MOUNT_POINTS,
                                        *(b.target for b in request.binds),
                                        *(t.partition(":")[0] for t in request.tmpfs)])
    return ContainerResult(code, cdir, upper, tuple(tail))


class _Tail:
    """The last lines of a container's output, from its bytes as they come."""

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.partial = bytearray()

    def feed(self, data: bytes) -> None:
        self.partial.extend(data)
        *lines, rest = bytes(self.partial).split(b"\n")
        self.lines.extend(line.rstrip(b"\r").decode("utf-8", "replace") for line in lines)
        self.partial[:] = rest

    def end(self) -> None:
        if self.partial:
            self.lines.append(bytes(self.partial).decode("utf-8", "replace"))
            self.partial.clear()


def _run_in_helper(call: tuple, on_output: Callable[[bytes], None]
                   ) -> tuple[int, collections.deque[str]]:
    """``run_container(*call)`` in a helper process whose output goes to ``on_output``;
    its exit code and last output lines. An error of the runtime is raised here again."""
    import pickle

    import lamina

    tail = _Tail()
    result_read, result_write = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ)
    package_parent = str(Path(lamina.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                      env.get("PYTHONPATH")]))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from lamina.build.sandbox import _child_main; "
             f"_child_main({result_write})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(result_write,), env=env)
    finally:
        os.close(result_write)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pickle.dumps(call))
        proc.stdin.close()
        while data := proc.stdout.read1(65536):
            on_output(data)
            tail.feed(data)
        proc.wait()
        with os.fdopen(result_read, "rb", closefd=False) as result:
            raw = result.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(result_read)
    tail.end()
    if not raw:
        raise LaminaError(f"the helper process running a build container failed "
                          f"(exit status {proc.returncode})")
    outcome = pickle.loads(raw)
    if outcome[0] == "error":
        _, message, hint, exit_code = outcome
        err = LaminaError(message, hint=hint)
        err.exit_code = exit_code
        raise err
    return outcome[1], tail.lines


def _child_main(result_fd: int) -> None:
    """The helper process: ``run_container`` with the arguments pickled on standard input;
    the outcome pickled to ``result_fd``."""
    import pickle

    from ..runtime import run_container

    state_dir, lowers, image_config, options, network = pickle.loads(sys.stdin.buffer.read())
    try:
        code = run_container(state_dir=state_dir, lowers=lowers, image_config=image_config,
                             options=options, network=network, volatile=True, one_call=True)
        outcome: tuple = ("ok", code)
    except LaminaError as err:
        outcome = ("error", err.message, err.hint, err.exit_code)
    except Exception as err:   # reported by the builder as a failed step
        outcome = ("error", f"{type(err).__name__}: {err}", None, 1)
    sys.stdout.flush()
    with os.fdopen(result_fd, "wb") as out:
        out.write(pickle.dumps(outcome))


@contextlib.contextmanager
def _captured_output(on_output: Callable[[bytes], None]) -> Iterator[collections.deque[str]]:
    """Point descriptors 1 and 2 at a pipe while the block runs; its bytes go to
    ``on_output``. Yields the last lines, complete once the block has ended."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    partial = bytearray()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)

    def pump() -> None:
        while data := os.read(read_fd, 65536):
            on_output(data)
            partial.extend(data)
            *lines, rest = bytes(partial).split(b"\n")
            tail.extend(line.rstrip(b"\r").decode("utf-8", "replace") for line in lines)
            partial[:] = rest

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    reader = threading.Thread(target=pump, name="run-output", daemon=True)
    reader.start()
    try:
        try:
            os.dup2(write_fd, 1)
            os.dup2(write_fd, 2)
        finally:
            # Closed here, once: its number may be another's by the end of the block (a
            # second close would close that: seen as the cgroup warmer's pid in a pipe).
            os.close(write_fd)
        yield tail
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        # Every writer is gone once the container has exited: the pipe ends now. A process
        # that escaped and kept the pipe open must not hang the build.
        reader.join(timeout=5)
        os.close(read_fd)
        if partial:
            tail.append(bytes(partial).decode("utf-8", "replace"))


def remove_mount_points(upper: Path, lowers: Sequence[Path], targets: Sequence[str]) -> None:
    """Remove mount points the runtime created in ``upper`` (absolute or relative targets).

    A target goes when it is an empty file or directory the lower layers do not have; then
    its parents, while they are empty and either new or a plain copy of the lower directory
    (same mode and owner: copied up only to hold the mount point).
    """
    from ..layer.whiteout import is_opaque, stat_in_layers

    for target in targets:
        rel = target.strip("/")
        while rel:
            path = upper / rel
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break
            below = stat_in_layers(lowers, rel)   # None: nothing there, or hidden
            if stat.S_ISDIR(st.st_mode):
                if os.listdir(path) or is_opaque(str(path)):
                    break
                if below is not None and (not stat.S_ISDIR(below.st_mode) or (
                        below.st_mode, below.st_uid, below.st_gid) !=
                        (st.st_mode, st.st_uid, st.st_gid)):
                    break
                os.rmdir(path)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0 and below is None:
                os.unlink(path)
            else:
                break
            rel = rel.rpartition("/")[0]
