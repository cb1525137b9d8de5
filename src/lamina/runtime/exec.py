"""``exec``: another process in a running container, through ``crun exec --process``.

The process starts from the container's own (its bundle's config.json: capabilities, rlimits,
environment, user, working directory), with what ``exec`` changes: Docker keeps the
container's environment and adds ``-e``; ``-u`` is resolved in the container's /etc/passwd
and also moves HOME.

With -t the runtime hands the pseudo-terminal's master over a console socket while it waits for
the process; a thread runs the runtime, and this thread copies the terminal to our stdout (and
our stdin to it with -i, our own terminal raw), resizing it on SIGWINCH. Without -t the process
gets our stdio directly.

When the runtime itself fails (no such command, say), it prints its message on the stderr the
process would have had; lamina does not repeat it and exits with Docker's code for it (126,
127, else 125), found from the runtime's log.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import tty as ttymod
from collections.abc import Sequence
from pathlib import Path

from . import cgroupwarm
from .crun import Runtime, log_messages, start_error
from .errors import ContainerError
from .process import terminal_size
from .spec import environment
from .users import resolve_user


def exec_in_container(cdir: Path, container_id: str, argv: Sequence[str], *,
                      env: Sequence[str] = (), user: str | None = None,
                      workdir: str | None = None, tty: bool = False, interactive: bool = False,
                      detach: bool = False) -> int:
    """Run ``argv`` in the running container whose directory is ``cdir``; its exit status
    (0 at once with ``detach``)."""
    cgroupwarm.start()      # the runtime joins the container's cgroups: see there
    if not argv:
        raise ContainerError("no command given to exec")
    if workdir is not None and not workdir.startswith("/"):
        raise ContainerError(f"the working directory {workdir!r} is invalid, "
                             "it needs to be an absolute path")
    config = json.loads((cdir / "bundle" / "config.json").read_text())
    process = _process(config, argv, env=env, user=user, workdir=workdir,
                       terminal=tty and not detach, root=cdir / "merged")
    runtime = Runtime()
    token = secrets.token_hex(4)
    process_file, log = cdir / f"exec-{token}.json", cdir / f"exec-{token}.log"
    process_file.write_text(json.dumps(process))
    args = ["exec", "--process", str(process_file), *(["--detach"] if detach else [])]
    try:
        if process["terminal"]:
            code = _with_terminal(runtime, args, container_id, interactive, log)
        else:
            quiet = subprocess.DEVNULL
            code = runtime.call(*args, container_id, log=log, check=False,
                                stdin=None if interactive and not detach else quiet,
                                stdout=quiet if detach else None,
                                stderr=quiet if detach else None).returncode
        messages = log_messages(log) if code else []
        if messages:    # the runtime's failure, not the process's exit status
            return start_error(messages[-1], argv[0]).exit_code
        return code
    finally:
        process_file.unlink(missing_ok=True)
        log.unlink(missing_ok=True)


def _process(config: dict, argv: Sequence[str], *, env: Sequence[str], user: str | None,
             workdir: str | None, terminal: bool, root: Path) -> dict:
    process = {k: v for k, v in config["process"].items() if k != "consoleSize"}
    base_env = list(process.get("env") or ())
    home = next((e[5:] for e in base_env if e.startswith("HOME=")), "/")
    if user:
        found = resolve_user(root, user)
        process["user"] = {"uid": found.uid, "gid": found.gid}
        if found.additional_gids:
            process["user"]["additionalGids"] = list(found.additional_gids)
        base_env = [e for e in base_env if not e.startswith("HOME=")]
        home = found.home
    process.update(args=list(argv), terminal=terminal, cwd=workdir or process.get("cwd", "/"),
                   env=environment(base_env, env, hostname=config.get("hostname", ""),
                                   tty=terminal, home=home))
    return process


def _with_terminal(runtime: Runtime, args: list[str], container_id: str, interactive: bool,
                   log: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="lamina-") as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as console, \
            contextlib.ExitStack() as stack:
        console.bind(f"{tmp}/console.sock")
        console.listen(1)
        result: list[int] = []

        def call() -> None:
            done = runtime.call(*args, "--console-socket", f"{tmp}/console.sock", container_id,
                                log=log, check=False, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
            result.append(done.returncode)

        worker = threading.Thread(target=call, name="crun-exec", daemon=True)
        worker.start()
        console.settimeout(0.05)
        while True:     # until the runtime connects, or fails without connecting
            try:
                conn, _ = console.accept()
                break
            except TimeoutError:
                if not worker.is_alive():
                    return result[0]
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        master = fds[0]
        stack.callback(os.close, master)
        size = terminal_size(0) or terminal_size(1)
        if size:
            _resize(master, size)
        if interactive and os.isatty(0):
            saved = termios.tcgetattr(0)
            ttymod.setraw(0)
            stack.callback(termios.tcsetattr, 0, termios.TCSADRAIN, saved)
        _relay(master, interactive, worker)
        worker.join()
        return result[0]


def _relay(master: int, interactive: bool, worker: threading.Thread) -> None:
    """Copy the terminal's output to stdout (and stdin to it) until the process is done."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    main = threading.current_thread() is threading.main_thread()   # signals reach it only
    if main:
        previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handler = signal.signal(signal.SIGWINCH, lambda *_: None)
    try:
        inputs = [master, wake_r] + ([0] if interactive else [])
        while master in inputs:
            ready, _, _ = select.select(inputs, [], [], 0.1)
            if wake_r in ready:
                os.read(wake_r, 256)
                size = terminal_size(0) or terminal_size(1)
                if size:
                    _resize(master, size)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:     # EIO: every process on the terminal is gone
                    data = b""
                if data:
                    _write_all(1, data)
                else:
                    inputs.remove(master)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    inputs.remove(0)
            if not ready and not worker.is_alive():
                break       # the process is done and the terminal said all it had
    finally:
        if main:
            signal.signal(signal.SIGWINCH, handler)
            signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)


def _resize(fd: int, size: tuple[int, int]) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
