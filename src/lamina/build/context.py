"""The build context on disk: which ignore file applies and which paths are sent.

Follows what BuildKit does when a client sends a local context (tonistiigi/fsutil's
filtered walk): symlinks are listed, never followed; an ignored directory is not walked
unless a ``!`` exception could re-include something below it; an ignored directory is still
sent when something below it is.
"""
from __future__ import annotations

import os
from pathlib import Path

from lamina.dockerfile.ignore import PatternMatcher, read_ignore
from lamina.errors import IgnoreFileError, LaminaError, UsageError

__all__ = ["ignore_file_for", "list_context", "load_ignore"]

# Characters that make an exception pattern more than a plain path prefix (as fsutil has it).
_GLOB_CHARS = frozenset("*[]?^\\")


def ignore_file_for(context_dir: Path, dockerfile: Path | None = None) -> Path | None:
    """The ignore file of a build, or None.

    ``<Dockerfile>.dockerignore`` beside the Dockerfile wins over ``<context>/.dockerignore``.
    ``dockerfile`` is the Dockerfile's path as it will be read; None means
    ``<context>/Dockerfile``. A path that exists but cannot be read is still returned, so
    reading it reports the problem instead of silently using the other file.
    """
    context_dir = Path(context_dir)
    dockerfile = Path(dockerfile) if dockerfile is not None else context_dir / "Dockerfile"
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"),
                      context_dir / ".dockerignore"):
        if os.path.lexists(candidate):
            return candidate
    return None


def load_ignore(path: Path) -> PatternMatcher:
    """Read an ignore file and build its matcher; errors name the file and line."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise IgnoreFileError(f"cannot read the ignore file: {err.strerror or err}",
                              path=str(path),
                              hint="make it a readable file, or remove it") from None
    return PatternMatcher(read_ignore(data, str(path)))


def list_context(context_dir: Path, matcher: PatternMatcher | None) -> list[str]:
    """The relative POSIX paths (files, symlinks, directories) sent as the build context.

    Sorted. Raises IgnoreFileError for a pattern that fails when matching (``[z-a]``).
    """
    root = Path(context_dir)
    if not root.is_dir():
        raise UsageError(f"build context {str(root)!r} is not a directory",
                         hint="give the directory that holds the files to build from")
    sent: list[str] = []
    may_reinclude = _reinclude_test(matcher)

    def walk(abs_dir: str, rel_dir: str, parent_info: tuple[bool, ...], ignored: bool) -> None:
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            if ignored and isinstance(err, PermissionError):
                return  # nothing below an ignored directory is needed unless re-included
            raise LaminaError(f"cannot read {abs_dir!r} in the build context: "
                              f"{err.strerror or err}",
                              hint="fix its permissions, or add it to .dockerignore") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            info: tuple[bool, ...] = ()
            excluded = False
            if matcher is not None:
                excluded, info = matcher.matches_using_parent_results(rel, parent_info)
            if not excluded:
                sent.append(rel)
                if is_dir:
                    walk(entry.path, rel, info, False)
            elif is_dir and may_reinclude(rel):
                before = len(sent)
                walk(entry.path, rel, info, True)
                if len(sent) > before:
                    sent.append(rel)  # sent after all: something below it is

    walk(str(root), "", (), False)
    sent.sort()
    return sent


def _reinclude_test(matcher: PatternMatcher | None):
    """A test: could a ``!`` exception re-include something below this ignored directory?

    Exceptions that are plain paths (a trailing ``/*`` or ``/**`` aside) re-include only
    below a directory they start with. Any other exception could match anywhere, so then
    every ignored directory is walked.
    """
    if matcher is None or not matcher.exclusions:
        return lambda rel: False
    prefixes = []
    for pattern in matcher.patterns:
        if not pattern.exclusion:
            continue
        text = pattern.text.removesuffix("/**").removesuffix("/*")
        if _GLOB_CHARS & set(text):
            return lambda rel: True
        prefixes.append(text + "/")
    return lambda rel: any(p.startswith(rel + "/") for p in prefixes)
