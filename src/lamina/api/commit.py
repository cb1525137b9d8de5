"""``commit``: a container's file changes become a new image, as ``docker commit`` makes it.

    from lamina.api.commit import commit_container
    image = commit_container("web", "web:patched", changes=['CMD ["httpd", "-f"]'],
                             message="patched", author="me")

The new image is the container's image with one layer more: the diff of the container's
upper directory (layer.write_layer, without the empty files the runtime leaves where it
mounts /etc/hosts, /etc/resolv.conf and /etc/hostname). A container restarted keeps each
run's changes in a directory of its own (runtime/containers.py ``run_lowers``); each becomes
a layer. No change at all makes no layer, only an ``empty_layer`` history entry, as Docker.

Its config is the container's (Docker's rule): the image's with the run's command, entrypoint,
environment, user and working directory, then the ``--change`` instructions; the history
entry has the container's command, the author and the message. A running container is
paused meanwhile (``pause``), so its files hold still while they are read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..errors import UsageError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..image.config import ContainerConfig
    from ..image.descriptor import Descriptor
    from ..runtime.containers import Container
    from ..store import Store
    from ..store.roots import Lease

__all__ = ["CommittedImage", "commit_container"]


@dataclass(frozen=True)
class CommittedImage:
    """The image ``lamina commit`` made from a container's changes."""

    image_id: str       # the config digest, what ``lamina commit`` prints
    digest: str         # the manifest digest
    name: str | None    # the tag it got (Docker's short form), if one was asked for


def commit_container(ref: str, reference: str | None = None, *, changes: Sequence[str] = (),
                     message: str | None = None, author: str | None = None,
                     pause: bool = True, store: "Store | None" = None) -> CommittedImage:
    """Make an image of the container ``ref``'s files, named ``reference``
    (``REPOSITORY[:TAG]``) if given. Everything given is checked before any file is read."""
    from ..image.config import History, format_unix_time
    from ..image.mutate import append_layer, apply_changes
    from ..image.reference import parse_normalized
    from ..store import Store
    from ..store.commit import commit_image
    from .containers import _containers

    name = parse_normalized(reference) if reference else None
    if name is not None and name.digest is not None:
        raise UsageError(f"cannot commit to {reference}: a digest reference names content, "
                         "not a tag", hint="give REPOSITORY[:TAG]")
    store = store or Store.open()
    containers = _containers(store)
    container = containers.get(ref)
    image = store.image(container.image_digest)
    parent = image.config()
    now = format_unix_time(time.time_ns())
    extra = {k: v for k, v in parent.extra.items() if k != "comment"}
    if message:
        extra["comment"] = message          # Docker's top-level comment, shown by inspect
    container_config = _container_config(container, parent.config)
    config = apply_changes(dataclasses.replace(
        parent, created=now, author=author or None, extra=MappingProxyType(extra),
        config=container_config), changes)
    # Docker's: the command the container ran, not the CMD a change gives the image.
    history = History(created=now, created_by=" ".join(container_config.cmd or ()),
                      author=author or None, comment=message or None)
    with store.roots.lease() as lease:
        with _paused(container, pause and container.status == "running"):
            layers = [layer for d in _change_dirs(containers.path(container.id))
                      if (layer := _store_layer(store, d, lease)) is not None]
        for blob, diff_id in layers:
            config = append_layer(config, diff_id, history)
        if not layers:
            config = dataclasses.replace(config, history=(
                *config.history, dataclasses.replace(history, empty_layer=True)))
        desc = commit_image(store, config, [*image.manifest().layers, *(b for b, _ in layers)],
                            tags=[name] if name else [], lease=lease)
    image_id = store.index.image_id(desc)
    assert image_id is not None     # just written
    return CommittedImage(image_id, desc.digest, name.familiar() if name else None)


def _container_config(c: "Container", image: "ContainerConfig | None") -> "ContainerConfig":
    """The container's config as Docker keeps it: the image's, with what the run changed."""
    from ..image.config import ContainerConfig
    from .containers import _env

    options = c.run_options
    if options.entrypoint is None:
        entrypoint = (image.entrypoint if image else None)
        cmd = tuple(options.command) or (image.cmd if image else None)
    else:       # --entrypoint replaces the image's and drops its CMD
        words = [options.entrypoint] if isinstance(options.entrypoint, str) \
            else list(options.entrypoint)
        entrypoint = tuple(words) if words not in ([], [""]) else None
        cmd = tuple(options.command) or None
    base = image or ContainerConfig()
    return dataclasses.replace(
        base, env=tuple(_env(c)), entrypoint=entrypoint, cmd=cmd,
        user=options.user or base.user, working_dir=options.workdir or base.working_dir,
        stop_signal=c.stop_signal or base.stop_signal)


def _change_dirs(cdir: Path) -> list[Path]:
    """The container's upper directories, oldest first: earlier runs', then the last one."""
    from ..runtime.containers import earlier_layers

    upper = cdir / "upper"
    return [*reversed(earlier_layers(cdir)), *([upper] if upper.exists() else [])]


def _store_layer(store: "Store", upper: Path, lease: "Lease"
                 ) -> "tuple[Descriptor, str] | None":
    """The diff of ``upper`` stored as a gzip layer: (its descriptor, its diff ID); None when
    there is no change in it."""
    from ..image import mediatypes as mt
    from ..image.descriptor import Descriptor
    from ..layer import MOUNT_POINT_LEFTOVERS, LayerBlobWriter, write_layer

    with store.content.ingest() as blob:
        writer = LayerBlobWriter(blob, "gzip")
        stats = write_layer(upper, writer, exclude=MOUNT_POINT_LEFTOVERS)
        info = writer.close()
        if stats.entries == 0:
            return None
        lease.add(blobs=[blob.digest])
        stored = blob.commit()
    return Descriptor(mt.layer_media_type("gzip"), stored.digest, stored.size), info.diff_id


@contextlib.contextmanager
def _paused(container: "Container", pause: bool) -> Iterator[None]:
    """The container frozen (the OCI runtime's pause) while the block runs."""
    if not pause:
        yield
        return
    from ..runtime.crun import Runtime

    runtime = Runtime()
    runtime.call("pause", container.id)
    try:
        yield
    finally:
        runtime.call("resume", container.id)
