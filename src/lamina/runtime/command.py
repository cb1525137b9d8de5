"""Docker's rules for the process a container runs: ENTRYPOINT, CMD and the run command.

An image config stores both ENTRYPOINT and CMD as lists: the Dockerfile's shell form
(`CMD echo hi`) is already wrapped as ``["/bin/sh", "-c", "echo hi"]`` by the builder
(`config_form`). At run time the argv is simply ENTRYPOINT followed by CMD, where
- a run COMMAND replaces CMD;
- `--entrypoint` replaces ENTRYPOINT and drops the image's CMD (Docker merges the image's CMD
  only when no entrypoint is given); `--entrypoint ""` clears it;
- nothing left at all is Docker's "no command specified".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import ContainerError

DEFAULT_SHELL = ("/bin/sh", "-c")


def config_form(value: str | Sequence[str], shell: Sequence[str] = DEFAULT_SHELL) -> list[str]:
    """The config list for a Dockerfile CMD/ENTRYPOINT: shell form (a str) runs through `shell`."""
    if isinstance(value, str):
        return [*shell, value]
    return list(value)


def resolve_command(image_config: Mapping, *, entrypoint: str | Sequence[str] | None = None,
                    command: Sequence[str] = ()) -> list[str]:
    """The argv of the container's process, as `docker run` computes it."""
    if entrypoint is None:
        prefix = list(image_config.get("Entrypoint") or [])
        args = list(command) or list(image_config.get("Cmd") or [])
    else:
        prefix = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
        if prefix == [""]:
            prefix = []
        args = list(command)
    argv = prefix + args
    if not argv:
        raise ContainerError("no command specified",
                             hint="give a command after the image name, or --entrypoint")
    return argv
