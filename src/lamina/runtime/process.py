"""Run a container in the foreground: stdio attached, signals forwarded, its status returned.

The runtime creates the container and exits; lamina, a child subreaper, adopts the
container's init, starts it and waits for it through a pidfd. One poll loop then
- relays the container's output. Without -t, stdout is our stdout as is, but stderr comes
  through a pipe, because the runtime writes its own errors to that same stderr: what arrives
  before `start` is the runtime's and is sorted out against its log, so that a failure is
  reported once, as an error with Docker's exit code. With -t, the pty master (received on
  the console socket) is copied to our stdout, and our stdin to it (-i), our terminal raw;
- forwards the signals lamina receives to the container (`kill`), and SIGWINCH as a resize;
- returns the container's exit status, 128+N when signal N killed it.

An exec that fails once the container has started (a script whose interpreter is missing, a
binary for another CPU) is reported by the container's init on the container's stderr, as the
runtime's JSON log line; the relay recognises that line at the very start of the output.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .crun import Runtime, log_messages, start_error
from .errors import ContainerError

FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
             signal.SIGUSR2)
EXEC_FAILURE = b'{"msg":"exec container process'
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
STDIN, STDOUT, STDERR = 0, 1, 2     # the process's own stdio, whatever sys.stdout is

@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """While it lasts, orphans below us (the container's init, once the runtime exits) become
    our children. Turned off again afterwards when it was off: a long-lived caller (a test
    runner, a program using the API) must not keep adopting unrelated orphans it never reaps."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    was = ctypes.c_int(0)
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    if not was.value and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        if not was.value:
            prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, or None if it is not a terminal."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    except OSError:
        return None
    return rows, cols


def _set_size(fd: int, size: tuple[int, int]) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class _Relay:
    """Copies one source fd to one destination fd, spotting an exec failure at the start."""

    def __init__(self, src: int, dst: int, *, watch_exec: bool) -> None:
        self.src, self.dst = src, dst
        self.head = b"" if watch_exec else None     # held back while it may be that line
        self.exec_error: str | None = None

    def feed(self, data: bytes) -> None:
        if self.head is None:
            _write_all(self.dst, data)
            return
        self.head += data
        if not (EXEC_FAILURE.startswith(self.head) or self.head.startswith(EXEC_FAILURE)):
            self.flush()
        elif b"\n" in self.head:
            line, _, rest = self.head.partition(b"\n")
            with contextlib.suppress(ValueError, AttributeError):
                self.exec_error = json.loads(line)["msg"]
            self.head = rest
            self.flush()

    def flush(self) -> None:
        head, self.head = self.head, None
        if head:
            _write_all(self.dst, head)

    def pump(self) -> bool:
        """Copy what is readable; False at the end of the stream (EOF, or EIO from a pty)."""
        try:
            data = os.read(self.src, 65536)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if data:
            self.feed(data)
            return True
        self.flush()
        return False


class _Signals:
    """Catch the forwarded signals (and SIGWINCH) into a wakeup fd, if we are the main thread."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.saved: dict[int, object] = {}
        self.saved_wakeup = -1
        self.active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> "_Signals":
        if self.active:
            self.saved_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
            for sig in (*FORWARDED, signal.SIGWINCH):
                self.saved[sig] = signal.signal(sig, lambda *_: None)
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            for sig, handler in self.saved.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(self.saved_wakeup)
        os.close(self.read_fd)
        os.close(self.write_fd)

    def pending(self) -> list[int]:
        try:
            return list(os.read(self.read_fd, 256))
        except BlockingIOError:
            return []


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run_attached(runtime: Runtime, container_id: str, bundle: Path, *, tty: bool,
                 interactive: bool, command: str, log: Path) -> int:
    """Start the container of `bundle` and stay attached until it exits; its exit status.

    `command` (the container's argv[0]) words the errors; `log` receives the runtime's log.
    A failure to start raises a ContainerError with Docker's exit code (125, 126, 127).
    """
    pid_file = bundle / "init.pid"
    with subreaper(), _Signals() as signals, contextlib.ExitStack() as stack:
        # create, then start: once `create` returns, the init waits for `start` as our child,
        # so it cannot exit (and be reaped by the runtime) before we wait for it.
        if tty:
            relays, stdin_relay = _create_with_terminal(stack, runtime, container_id, bundle,
                                                        pid_file, log, interactive, command)
        else:
            relays = [_create_with_stderr_pipe(stack, runtime, container_id, bundle, pid_file,
                                               log, interactive, command)]
            stdin_relay = None
        pid = int(pid_file.read_text())
        status = None
        try:
            runtime.start(container_id)
            status = _supervise(runtime, container_id, pid, signals, relays, stdin_relay, tty)
        finally:
            if status is None:     # interrupted by an error: do not leave the container behind
                with contextlib.suppress(Exception):
                    runtime.kill(container_id, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    exec_error = next((r.exec_error for r in relays if r.exec_error), None)
    if exec_error:
        raise start_error(exec_error, command)
    return _exit_code(status)


def _create_with_stderr_pipe(stack: contextlib.ExitStack, runtime: Runtime, container_id: str,
                             bundle: Path, pid_file: Path, log: Path, interactive: bool,
                             command: str) -> _Relay:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    stack.callback(os.close, read_fd)
    relay = _Relay(read_fd, STDERR, watch_exec=True)
    try:
        runtime.create(container_id, bundle, pid_file=pid_file, log=log, command=command,
                       stdin=STDIN if interactive else subprocess.DEVNULL, stdout=STDOUT,
                       stderr=write_fd)
    finally:
        os.close(write_fd)
        # Before `start` only the runtime writes to the pipe: its errors (copies of its log
        # lines) are dropped, they become the raised error; its warnings are passed on.
        os.set_blocking(read_fd, False)
        log_lines = {f"{m}\n".encode() for m in log_messages(log)}
        for line in _drain(read_fd).splitlines(keepends=True):
            if line not in log_lines:
                _write_all(relay.dst, line)
    return relay


def _drain(fd: int) -> bytes:
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _create_with_terminal(stack: contextlib.ExitStack, runtime: Runtime, container_id: str,
                          bundle: Path, pid_file: Path, log: Path, interactive: bool,
                          command: str) -> tuple[list[_Relay], _Relay | None]:
    """Create the container with a pty; our terminal goes raw when we type into it (-i)."""
    import socket   # here: `run` without -t does not pay for these imports
    import tempfile
    import tty as ttymod

    sockdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lamina-")))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as console:
        console.bind(str(sockdir / "console.sock"))   # short path: sun_path has 108 bytes
        console.listen(1)
        runtime.create(container_id, bundle, pid_file=pid_file, log=log, command=command,
                       console_socket=sockdir / "console.sock")
        console.settimeout(5)     # the runtime has connected by now; never hang on it
        try:
            conn, _ = console.accept()
        except TimeoutError:
            raise ContainerError(f"{runtime.name} sent no terminal for the container") from None
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    master = fds[0]
    stack.callback(os.close, master)
    os.set_blocking(master, False)
    stdin_relay = None
    if interactive:
        stdin = STDIN
        if os.isatty(stdin):
            saved = termios.tcgetattr(stdin)
            ttymod.setraw(stdin)
            stack.callback(termios.tcsetattr, stdin, termios.TCSADRAIN, saved)
        stdin_relay = _Relay(stdin, master, watch_exec=False)
    return [_Relay(master, STDOUT, watch_exec=True)], stdin_relay


def _supervise(runtime: Runtime, container_id: str, pid: int, signals: _Signals,
               relays: list[_Relay], stdin_relay: _Relay | None, tty: bool) -> int:
    """Relay and forward until the init exits and its output ends; its wait status."""
    status: int | None = None
    open_relays = list(relays)
    pidfd = os.pidfd_open(pid)
    try:
        while status is None or open_relays:
            watch = [signals.read_fd] + [r.src for r in open_relays]
            if status is None:
                watch.append(pidfd)
                if stdin_relay is not None:
                    watch.append(stdin_relay.src)
            ready, _, _ = select.select(watch, [], [])
            if signals.read_fd in ready:
                _forward(runtime, container_id, signals.pending(), relays, tty)
            for relay in [r for r in open_relays if r.src in ready]:
                if not relay.pump():
                    open_relays.remove(relay)
            if stdin_relay is not None and stdin_relay.src in ready and not stdin_relay.pump():
                stdin_relay = None
            if pidfd in ready:
                status = os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)
    return status


def _forward(runtime: Runtime, container_id: str, signums: list[int], relays: list[_Relay],
             tty: bool) -> None:
    for signum in signums:
        if signum == signal.SIGWINCH:
            size = terminal_size(STDIN) or terminal_size(STDOUT)
            if tty and size:
                _set_size(relays[0].src, size)
        else:
            # The container may be gone already; then there is nothing to signal.
            with contextlib.suppress(Exception):
                runtime.kill(container_id, signum)


# --- one runtime call: `crun run` -------------------------------------------------------------

def run_in_one_call(runtime: Runtime, container_id: str, bundle: Path, *, interactive: bool,
                    command: str, log: Path, on_started: Callable[[int], None] | None = None
                    ) -> int:
    """As run_attached without a terminal, with one `crun run` (Runtime.spawn_run) instead of
    create, start and delete (two runtime processes fewer, ~15 ms). crun only: runc writes
    its pid file by rename, which the FIFO below cannot see.

    The pid file is a FIFO that we read: crun writes the init's pid there once the container
    is created, before it starts it. Until then what comes on stderr is the runtime's, held
    back: if the runtime exits without a pid, its errors are in its log and raised as
    create's are, its other lines passed on. Signals that come before the pid wait for it;
    then they go to crun, which forwards them to the container. `on_started(pid)` is called
    with the pid.
    """
    pid_file = bundle / "init.pid"
    os.mkfifo(pid_file, 0o600)
    # Non-blocking, so that crun's open for writing does not wait for a reader.
    pid_fd = os.open(pid_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with _Signals() as signals, contextlib.ExitStack() as stack:
        stack.callback(os.close, pid_fd)
        stack.callback(os.close, read_fd)
        try:
            proc = runtime.spawn_run(container_id, bundle, pid_file=pid_file, log=log,
                                     stdin=STDIN if interactive else subprocess.DEVNULL,
                                     stdout=STDOUT, stderr=write_fd)
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        relay = _Relay(read_fd, STDERR, watch_exec=True)
        try:
            pid, held = _follow_run(proc, pid_fd, signals, relay, on_started)
        except BaseException:
            with contextlib.suppress(Exception):
                runtime.kill(container_id, signal.SIGKILL)
            proc.wait()
            raise
    if pid is None:     # not created: the runtime's errors become ours, as with create
        log_lines = {f"{m}\n".encode() for m in log_messages(log)}
        for line in held.splitlines(keepends=True):
            if line not in log_lines:
                _write_all(STDERR, line)
        messages = log_messages(log)
        raise start_error(messages[-1] if messages
                          else f"{runtime.name} exited with {proc.returncode}", command)
    if relay.exec_error:
        raise start_error(relay.exec_error, command)
    code = proc.returncode
    return 128 - code if code < 0 else code


def _follow_run(proc: subprocess.Popen, pid_fd: int, signals: _Signals, relay: _Relay,
                on_started: Callable[[int], None] | None) -> tuple[int | None, bytes]:
    """Run's loop for run_in_one_call: until the runtime has exited and stderr has ended.
    The container's pid (None if it was never created) and the stderr held back without one."""
    procfd = os.pidfd_open(proc.pid)
    try:
        pid_text, pid, held, waiting = b"", None, b"", []
        exited, stderr_open, pid_open = False, True, True
        while not exited or stderr_open:
            watch = [signals.read_fd] + ([relay.src] if stderr_open else [])
            watch += ([] if exited else [procfd]) + ([pid_fd] if pid_open else [])
            ready, _, _ = select.select(watch, [], [])
            if pid_fd in ready:
                data = os.read(pid_fd, 64)     # crun writes it at once: less than PIPE_BUF
                pid_text += data
                pid_open = bool(data) and not pid_text.strip().isdigit()
                if pid is None and pid_text.strip().isdigit():
                    pid = int(pid_text)
                    if on_started is not None:
                        on_started(pid)
                    relay.feed(held)
                    held = b""
            if signals.read_fd in ready:
                waiting += [s for s in signals.pending() if s != signal.SIGWINCH]
            if pid is not None and not exited:
                for signum in waiting:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signum)   # crun forwards it to the container
                waiting = []
            if stderr_open and relay.src in ready:
                if pid is None:
                    with contextlib.suppress(BlockingIOError):
                        data = os.read(relay.src, 65536)
                        held += data
                        stderr_open = bool(data)
                else:
                    stderr_open = relay.pump()
            if procfd in ready:
                proc.wait()
                exited = True
        relay.flush()
        return pid, held
    finally:
        os.close(procfd)
