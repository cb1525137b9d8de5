"""runtime/: run an image's root file system as a container through an OCI runtime (crun).

    from lamina.runtime import RunOptions, run_container
    status = run_container(state_dir=..., lowers=[...], image_config={...},
                           options=RunOptions(command=["echo", "hi"], remove=True))

Names are imported lazily, so that `import lamina.runtime` costs nothing until used.
"""
from __future__ import annotations

__all__ = ["run_container", "RunOptions", "NetworkAttachment", "parse_bytes",
           "ContainerError", "CommandNotFoundError", "CommandNotInvokableError"]

_HOMES = {"run_container": "run", "RunOptions": "options", "NetworkAttachment": "network",
          "parse_bytes": "options", "ContainerError": "errors", "CommandNotFoundError": "errors",
          "CommandNotInvokableError": "errors"}


def __getattr__(name: str):
    if name in _HOMES:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
