"""Errors a user can act on.

Every failure lamina reports for bad input is a ``LaminaError``: it carries where the problem is
(a Dockerfile position, a path, an image reference) and, when there is one, what to do about it.
The CLI prints ``str(err)`` and exits with ``err.exit_code``; no traceback reaches a user.
"""
from __future__ import annotations


class LaminaError(Exception):
    """Base of every error lamina reports to a user."""

    exit_code = 125  # Docker's code for a failure of the tool itself

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def location(self) -> str:
        """Where the problem is, as a prefix ("Dockerfile:3:1"), or "" when unknown."""
        return ""

    def __str__(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DockerfileError(LaminaError):
    """A Dockerfile that cannot be parsed or does not make sense.

    ``line`` and ``column`` are 1-based; ``column`` may be None when only the line is known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.column = column

    def location(self) -> str:
        parts = [self.file or "Dockerfile"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def at(self, file: str | None = None, line: int | None = None,
           column: int | None = None) -> "DockerfileError":
        """Fill in the position where it is not known yet (callers deeper down may not know it)."""
        if self.file is None and file is not None:
            self.file = file
        if self.line is None and line is not None:
            self.line = line
        if self.column is None and column is not None:
            self.column = column
        return self


class ShellWordError(DockerfileError):
    """A word that cannot be expanded: bad substitution, unterminated quote, ``${v:?msg}``."""


class IgnoreFileError(LaminaError):
    """A .dockerignore pattern that is not valid."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line

    def location(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else self.path


class UsageError(LaminaError):
    """A command line that lamina cannot act on (missing file, bad option value)."""
