"""The volume commands as a Python API: create, list, inspect, remove, prune.

    from lamina.api.volumes import create_volume, remove_volume
    create_volume("data", labels={"app": "web"})
    run("busybox", options=RunOptions(binds=["data:/data"], command=["ls", "/data"]))
    remove_volume("data")

Volumes live under the state root ``$LAMINA_ROOT`` (default ``/var/lib/lamina``), or the
``store``'s, as ``volumes/<name>/_data`` (runtime/volumes.py). A volume that a container uses,
running or not, is not removed: each container's record lists its volumes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..runtime.containers import ContainerStore
from ..runtime.volumes import (DRIVER, NoSuchVolumeError, Volume, VolumeInUseError,
                               VolumeStore)

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from ..store import Store

__all__ = ["NoSuchVolumeError", "Volume", "VolumeInUseError", "VolumePruneReport",
           "create_volume", "inspect_volume", "list_volumes", "prune_volumes",
           "remove_volume"]


@dataclass(frozen=True)
class VolumePruneReport:
    """What ``lamina volume prune`` removed, and the bytes it freed."""

    removed: tuple[str, ...]    # volume names
    reclaimed: int              # bytes


def _root(store: "Store | None") -> Path:
    # $LAMINA_ROOT as Store.open reads it, without importing the store.
    return store.root if store is not None else \
        Path(os.environ.get("LAMINA_ROOT") or "/var/lib/lamina")


def _containers(root: Path, store: "Store | None") -> ContainerStore:
    """The containers, cleaned up after supervisors that died: a --rm one lets go of its
    volumes then. Done before taking the volumes' lock, which that clean-up takes too."""
    containers = ContainerStore(root, store)
    containers.sweep()
    return containers


def _users(containers: ContainerStore) -> dict[str, list[str]]:
    """Volume name -> the IDs of the containers that use it."""
    users: dict[str, list[str]] = {}
    for c in containers.list():
        for m in c.volume_mounts:
            users.setdefault(m.name, []).append(c.id)
    return users


def create_volume(name: str | None = None, *, labels: Mapping[str, str] | None = None,
                  driver: str = DRIVER, store: "Store | None" = None) -> Volume:
    """``docker volume create``: a volume named ``name`` (random 64 hex digits without one);
    an existing volume of that name is returned as it is."""
    if driver != DRIVER:
        raise UsageError(f"volume driver {driver!r} not found", hint="lamina has the "
                         "local driver only")
    volumes = VolumeStore(_root(store))
    with volumes.locked():
        return volumes.create(name, labels=labels)


def list_volumes(*, store: "Store | None" = None) -> list[Volume]:
    """``docker volume ls``: every volume, by name."""
    return VolumeStore(_root(store)).list()


def inspect_volume(name: str, *, store: "Store | None" = None) -> dict[str, Any]:
    """The volume as ``docker volume inspect`` shows it (Docker's keys)."""
    volume = VolumeStore(_root(store)).get(name)
    return {"CreatedAt": volume.created, "Driver": volume.driver,
            "Labels": dict(volume.labels) or None, "Mountpoint": str(volume.mountpoint),
            "Name": volume.name, "Options": None, "Scope": "local"}


def remove_volume(name: str, *, force: bool = False, store: "Store | None" = None) -> None:
    """``docker volume rm``: remove a volume no container uses. ``force`` only makes a missing
    volume no error, as Docker's ``-f`` does: a volume in use stays."""
    root = _root(store)
    containers = _containers(root, store)
    volumes = VolumeStore(root)
    with volumes.locked():
        if volumes.find(name) is None:
            if force:
                return
            volumes.get(name)               # raises NoSuchVolumeError
        users = _users(containers).get(name)
        if users:
            raise VolumeInUseError(f"remove {name}: volume is in use - "
                                   f"[{', '.join(users)}]",
                                   hint="remove the containers that use it first")
        volumes.remove(name)


def prune_volumes(*, all: bool = False, store: "Store | None" = None) -> VolumePruneReport:
    """``docker volume prune`` (Docker 23 and later): remove the anonymous volumes no container
    uses; with ``all``, the named ones too."""
    root = _root(store)
    containers = _containers(root, store)
    volumes = VolumeStore(root)
    removed, reclaimed = [], 0
    with volumes.locked():
        users = _users(containers)
        for volume in volumes.list():
            if volume.name not in users and (all or volume.anonymous):
                reclaimed += volumes.remove(volume.name)
                removed.append(volume.name)
    return VolumePruneReport(tuple(removed), reclaimed)
