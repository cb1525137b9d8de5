"""Build progress: the builder reports events, a display shows them.

The builder numbers its vertices (#1, #2 ...: loading the Dockerfile, each step, the export)
and reports for each: started, a log line, container output, cached, done or failed. The
displays follow BuildKit's:

- ``PlainProgress`` (``--progress=plain``, and for logs)::

      #4 [2/3] RUN echo hi
      #4 0.105 hi
      #4 DONE 0.2s

      #5 [3/3] COPY . /app
      #5 CACHED

- ``TtyProgress`` (a terminal): one line per finished step (`` => CACHED [2/3] RUN ...``) and,
  while a step runs, one line with its time and its latest output, rewritten in place;
- ``Progress`` itself shows nothing (``-q``, ``--progress=quiet``, the Python API).

A display writes to its own duplicate of the stream's file descriptor: while a RUN step runs,
descriptors 1 and 2 carry the container's output into the builder (see sandbox.py), and the
display must still reach the terminal.

Independent stages build at once, in threads: every event may come from any thread, and the
steps interleave as in BuildKit's output, each line with its ``#N``.
"""
from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import TextIO


class Progress:
    """The events of a build; this base class shows nothing."""

    def __init__(self) -> None:
        self._next = 0
        self._started: dict[int, float] = {}
        self._count = threading.Lock()

    def start(self, name: str) -> int:
        """A new vertex called ``name``; returns its number."""
        with self._count:
            self._next += 1
            self._started[self._next] = time.monotonic()
            return self._next

    def elapsed(self, vertex: int) -> float:
        return time.monotonic() - self._started[vertex]

    def log(self, vertex: int, text: str) -> None:
        """A line about the vertex's work (``writing image sha256:... done``)."""

    def output(self, vertex: int, data: bytes) -> None:
        """Bytes a RUN step's container wrote (stdout and stderr, interleaved)."""

    def cached(self, vertex: int) -> None:
        """The vertex's result came from the build cache."""

    def done(self, vertex: int) -> None:
        pass

    def error(self, vertex: int, message: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Display(Progress):
    """Common part of the displays: the output channel and partial output lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._stream = stream
        try:
            self._fd: int | None = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError):
            self._fd = None    # no descriptor (a StringIO): write to the stream itself
        self._partial: dict[int, bytes] = {}

    def _write(self, text: str) -> None:
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self._fd, data):]

    def output(self, vertex: int, data: bytes) -> None:
        with self._lock:
            lines = (self._partial.pop(vertex, b"") + data).split(b"\n")
            if lines[-1]:
                self._partial[vertex] = lines[-1]
            for line in lines[:-1]:
                self._line(vertex, line.rstrip(b"\r").decode("utf-8", "replace"))

    def _flush_partial(self, vertex: int) -> None:
        rest = self._partial.pop(vertex, b"")
        if rest:
            self._line(vertex, rest.decode("utf-8", "replace"))

    def _line(self, vertex: int, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PlainProgress(_Display):
    """BuildKit's ``--progress=plain``."""

    def start(self, name: str) -> int:
        with self._lock:   # numbered and shown in the same order
            vertex = super().start(name)
            self._write(f"#{vertex} {name}\n")
        return vertex

    def log(self, vertex: int, text: str) -> None:
        with self._lock:
            self._write(f"#{vertex} {text}\n")

    def _line(self, vertex: int, text: str) -> None:
        self._write(f"#{vertex} {self.elapsed(vertex):.3f} {text}\n")

    def cached(self, vertex: int) -> None:
        with self._lock:
            self._write(f"#{vertex} CACHED\n\n")

    def done(self, vertex: int) -> None:
        with self._lock:
            self._flush_partial(vertex)
            self._write(f"#{vertex} DONE {self.elapsed(vertex):.1f}s\n\n")

    def error(self, vertex: int, message: str) -> None:
        with self._lock:
            self._flush_partial(vertex)
            first = message.splitlines()[0] if message else "failed"
            self._write(f"#{vertex} ERROR: {first}\n\n")

    def warning(self, text: str) -> None:
        with self._lock:
            self._write(f"WARNING: {text}\n")


class TtyProgress(_Display):
    """A compact view for a terminal: finished steps one per line, the running one live."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._names: dict[int, str] = {}
        self._last: dict[int, str] = {}
        self._live = False
        self._running: list[int] = []   # the steps running, latest last
        self._stop = threading.Event()
        # The running step's clock ticks even when it prints nothing.
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if self._running and self._fd is not None:
                    self._status(self._running[-1])

    def start(self, name: str) -> int:
        with self._lock:
            vertex = super().start(name)
            self._names[vertex] = name
            self._running.append(vertex)
            self._status(vertex)
        return vertex

    def _status(self, vertex: int) -> None:
        last = self._last.get(vertex, "")
        text = f" => {self._names[vertex]} {self.elapsed(vertex):.1f}s"
        if last:
            text += f"  > {last}"
        width = _columns(self._fd) - 1
        self._write("\r\x1b[K" + text[:width])
        self._live = True

    def _finish(self, vertex: int, text: str) -> None:
        if vertex in self._running:
            self._running.remove(vertex)
        if self._live:
            self._write("\r\x1b[K")
            self._live = False
        self._write(text + "\n")

    def _line(self, vertex: int, text: str) -> None:
        self._last[vertex] = text
        self._status(vertex)

    def log(self, vertex: int, text: str) -> None:
        pass   # detail for plain logs; the compact view shows steps only

    def cached(self, vertex: int) -> None:
        with self._lock:
            self._finish(vertex, f" => CACHED {self._names[vertex]}")

    def done(self, vertex: int) -> None:
        with self._lock:
            self._partial.pop(vertex, None)
            self._finish(vertex, f" => {self._names[vertex]}  {self.elapsed(vertex):.1f}s")

    def error(self, vertex: int, message: str) -> None:
        with self._lock:
            self._partial.pop(vertex, None)
            self._finish(vertex, f" => ERROR {self._names[vertex]}  "
                                 f"{self.elapsed(vertex):.1f}s")

    def warning(self, text: str) -> None:
        with self._lock:
            self._finish(0, f"WARNING: {text}")

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            super().close()


def _columns(fd: int | None) -> int:
    try:
        return os.get_terminal_size(fd if fd is not None else 2).columns
    except OSError:
        return 80


def make_progress(mode: str, stream: TextIO) -> Progress:
    """The display for ``--progress``: auto (tty on a terminal, else plain), plain, tty,
    quiet."""
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    if mode == "plain":
        return PlainProgress(stream)
    if mode == "tty":
        return TtyProgress(stream)
    return Progress()
