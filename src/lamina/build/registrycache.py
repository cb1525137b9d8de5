"""A build's cache in a registry: ``--cache-from/--cache-to type=registry,ref=REF``.

The builder hands a ``RegistryCache`` here instead of a folder; the transfer itself is
registry/buildcache.py. As in BuildKit, a cache that cannot be imported (the registry is
down, nothing is at REF, it is no lamina cache) is a warning and the build goes on
without it; a failed export is an error that says the image was built all the same
(or, with ``ignore-error=true``, a warning).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LaminaError
from ..store.cache import CacheRecord
from ..store.root import Store
from .progress import Progress

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class RegistryCache:
    """A ``type=registry`` cache source or destination of a build, as ``--cache-from/-to`` say."""

    ref: str                        # normalized: registry/name:tag (or @digest to import)
    compression: str = "gzip"       # of plain layers on export: gzip, zstd, none
    ignore_error: bool = False      # a failed export is a warning, not an error

    def __str__(self) -> str:
        return self.ref


def import_registry_cache(store: Store, cache: RegistryCache, lease: Any,
                          progress: Progress) -> list[str]:
    """Import the cache at ``cache.ref``; the warnings (shown) about what could not be."""
    from ..image.reference import ImageReference
    from ..registry.buildcache import pull_build_cache
    from ..registry.client import Session
    from ..registry.config import RegistryConfig
    from .cachekey import parts_digest

    vertex = progress.start(f"importing cache manifest from {cache.ref}")
    try:
        with Session(RegistryConfig.load(store.root)) as session:
            count, warnings = pull_build_cache(store, ImageReference.parse(cache.ref), session,
                                               lease, key_of=parts_digest)
        progress.log(vertex, f"{count} cache records imported")
    except LaminaError as err:
        warnings = [f"cache import from {cache.ref} ignored: {_reason(err, cache)}"
                    + (f" ({err.hint})" if err.hint else "")]
    progress.done(vertex)
    for warning in warnings:
        progress.warning(warning)
    return warnings


def export_registry_cache(store: Store, records: Iterable[CacheRecord], cache: RegistryCache,
                          image_id: str, progress: Progress) -> str | None:
    """Push ``records`` to ``cache.ref``; a warning when that failed and errors are ignored,
    else None. Raises a LaminaError naming the image built when the push failed."""
    from ..image.reference import ImageReference
    from ..registry.buildcache import push_build_cache
    from ..registry.client import Session
    from ..registry.config import RegistryConfig
    from ..registry.progress import LayerProgress

    vertex = progress.start(f"exporting cache to registry {cache.ref}")
    progress.log(vertex, "preparing build cache for export")
    lock = threading.Lock()

    def show(event: LayerProgress) -> None:   # the end of each blob, not every chunk
        if event.status in ("Pushed", "Layer already exists") or \
                event.status.startswith("Mounted from"):
            with lock:
                progress.log(vertex, f"{event.status.lower()}: {event.layer}")

    try:
        with Session(RegistryConfig.load(store.root)) as session:
            pushed = push_build_cache(store, records, ImageReference.parse(cache.ref), session,
                                      compression=cache.compression, progress=show)
    except LaminaError as err:
        progress.error(vertex, err.message)
        if cache.ignore_error:
            warning = f"cache export to {cache.ref} failed (ignored): {_reason(err, cache)}"
            progress.warning(warning)
            return warning
        raise LaminaError(f"the image {image_id} was built, but exporting its build cache "
                          f"to {cache.ref} failed: {_reason(err, cache)}",
                          hint=err.hint or "check that the registry is up and that you may "
                                           "push there (lamina login), then build again; "
                                           "add ignore-error=true to --cache-to to go on "
                                           "without the export") from None
    progress.log(vertex, f"writing {pushed.records} cache records done")
    progress.log(vertex, f"writing cache manifest {pushed.digest} done")
    progress.done(vertex)
    return None


def _reason(err: LaminaError, cache: RegistryCache) -> str:
    """The error's message without the reference it leads with: the caller names it."""
    return err.message.removeprefix(f"{cache.ref}: ")
