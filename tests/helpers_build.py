"""Plain helpers of the build tests (no fixtures: importable before pytest loads plugins)."""
from __future__ import annotations

from pathlib import Path


def make_context(folder: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    """A build context: ``folder`` with the Dockerfile and ``files`` (relative path -> text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in {"Dockerfile": dockerfile, **(files or {})}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder
