"""lamina's Python API: one function per command, returning typed values; nothing prints.

    from lamina import api

    for image in api.images():
        print(image.repo_tags, image.size)
    api.tag("busybox", "localhost:5000/busybox:1")

Every name is imported lazily, on first use, so the commands on fast paths (``run``, a cached
``build``) do not pay for the others. Some functions share their name with the submodule that
defines them (``images``, ``check``, ``build``); importing such a submodule would normally set
the package attribute to the module and hide the function, so this package refuses to let a
submodule take a name of the API (``_Package.__setattr__``): the names always mean the
functions.

``lamina.<name>`` is the same object as ``lamina.api.<name>`` for every name here
(``lamina/__init__.py`` reads this table). docs/api.md documents each one.
"""
from __future__ import annotations

import importlib
import sys
import types

class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _LAZY:
            return      # the import system binding the submodule: keep the function's name free
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

_LAZY = {  # name -> submodule
    "build": "build",
    "check": "check", "CheckReport": "check", "Problem": "check",
    "verify": "check", "VerifyReport": "check",
    "info": "sysinfo", "SystemInfo": "sysinfo",
    **{name: "analysis" for name in ("analyze", "evaluate", "Analysis", "LayerUsage",
                                      "WastedFile", "RuleResult")},
    "AnalyzeError": "analysis",
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
    "lint": "dockerfile", "LintReport": "dockerfile",
    "prune_cache": "build", "CachePruneReport": "build",
    "RunOptions": "containers", "LogEntry": "containers",
    # Defined outside lamina.api (a dotted value is a full module name): what callers of the
    # API pass in (a Store, RunOptions) and the error bases they catch.
    "Store": "lamina.store",
    "LaminaError": "lamina.errors", "UsageError": "lamina.errors",
    "DockerfileError": "lamina.errors", "ContainerError": "lamina.runtime.errors",
    **{name: "lamina.registry.errors" for name in (
        "RegistryError", "RemoteNotFoundError", "UnauthorizedError", "RateLimitedError",
        "UnavailableError", "TransferError")},
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    value = getattr(importlib.import_module(module if "." in module
                                            else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
