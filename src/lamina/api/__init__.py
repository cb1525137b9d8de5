"""lamina's Python API: one function per command, returning typed values; nothing prints.

    from lamina import api

    for image in api.images():
        print(image.repo_tags, image.size)
    api.tag("busybox", "localhost:5000/busybox:1")

Every name is imported lazily, on first use, so the commands on fast paths (``run``, a cached
``build``) do not pay for the others. Three functions share their name with the submodule that
defines them (``images``, ``check``, ``build``); importing such a submodule would normally set
the package attribute to the module and hide the function, so this package refuses that one
assignment (``_Package.__setattr__``) and the names always mean the functions.
"""
from __future__ import annotations

import importlib
import sys
import types

# Functions named like the submodule that defines them.
_SHADOWED = ("images", "check", "build")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return      # the import system binding the submodule: keep the function's name free
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

_LAZY = {  # name -> submodule
    "build": "build",
    "check": "check", "CheckReport": "check", "Problem": "check",
    **{name: "images" for name in (
        "DiskUsage", "HistoryRow", "ImageConflictError", "ImageSummary", "NoSuchImageError",
        "PruneReport", "RemovalEvent", "UsageRow", "disk_usage", "history", "images", "inspect",
        "prune", "remove", "tag")},
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

__all__ = list(_LAZY)


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
