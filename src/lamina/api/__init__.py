"""lamina's Python API: one function per command, returning typed values; nothing prints.

    from lamina import api

    for image in api.images():
        print(image.repo_tags, image.size)
    api.tag("busybox", "localhost:5000/busybox:1")

The image functions are imported with this package, not lazily: importing the submodule
``lamina.api.images`` (or ``lamina.api.check``) sets the package attribute of that name to the
module, so a lazy ``images`` or ``check`` would mean the function or the module depending on
what was imported first. Imported here once, the names always mean the functions. Names that
no submodule shadows are imported lazily, on first use. The command line stays fast either way:
it imports this package only inside a command's ``run``.
"""
from __future__ import annotations

import importlib
from typing import Any

from .build import build
from .check import CheckReport, Problem, check
from .images import (
    DiskUsage, HistoryRow, ImageConflictError, ImageSummary, NoSuchImageError, PruneReport,
    RemovalEvent, UsageRow, disk_usage, history, images, inspect, prune, remove, tag,
)

_LAZY = {  # name -> submodule
    "save": "archive", "load": "archive", "LoadedImage": "archive",
    "import_image": "importer", "ImportedImage": "importer",
    "BuildError": "build", "BuildResult": "build", "StepReport": "build",
    "bootstrap_busybox": "bootstrap", "bootstrap_debian": "bootstrap",
    "BootstrappedImage": "bootstrap", "BootstrapError": "bootstrap",
    **{name: "registry" for name in (
        "pull", "pull_all_tags", "remote_tags", "push", "push_all_tags", "login", "logout",
        "PullResult", "PushResult", "LoginResult", "LogoutResult", "LayerProgress")},
    **{name: "containers" for name in (
        "run", "create_container", "start_container", "stop_container", "restart_container",
        "kill_container", "remove_container", "wait_container", "list_containers",
        "get_container", "container_logs", "container_port", "exec_run", "inspect_container",
        "prune_containers", "Container", "ContainerPruneReport", "ImageNotLocalError",
        "NoSuchContainerError", "ContainerConflictError")},
    **{name: "volumes" for name in (
        "create_volume", "list_volumes", "inspect_volume", "remove_volume", "prune_volumes",
        "Volume", "VolumePruneReport", "NoSuchVolumeError", "VolumeInUseError")},
    **{name: "cp" for name in (
        "copy_from_container", "copy_to_container", "export_container", "NoSuchPathError")},
    "commit_container": "commit", "CommittedImage": "commit",
}

__all__ = [
    "build", "CheckReport", "DiskUsage", "HistoryRow", "ImageConflictError", "ImageSummary",
    "NoSuchImageError", "Problem", "PruneReport", "RemovalEvent", "UsageRow", "check",
    "disk_usage", "history", "images", "inspect", "prune", "remove", "tag", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
