"""The ways running a container can fail, with Docker's exit codes.

`docker run` exits 125 when the engine cannot set the container up, 126 when the container's
command exists but cannot be invoked, and 127 when it cannot be found. The CLI exits with
``err.exit_code``; a container that ran returns its own status instead of raising.
"""
from __future__ import annotations

from ..errors import LaminaError


class ContainerError(LaminaError):
    """The container could not be set up or started (lamina's or the OCI runtime's failure)."""

    exit_code = 125


class CommandNotInvokableError(ContainerError):
    """The command exists but cannot be executed: permission denied, a directory, a bad format."""

    exit_code = 126


class CommandNotFoundError(ContainerError):
    """The command (or the interpreter of its script) does not exist in the container."""

    exit_code = 127
