"""A container's files seen from the host, safely: for cp, export, and filling volumes.

``container_root(containers, container)`` gives the container's root file system as a host
directory (a ``RootView``):
- a running container's overlay is mounted at ``<dir>/merged`` by its supervisor: it is used
  as it is;
- otherwise the overlay is mounted there while the view is in use (its upper directory is
  made first if the container never ran), holding the container's monitor lock, so that the
  container cannot start meanwhile.
The view is the container's root file system as its layers make it: no /proc, no tmpfs.
Its volumes and host binds are reached through ``locate``, as Docker's cp reaches them.

Paths are resolved the chroot way (rootfs.resolve_in_root): no symlink, absolute or made of
"..", leads out of the root, or out of the volume or bind it is in. Files are then opened a
component at a time with O_NOFOLLOW, from the root's descriptor down, so that a symlink the
container swaps in after the resolution makes the open fail instead of leading out.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ContainerError
from .rootfs import mount_overlay, resolve_in_root, unmount

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO
    from .containers import Container, ContainerStore

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a regular file swapped for a fifo must not block the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_XATTR_PAX = "SCHILY.xattr."
_TAR_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
              stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
              stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


@dataclass(frozen=True)
class Location:
    """A path inside a root (the container's root file system, or a volume or bind it
    mounts): ``parts`` are its components below ``root``, none of them a symlink when it was
    resolved, the last one perhaps (when not followed), or missing."""

    root: Path
    parts: tuple[str, ...]
    read_only: bool

    @property
    def parent(self) -> "Location":
        return Location(self.root, self.parts[:-1], self.read_only)

    def open_dir(self) -> int:
        """A descriptor of this directory, opened without following any symlink."""
        return open_dir(self.root, self.parts)

    def lstat(self) -> os.stat_result | None:
        """The entry itself (a symlink is not followed); None when it does not exist."""
        if not self.parts:
            return os.stat(self.root)
        try:
            fd = open_dir(self.root, self.parts[:-1])
        except FileNotFoundError:
            return None
        try:
            return os.stat(self.parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)


def open_dir(root: Path, parts: Sequence[str]) -> int:
    """A descriptor of directory ``root/parts...``: ``root`` is trusted (lamina's or the user's
    own host path), each component below it is opened with O_NOFOLLOW. Raises
    FileNotFoundError, or ContainerError when a component is no directory (or a symlink)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, part in enumerate(parts):
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise ContainerError(f"/{'/'.join(parts[:i + 1])} is not a directory") from None
        finally:
            os.close(fd)
        fd = nxt
    return fd


@dataclass(frozen=True)
class _Mount:
    """A volume or bind of the container, to reach its files from the host as it sees them."""

    destination: tuple[str, ...]    # resolved in the root file system
    source: Path
    read_only: bool


class RootView:
    """A container's root file system at ``root``, with the volumes and binds it mounts."""

    def __init__(self, root: Path, container: "Container", volumes_root: Path) -> None:
        from .spec import parse_bind
        from .volumes import VolumeStore, host_binds

        self.root = root
        self.read_only = container.run_options.read_only
        found = [(b.destination, Path(b.source), b.read_only)
                 for b in map(parse_bind, host_binds(container.run_options.binds))]
        store = VolumeStore(volumes_root)
        found += [(m.destination, store.data(m.name), m.read_only)
                  for m in container.volume_mounts]
        mounts = [_Mount(self._parts(resolve_in_root(root, dest)), source, ro)
                  for dest, source, ro in found]
        self._mounts = sorted(mounts, key=lambda m: len(m.destination), reverse=True)

    def _parts(self, host: Path, root: Path | None = None) -> tuple[str, ...]:
        return host.relative_to(root or self.root).parts

    def locate(self, path: str, *, follow: bool) -> Location:
        """Where the container path ``path`` is; its last component is taken as it is (a
        symlink not followed) unless ``follow``, or it is "", "." or "..". Symlinks resolve
        inside the root; in a volume or bind, inside that volume or bind."""
        parent, _, base = path.rpartition("/")
        follow = follow or base in ("", ".", "..")
        parts = self._parts(resolve_in_root(self.root, path if follow else parent or "/"))
        if not follow:
            parts += (base,)
        for m in self._mounts:
            if parts[:len(m.destination)] == m.destination:
                rest = parts[len(m.destination):]
                inner = "/".join(rest if follow else rest[:-1])
                within = self._parts(resolve_in_root(m.source, inner), m.source)
                if not follow and rest:
                    within += (rest[-1],)
                return Location(m.source, within, m.read_only)
        return Location(self.root, parts, self.read_only)


@contextlib.contextmanager
def container_root(containers: "ContainerStore", container: "Container") -> Iterator[RootView]:
    """The container's root file system as a ``RootView`` (see the module docstring)."""
    from .containers import ContainerConflictError, earlier_layers

    cdir = containers.path(container.id)
    merged = cdir / "merged"
    lock = containers.lock(container.id)
    if lock is None:        # its supervisor holds the lock: it runs, or starts or stops now
        current = containers.load(container.id)
        if current is None or current.status != "running" or not os.path.ismount(merged):
            raise ContainerConflictError(f"container {container.id[:12]} is starting or "
                                         "stopping", hint="try again in a moment")
        yield RootView(merged, current, containers.root)
        return
    try:
        if container.lowers is None:
            raise ContainerError(f"the image of container {container.id[:12]} was never "
                                 "unpacked", hint="remove the container and create it again")
        lowers = earlier_layers(cdir) + [Path(p) for p in container.lowers]
        if not lowers:                      # FROM scratch: overlay needs a lower dir
            lowers = [cdir / "empty"]
        upper = cdir / "upper"
        made_upper = not upper.exists()
        for d in (upper, cdir / "work", merged, *lowers[:1]):
            d.mkdir(exist_ok=True)
        try:
            mount_overlay(lowers, upper, cdir / "work", merged)
            try:
                yield RootView(merged, container, containers.root)
            finally:
                unmount(merged)
        finally:
            if made_upper and not any(upper.iterdir()):
                upper.rmdir()               # nothing written: no empty layer for later runs
    finally:
        os.close(lock)


# --- tar streams --------------------------------------------------------------------------------

def add_tree(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str) -> None:
    """Add entry ``name`` of directory ``dir_fd`` to ``tar`` as ``arcname``, and for a
    directory everything below it, sorted, never following a symlink. Owners are numeric,
    extended attributes are PAX records, hardlinked files are tar hardlinks; sockets are
    left out, as tar cannot hold them."""
    links: dict[tuple[int, int], str] = {}
    stack: list[tuple[int, Iterator[str], str]] = []
    fd = _add_entry(tar, dir_fd, name, arcname, links)
    if fd is not None:
        stack.append((fd, iter(sorted(os.listdir(fd))), arcname))
    try:
        while stack:
            fd, names, prefix = stack[-1]
            child = next(names, None)
            if child is None:
                os.close(fd)
                stack.pop()
                continue
            arc = f"{prefix}/{child}" if prefix else child
            sub = _add_entry(tar, fd, child, arc, links)
            if sub is not None:
                stack.append((sub, iter(sorted(os.listdir(sub))), arc))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def add_contents(tar: tarfile.TarFile, dir_fd: int, prefix: str = "") -> None:
    """Add what directory ``dir_fd`` holds (not the directory itself), names under ``prefix``."""
    for child in sorted(os.listdir(dir_fd)):
        add_tree(tar, dir_fd, child, f"{prefix}/{child}" if prefix else child)


def _add_entry(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str,
               links: dict[tuple[int, int], str]) -> int | None:
    """Add one entry; for a directory, return a descriptor of it to walk on."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    kind = _TAR_TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None                         # a socket
    info = tarfile.TarInfo(arcname)
    info.type, info.mode = kind, stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(name, dir_fd=dir_fd)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif kind == tarfile.DIRTYPE:
        fd = _open_same(dir_fd, name, _DIR_FLAGS, st, arcname)
        try:
            info.pax_headers = _xattrs(fd)
            tar.addfile(info)
        except BaseException:
            os.close(fd)
            raise
        return fd
    elif kind == tarfile.REGTYPE:
        first = links.setdefault((st.st_dev, st.st_ino), arcname) if st.st_nlink > 1 \
            else arcname
        if first != arcname:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            with os.fdopen(_open_same(dir_fd, name, _FILE_FLAGS, st, arcname), "rb") as f:
                info.pax_headers = _xattrs(f.fileno())
                info.size = os.fstat(f.fileno()).st_size
                tar.addfile(info, f)
            return None
    tar.addfile(info)
    return None


def _open_same(dir_fd: int, name: str, flags: int, st: os.stat_result, arcname: str) -> int:
    """Open ``name``, checking that it is still the entry ``st`` describes."""
    fd = os.open(name, flags, dir_fd=dir_fd)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ContainerError(f"{arcname} changed while it was read")
    return fd


def _xattrs(fd: int) -> dict[str, str]:
    from ..layer.whiteout import is_private_xattr

    return {_XATTR_PAX + key: os.getxattr(fd, key).decode("utf-8", "surrogateescape")
            for key in os.listxattr(fd) if not is_private_xattr(key)}


@contextlib.contextmanager
def tar_pipe(produce: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
    """A stream of what ``produce(out)`` writes, written on a thread while it is read.

    An error of the producer is raised, even when the reader failed too: the reader's is then
    the consequence (a tar cut short).
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    failures: list[BaseException] = []

    def run() -> None:
        out = open(write_fd, "wb")
        try:
            produce(out)
            out.close()
        except BrokenPipeError:
            pass                            # the reader stopped: its error says why
        except BaseException as err:        # raised in the reading thread
            failures.append(err)
        finally:
            with contextlib.suppress(OSError):
                out.close()

    thread = threading.Thread(target=run, name="tar-pipe", daemon=True)
    thread.start()
    reader = open(read_fd, "rb")
    try:
        yield reader
    except BaseException:
        reader.close()
        thread.join()
        if failures:
            raise failures[0] from None
        raise
    reader.close()
    thread.join()
    if failures:
        raise failures[0]


def extract_into(target: Location, stream: BinaryIO,
                 owner: tuple[int, int] | None) -> None:
    """Extract the tar ``stream`` into the directory ``target`` as ``docker cp`` does: safely
    (layer.apply: nothing written outside it, through a symlink or by a ".." name), with
    the owner ``owner`` (uid, gid) for every entry unless None, and refusing to replace a
    directory with a non-directory or the reverse."""
    from ..layer import LayerError, apply_layer

    dir_fd = target.open_dir()
    parent_fd = target.parent.open_dir() if target.parts else None
    # apply_layer opens its target by path, the last component with O_NOFOLLOW. Through
    # /proc/self/fd/N the path's directories are the one opened above, safely, whatever a
    # container did to the path since; the root itself is lamina's or the user's own path.
    path = Path(f"/proc/self/fd/{parent_fd}", target.parts[-1]) if parent_fd is not None \
        else target.root
    try:
        with tar_pipe(lambda out: _checked_tar(stream, out, dir_fd, owner)) as checked:
            apply_layer(checked, path)
    except LayerError as err:
        raise ContainerError(f"cannot copy {err.entry or 'the archive'}: {err.message}") \
            from None
    except tarfile.TarError as err:
        raise ContainerError(f"the archive cannot be read: {err}") from None
    finally:
        os.close(dir_fd)
        if parent_fd is not None:
            os.close(parent_fd)


def _checked_tar(source: BinaryIO, out: BinaryIO, dir_fd: int,
                 owner: tuple[int, int] | None) -> None:
    """Copy the tar ``source`` (plain or compressed) to ``out`` as a plain tar, checking each
    entry against what the directory ``dir_fd`` holds, and setting ``owner``."""
    from ..layer.whiteout import WHITEOUT_PREFIX

    with tarfile.open(fileobj=source, mode="r|*") as tin, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if any(p.startswith(WHITEOUT_PREFIX) for p in parts):
                raise ContainerError(f"cannot copy {member.name}: names starting with "
                                     f"{WHITEOUT_PREFIX} are overlay whiteouts")
            existing = _lstat_below(dir_fd, parts)
            if existing is not None and stat.S_ISDIR(existing.st_mode) != member.isdir():
                what = ("directory", "non-directory")
                first, second = what if member.isdir() else what[::-1]
                raise ContainerError(f"cannot overwrite {second} {member.name!r} with "
                                     f"{first}")
            if owner is not None:
                member.uid, member.gid = owner
                member.uname = member.gname = ""
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
            tin.members.clear()             # stream mode keeps them otherwise


def _lstat_below(dir_fd: int, parts: Sequence[str]) -> os.stat_result | None:
    """What the directory ``dir_fd`` holds at ``parts``, never through a symlink; None when
    there is nothing (or a symlink on the way: applying the entry refuses that)."""
    if not parts or ".." in parts:
        return None
    fd = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(fd)
