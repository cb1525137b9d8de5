"""Volumes: directories under the state root that containers mount and that outlive them.

    <root>/volumes/<name>/
      _data/        what a container sees at the mount point
      volume.json   {"CreatedAt": ..., "Labels": {...}, "Driver": "local"}, written last
                    (temp + rename): a volume exists once this file does
    <root>/volumes/.lock   held while volumes are created or removed and while containers
                           record the volumes they use, so that no volume in use goes

A named volume is made on first use (``-v NAME:/path``) or by ``volume create``. An anonymous
volume (``-v /path``, an image's VOLUME) gets a random 64-hex name and Docker's label
``com.docker.volume.anonymous``; it goes with its container on ``rm -v`` and ``--rm``, and
``volume prune`` removes the unused ones. A container lists its volumes in its record
(containers.py ``Container.volumes``): that is how lamina knows a volume is in use. Volumes
are no GC roots: they hold no image content.

When a container is created with an empty volume, the volume is filled with the image's files
at the mount point (``fill``), as Docker does, unless the mount says ``nocopy``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaminaError
from .errors import ContainerError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"     # Docker's mark of an anonymous volume
DRIVER = "local"


class NoSuchVolumeError(LaminaError):
    exit_code = 1


class VolumeInUseError(LaminaError):
    exit_code = 1


@dataclass(frozen=True)
class Volume:
    """A named (or anonymous) volume in the state root, as ``lamina volume inspect`` shows it."""

    name: str
    mountpoint: Path                # the _data directory
    created: str                    # RFC 3339
    labels: Mapping[str, str]
    driver: str = DRIVER

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


@dataclass(frozen=True)
class VolumeMount:
    """A volume as a container mounts it; ``name`` is empty until an anonymous one is made."""

    name: str
    destination: str
    read_only: bool = False
    anonymous: bool = False
    copy: bool = True               # fill an empty volume from the image (False: nocopy)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VolumeMount":
        return cls(**data)


# --- -v and --mount values --------------------------------------------------------------------

def parse_volume_spec(spec: str) -> VolumeMount | None:
    """The volume a ``-v`` value names, or None for a host bind (``/host:/ctr``).

    ``NAME:/path[:ro|rw|nocopy,...]`` is a named volume, ``/path`` alone an anonymous one;
    so is ``:/path[:options]``, the form run options give ``--mount type=volume`` without a
    source.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        return VolumeMount("", _destination(spec, spec), anonymous=True)
    source = parts[0]
    if source.startswith("/"):
        return None
    if len(parts) > 3 or not parts[1]:
        raise ContainerError(f"invalid volume specification: {spec!r}",
                             hint="use NAME:/container/path[:ro] or /host/path:/container/path")
    if source and not NAME.fullmatch(source):
        raise ContainerError(
            f'"{source}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed',
            hint="to mount a host directory, give its absolute path")
    read_only, copy = False, True
    for mode in (parts[2].split(",") if len(parts) == 3 else ()):
        if mode in ("ro", "rw"):
            read_only = mode == "ro"
        elif mode == "nocopy":
            copy = False
        elif mode not in ("z", "Z"):
            raise ContainerError(f"invalid mode {mode!r} in volume specification {spec!r}")
    return VolumeMount(source, _destination(parts[1], spec), read_only, not source, copy)


def _destination(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise ContainerError(f"invalid volume specification: {spec!r}: the container path "
                             "must be absolute")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise ContainerError(f"invalid volume specification: {spec!r}: the destination "
                             "cannot be '/'")
    return clean


def host_binds(binds: Sequence[str]) -> list[str]:
    """The ``-v`` values that bind host paths, the volumes left out."""
    return [spec for spec in binds if parse_volume_spec(spec) is None]


def plan_mounts(binds: Sequence[str], image_volumes: Sequence[str],
                other_destinations: Sequence[str] = ()) -> list[VolumeMount]:
    """The volumes of a new container: those its ``-v`` values name, then an anonymous one
    for each of the image's VOLUME paths that no mount covers. ``other_destinations`` are the
    container paths of its other mounts (tmpfs). Checks every value; creates nothing."""
    from .spec import parse_bind

    mounts: list[VolumeMount] = []
    taken = {posixpath.normpath(d) for d in other_destinations}
    for spec in binds:
        volume = parse_volume_spec(spec)
        if volume is None:
            taken.add(parse_bind(spec).destination)
        else:
            mounts.append(volume)
            taken.add(volume.destination)
    for path in image_volumes:
        if posixpath.normpath(path) not in taken:
            mounts.append(VolumeMount("", _destination(path, path), anonymous=True))
    return mounts


def bind_specs(store: "VolumeStore", mounts: Sequence[VolumeMount]) -> list[str]:
    """The container's volumes as ``-v /host:/ctr[:ro]`` binds of their data directories."""
    return [f"{store.data(m.name)}:{m.destination}" + (":ro" if m.read_only else "")
            for m in mounts]


# --- the volumes of a state root ---------------------------------------------------------------

class VolumeStore:
    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "volumes"

    def data(self, name: str) -> Path:
        return self.dir / name / "_data"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def find(self, name: str) -> Volume | None:
        if not NAME.fullmatch(name):
            return None
        try:
            meta = json.loads((self.dir / name / "volume.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Volume(name, self.data(name), meta["CreatedAt"], meta.get("Labels") or {},
                      meta.get("Driver") or DRIVER)

    def get(self, name: str) -> Volume:
        found = self.find(name)
        if found is None:
            raise NoSuchVolumeError(f"no such volume: {name}",
                                    hint="`lamina volume ls` lists the volumes")
        return found

    def list(self) -> list[Volume]:
        try:
            names = sorted(e.name for e in os.scandir(self.dir) if e.is_dir())
        except FileNotFoundError:
            return []
        return [v for v in map(self.find, names) if v is not None]

    def create(self, name: str | None = None, *, labels: Mapping[str, str] | None = None,
               anonymous: bool = False) -> Volume:
        """Make a volume (a random name without ``name``); an existing one is returned as is.
        Call it under ``locked()``."""
        from .containers import now

        name = name or secrets.token_hex(32)
        if not NAME.fullmatch(name):
            raise ContainerError(
                f'invalid volume name "{name}": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed, '
                "two characters at least")
        existing = self.find(name)
        if existing is not None:
            return existing
        labels = {**(labels or {}), **({ANONYMOUS_LABEL: ""} if anonymous else {})}
        created = now()[:19] + "Z"      # Docker shows whole seconds
        self.data(name).mkdir(parents=True, exist_ok=True)
        meta = self.dir / name / "volume.json"
        partial = meta.with_name(".volume.json.tmp")
        partial.write_text(json.dumps({"CreatedAt": created, "Labels": labels,
                                       "Driver": DRIVER}))
        os.replace(partial, meta)
        return Volume(name, self.data(name), created, labels)

    def remove(self, name: str) -> int:
        """Remove the volume and its data; the bytes that freed. Call it under ``locked()``."""
        path = self.dir / name
        (path / "volume.json").unlink()     # first: a half-removed volume no longer exists
        size = disk_usage(path)
        shutil.rmtree(path)
        return size


def disk_usage(path: Path) -> int:
    total = 0
    for top, dirs, files in os.walk(path):
        for name in files + dirs:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


# --- filling a volume from the image -----------------------------------------------------------

def fill(data: Path, source: Path) -> bool:
    """Copy the directory ``source`` (the image's files at the mount point) into the volume
    directory ``data`` if that is empty; the volume takes the source directory's owner and
    mode too. False when nothing was copied."""
    try:
        src_st = os.lstat(source)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISDIR(src_st.st_mode) or any(os.scandir(data)):
        return False
    copy_tree(source, data)
    return True


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents of directory ``src`` into the existing directory ``dst``, as
    ``cp -a`` does: modes, owners, times, symlinks (as links), hardlinks, device nodes, fifos
    and extended attributes; ``dst`` itself takes ``src``'s. ``src`` must not change
    meanwhile (it is an image's files, read-only)."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = [(str(src), str(dst), os.lstat(src))]
    for top, subdirs, files in os.walk(src, onerror=_raise):
        out_top = os.path.join(dst, os.path.relpath(top, src))
        for name in subdirs + files:
            s, d = os.path.join(top, name), os.path.join(out_top, name)
            st = os.lstat(s)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                dirs.append((s, d, st))
                continue
            if stat.S_ISREG(mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
                os.link(links[(st.st_dev, st.st_ino)], d)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(mode):
                shutil.copyfile(s, d, follow_symlinks=False)
                links[(st.st_dev, st.st_ino)] = d
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(d, mode, st.st_rdev)
            else:
                continue                    # a socket: nothing to copy
            _copy_attributes(s, d, st)
    # Directories last, deepest first: filling them changed their times.
    for s, d, st in reversed(dirs):
        _copy_attributes(s, d, st)


def _raise(err: OSError) -> None:
    raise err


def _copy_attributes(src: str, dst: str, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), extended attributes, then times."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for key in os.listxattr(src, follow_symlinks=False):
            os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=False),
                        follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
