"""``lamina pull``: an image from a registry, as ``docker pull`` prints it.

Also home of ``LayerDisplay``, the per-layer progress that push shares: on a terminal a line
per layer, redrawn in place with a bar; otherwise one plain line per finished layer
(``<id>: Pull complete``), which logs and scripts can read.
"""
from __future__ import annotations

import sys
import threading

from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import TextIO
    from ..registry.progress import LayerProgress

HELP = "Download an image from a registry"
_BAR_WIDTH = 50


def register(p: ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="download every tagged image of the repository")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="the platform to pull from a multi-platform image (default: this "
                        "machine's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")


def run(args: Namespace) -> int:
    from ..api.registry import remote_tags
    from ..image.reference import ImageReference
    from .common import open_store

    store = open_store(args)
    ref = ImageReference.parse(args.name)
    if args.all_tags:
        names = [f"{ref.repository}:{tag}" for tag in remote_tags(args.name, store=store)]
    else:
        if ref.tag is None and ref.digest is None and not args.quiet:
            print("Using default tag: latest")
        names = [args.name]
    for name in names:
        pull_one(name, store=store, platform=args.platform, out=sys.stdout, quiet=args.quiet)
    return 0


def pull_one(name: str, *, store, platform: str | None, out: TextIO, quiet: bool) -> None:
    """Pull one image and print it as ``docker pull`` does (``run`` uses it for a missing
    image, printing to stderr as ``docker run`` does)."""
    from ..api.registry import pull
    from ..image.reference import ImageReference
    from .malloc import keep_freed_memory

    keep_freed_memory()
    wanted = ImageReference.parse(name).with_default_tag()
    display = None if quiet else LayerDisplay(out)
    if display is not None:
        print(f"{wanted.digest or wanted.tag}: Pulling from {wanted.path}", file=out, flush=True)
    result = pull(name, platform=platform, store=store,
                  progress=display.update if display else None)
    if display is not None:
        status = "Image is up to date" if result.up_to_date else "Downloaded newer image"
        print(f"Digest: {result.digest}", file=out)
        print(f"Status: {status} for {result.name}", file=out)
    print(result.reference, file=out, flush=True)


class LayerDisplay:
    """Shows ``LayerProgress`` events (from several threads) on ``out``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._rows: dict[str, int] = {}      # layer id -> its line, on a terminal
        self._finished: set[str] = set()     # layers whose final line is printed
        self._lock = threading.Lock()

    def update(self, event: "LayerProgress") -> None:
        with self._lock:
            if self._tty:
                self._redraw(event.id, _line(event, bar=True))
            elif event.final and event.id not in self._finished:
                self._finished.add(event.id)
                self._out.write(_line(event, bar=False) + "\n")
            self._out.flush()

    def _redraw(self, layer: str, text: str) -> None:
        if layer not in self._rows:
            self._rows[layer] = len(self._rows)
            self._out.write(text + "\n")
            return
        up = len(self._rows) - self._rows[layer]
        # Up to the layer's line, clear it, write, and back down to below the last line.
        self._out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")


def _line(event: "LayerProgress", *, bar: bool) -> str:
    text = f"{event.id}: {event.status}"
    if bar and event.status in ("Downloading", "Pushing") and event.total:
        from .format import human_size

        done = min(_BAR_WIDTH, _BAR_WIDTH * event.current // event.total)
        arrow = "=" * max(0, done - 1) + (">" if done else "")
        text += (f" [{arrow:<{_BAR_WIDTH}}] "
                 f"{human_size(event.current)}/{human_size(event.total)}")
    return text
