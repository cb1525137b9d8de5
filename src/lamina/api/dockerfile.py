"""``lint``: how lamina reads a Dockerfile and what is wrong with it, as ``lamina lint``.

    from pathlib import Path
    from lamina import api

    report = api.lint("FROM busybox\nMAINTAINER me\n")      # the text itself
    report = api.lint(Path("examples/webapp-color"))         # a context folder, or the file
    for problem in report.problems:
        print(problem)

A ``str`` or ``bytes`` is the Dockerfile's text; a ``Path`` (any ``os.PathLike``) names a
Dockerfile, or a context folder holding ``Dockerfile`` (or ``dockerfile``), found as
``lamina lint PATH`` finds it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..dockerfile.lint import LintReport

__all__ = ["lint", "LintReport"]


def __getattr__(name: str) -> object:
    if name != "LintReport":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..dockerfile.lint import LintReport

    return LintReport


def lint(dockerfile: str | bytes | os.PathLike[str], *, file: str | None = None,
         build_args: Mapping[str, str] | None = None) -> "LintReport":
    """Parse a Dockerfile and check it; the report lists its stages, instructions and problems
    (in line order). ``file`` names the text in the problems' positions (default: the path
    read, or ``Dockerfile``); ``build_args`` resolve ``FROM`` lines, as ``--build-arg``."""
    from ..dockerfile.lint import lint as lint_text

    if isinstance(dockerfile, (str, bytes)):
        data, name = dockerfile, file or "Dockerfile"
    else:
        path = _find(Path(dockerfile))
        data, name = _read(path), file or str(path)
    return lint_text(data, file=name, build_args=build_args)


def _find(path: Path) -> Path:
    """The Dockerfile a context folder holds (``Dockerfile``, else ``dockerfile``), or ``path``."""
    try:
        if not path.is_dir():
            return path
    except OSError:     # a name too long: reading it says so
        return path
    for candidate in (path / "Dockerfile", path / "dockerfile"):
        if candidate.exists():
            return candidate
    raise UsageError(f"{path}: no Dockerfile in this folder",
                     hint="give the Dockerfile's path, or its text as a str")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file",
                         hint="give a Dockerfile or a context folder; a str is read as the "
                              "Dockerfile's text") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a Dockerfile") from None
    except OSError as err:   # permission denied, a name too long, a file in the way, ...
        raise UsageError(f"{path}: cannot read it: {err.strerror or err}") from None
