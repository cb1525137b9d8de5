"""A state root of its own for the length of a test: images, containers, volumes and build
cache all go to a temporary folder, and nothing of the machine's store is seen or touched.

    with temporary_store() as store:
        lamina.bootstrap_busybox()              # into the temporary store
        assert [i.repo_tags for i in lamina.images()] == [("busybox:latest",)]
    # the containers left are removed, the mounts under it undone, the folder deleted

As a pytest fixture:

    @pytest.fixture
    def store():
        with lamina.testing.temporary_store() as store:
            yield store
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..store import Store

__all__ = ["temporary_store"]

ROOT_ENV = "LAMINA_ROOT"            # the state root every lamina call defaults to
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"  # where login, logout, pull and push keep credentials


@contextlib.contextmanager
def temporary_store(*, isolate_credentials: bool = True,
                    parent: str | os.PathLike[str] | None = None) -> Iterator["Store"]:
    """Make a state root in a new temporary folder (under ``parent``, default the system's
    temporary folder), point ``$LAMINA_ROOT`` at it and yield its ``Store``; on exit put the
    environment back and delete it all. ``isolate_credentials`` also points
    ``$DOCKER_CONFIG`` at an empty folder beside it, so that ``login`` in a test never writes
    to ``~/.docker`` and ``pull`` never uses the credentials found there.

    Changing the environment affects the whole process: do not use it from two threads at
    once (pass ``store=`` to the API functions instead)."""
    from ..store import Store

    folder = Path(tempfile.mkdtemp(prefix="lamina-test-", dir=parent))
    saved = {name: os.environ.get(name) for name in (ROOT_ENV, DOCKER_CONFIG_ENV)}
    try:
        root = folder / "root"
        store = Store.open(root)
        os.environ[ROOT_ENV] = str(root)
        if isolate_credentials:
            (folder / "docker").mkdir()
            os.environ[DOCKER_CONFIG_ENV] = str(folder / "docker")
        yield store
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _clean(folder)


def _clean(folder: Path) -> None:
    """Remove the containers of the state root (running ones are killed), undo any mount left
    under it (deleting through a mount would delete what it shows), then the folder."""
    root = folder / "root"
    if (root / "containers").is_dir() and any((root / "containers").iterdir()):
        from ..api.containers import list_containers, remove_container
        from ..errors import LaminaError
        from ..store import Store

        store = Store.open(root)
        for container in list_containers(all=True, store=store):
            try:
                remove_container(container.id, force=True, volumes=True, store=store)
            except LaminaError:
                pass    # its files are deleted with the folder below
    mounts = _mounts_under(folder)
    if mounts:
        from ..runtime.rootfs import unmount

        for target in mounts:
            unmount(target)
        if _mounts_under(folder):
            return      # still mounted: leave the folder rather than delete through a mount
    shutil.rmtree(folder, ignore_errors=True)


def _mounts_under(folder: Path) -> list[Path]:
    """The mount points at or below ``folder``, deepest first."""
    prefix = str(folder.resolve())
    from ..runtime.mountinfo import mount_points

    with open("/proc/self/mountinfo") as f:
        points = mount_points(f.read())
    inside = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    return [Path(p) for p in sorted(set(inside), key=len, reverse=True)]
