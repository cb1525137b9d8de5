"""Progress of a pull or push, one event per layer change, in Docker's words.

The registry code reports; only the CLI prints (a bar per layer on a terminal, a plain line
per finished layer otherwise). Events come from several threads at once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..image.digest import short_id

# Pull: Waiting, Downloading, Download complete, Extracting, Pull complete, Already exists.
# Push: Preparing, Compressing (a plain layer, compressed.py), Waiting, Pushing, Pushed,
# Layer already exists, Mounted from <repository>.
FINAL_STATUSES = ("Pull complete", "Already exists", "Pushed", "Layer already exists",
                  "Mounted from")


@dataclass(frozen=True)
class LayerProgress:
    """One layer event of a pull or push, as Docker's progress lines show it."""

    reference: str     # the image, as a full reference (docker.io/library/ubuntu:latest)
    layer: str         # the layer's blob digest
    status: str
    current: int = 0   # bytes done, while Downloading or Pushing
    total: int = 0     # bytes in all

    @property
    def id(self) -> str:
        """Docker's short layer ID: 12 hex characters."""
        return short_id(self.layer)

    @property
    def final(self) -> bool:
        return self.status.startswith(FINAL_STATUSES)


ProgressCallback = Callable[[LayerProgress], None]


def ignore(event: LayerProgress) -> None:
    """The callback when nobody listens."""
