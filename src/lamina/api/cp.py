"""``cp`` and ``export``: files in and out of a container, running or not, as Docker does.

    from lamina.api.cp import copy_from_container, copy_to_container, export_container
    copy_to_container("web", "site/", "/www")            # the directory site into /www
    copy_from_container("web", "/etc/nginx/.", "conf")   # the contents of /etc/nginx
    with open("web.tar", "wb") as out:
        export_container("web", out)

Docker's rules for the paths (``docker cp``): a source directory is copied as a whole into
an existing destination directory, or becomes the destination when that does not exist;
``SRC/.`` copies the directory's contents; a source file is copied into a destination
directory, over a destination file, or as a new file whose parent directory must exist; a
destination ending in ``/`` must be a directory. A symlink in the source is copied as a link
unless ``follow_link`` (``-L``); the destination's symlinks are followed. A tar stream (``-``)
goes out as the source's tar and comes in to be extracted into a destination directory.

Inside the container every path is resolved in its root (runtime/containerfs.py): no symlink
or ".." leads out of it, whatever the container holds. Files copied in are owned by root
unless ``archive`` (``-a``) keeps the owners of the source; files copied out are the caller's.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import LaminaError
from ..runtime.containerfs import Location, add_contents, add_tree, container_root, \
    extract_into, open_dir, tar_pipe
from ..runtime.errors import ContainerError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO
    from ..runtime.containers import Container, ContainerStore
    from ..store import Store

__all__ = ["NoSuchPathError", "copy_from_container", "copy_to_container", "export_container"]


class NoSuchPathError(LaminaError):
    """The source of a copy does not exist; exit status 1, as docker's."""

    exit_code = 1


@contextlib.contextmanager
def _system_errors(what: str) -> Iterator[None]:
    """A file that cannot be read or written is the user's to act on, not a traceback."""
    try:
        yield
    except BrokenPipeError:
        raise                               # the reader of a stream went away
    except OSError as err:
        name = f" {err.filename}" if err.filename else ""
        raise ContainerError(f"{what}:{name} {err.strerror or err}") from None


def _container(ref: str, store: "Store | None") -> "tuple[ContainerStore, Container]":
    from .containers import _containers     # the package's: the root's containers, swept

    containers = _containers(store)
    return containers, containers.get(ref)


def _write_tar(out: BinaryIO, dir_fd: int, name: str, arcname: str | None) -> None:
    """A tar of entry ``name`` of directory ``dir_fd`` ("." is the directory itself), named
    ``arcname``; "" for what the directory ``dir_fd`` holds instead."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if arcname == "":
            add_contents(tar, dir_fd)
        else:
            add_tree(tar, dir_fd, name, arcname or name)


# --- out of the container -----------------------------------------------------------------

def copy_from_container(ref: str, src: str, dest: str | os.PathLike[str] | BinaryIO, *,
                        follow_link: bool = False, store: "Store | None" = None) -> None:
    """``docker cp CONTAINER:SRC DEST``: ``dest`` is a host path, or a binary stream that gets
    a tar of ``src``."""
    contents = src.endswith("/.")
    as_dir = contents or src.endswith("/")
    containers, container = _container(ref, store)
    with _system_errors(f"cannot copy {ref}:{src}"), container_root(containers, container) \
            as view:
        source = view.locate(src, follow=follow_link or as_dir)
        st = source.lstat()
        if st is None:
            raise NoSuchPathError(f"Could not find the file {src} in container {ref}")
        is_dir = stat.S_ISDIR(st.st_mode)
        if as_dir and not is_dir:
            raise ContainerError(f"{src}: not a directory")
        contents = contents or not source.parts     # the root: its contents
        if isinstance(dest, (str, os.PathLike)):
            into, arcname = _host_destination(os.fspath(dest), is_dir, contents)
            with tar_pipe(lambda out: _tar_of(source, out, arcname)) as stream:
                _extract_on_host(stream, into)
        else:
            _tar_of(source, dest, "" if contents else None)


def _tar_of(source: Location, out: BinaryIO, arcname: str | None) -> None:
    """A tar of ``source`` named ``arcname`` (None: its own name; "": its contents)."""
    if arcname == "" or not source.parts:
        dir_fd, name = source.open_dir(), "."
    else:
        dir_fd, name = source.parent.open_dir(), source.parts[-1]
    try:
        _write_tar(out, dir_fd, name, arcname)
    finally:
        os.close(dir_fd)


def _host_destination(dest: str, src_is_dir: bool, contents: bool) -> tuple[str, str | None]:
    """Docker's rules on the host side: (the directory to extract into, the name the source
    takes there: None its own, "" for the contents of a source directory)."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return dest, "" if contents else None
    if st is not None and (src_is_dir or dest.endswith("/")):
        raise ContainerError(f"cannot copy a directory to the file {dest}" if src_is_dir
                             else f"{dest} is not a directory")
    if st is None and dest.endswith("/") and not src_is_dir:
        raise ContainerError(f"the destination directory {dest} must exist")
    parent, name = os.path.split(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise ContainerError(f"no such directory: {parent}")
    return parent, name


def _extract_on_host(stream: BinaryIO, into: str) -> None:
    """Extract a tar of the container's files into the host directory ``into``: nothing
    outside it (tarfile's "tar" filter), owned by the caller, modes as they were."""
    uid, gid = os.getuid(), os.getgid()

    def owned_by_caller(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        tarfile.tar_filter(member, path)            # raises for what would land outside
        return member.replace(uid=uid, gid=gid, uname="", gname="", deep=False)

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(into, numeric_owner=True, filter=owned_by_caller)
    except tarfile.FilterError as err:
        raise ContainerError(f"refusing to copy: {err}") from None


# --- into the container -------------------------------------------------------------------

def copy_to_container(ref: str, src: str | os.PathLike[str] | BinaryIO, dest: str, *,
                      archive: bool = False, follow_link: bool = False,
                      store: "Store | None" = None) -> None:
    """``docker cp SRC CONTAINER:DEST``: ``src`` is a host path, or a binary stream of a tar
    (plain or compressed) to extract into the directory ``dest``."""
    owner = None if archive else (0, 0)
    if not isinstance(src, (str, os.PathLike)):
        _copy_stream(ref, src, dest, owner, store)
        return
    src = os.fspath(src)
    contents = src.endswith("/.")
    as_dir = contents or src.endswith("/")
    path = os.path.abspath(src)     # the tar is written on a thread: no relative path then
    try:
        st = os.stat(path) if follow_link or as_dir else os.lstat(path)
    except FileNotFoundError:
        raise NoSuchPathError(f"lstat {src}: no such file or directory") from None
    is_dir = stat.S_ISDIR(st.st_mode)
    if as_dir and not is_dir:
        raise ContainerError(f"{src}: not a directory")
    if follow_link:
        path = os.path.realpath(path)
    containers, container = _container(ref, store)
    with _system_errors(f"cannot copy {src}"), container_root(containers, container) as view:
        target = view.locate(dest, follow=True)
        into, arcname = _container_destination(target, dest, ref, is_dir, contents)

        def produce(out: BinaryIO) -> None:
            parent, name = os.path.split(path)
            if arcname == "" or not name:       # the contents, or the host's root
                parent, name = path, "."
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _write_tar(out, dir_fd, name, arcname)
            finally:
                os.close(dir_fd)
        with tar_pipe(produce) as stream:
            extract_into(into, stream, owner)


def _container_destination(target: Location, dest: str, ref: str, src_is_dir: bool,
                           contents: bool) -> tuple[Location, str | None]:
    """Docker's rules on the container side: (the directory to extract into, the name the
    source takes there: None its own, "" for the contents of a source directory)."""
    st = target.lstat()
    if st is not None and stat.S_ISDIR(st.st_mode):
        into, arcname = target, ("" if contents else None)
    elif st is not None:
        if src_is_dir:
            raise ContainerError(f"cannot copy a directory to the file {ref}:{dest}")
        if dest.endswith("/"):
            raise ContainerError(f"{ref}:{dest} is not a directory")
        into, arcname = target.parent, target.parts[-1]
    else:
        if dest.endswith("/") and not src_is_dir:
            raise ContainerError(f"the destination directory {ref}:{dest} must exist")
        parent_st = target.parent.lstat()
        if parent_st is None or not stat.S_ISDIR(parent_st.st_mode):
            raise ContainerError(f"no such directory: {ref}:"
                                 f"{posixpath.dirname(dest.rstrip('/')) or '/'}")
        into, arcname = target.parent, target.parts[-1]
    _check_writable(into, ref)
    return into, arcname


def _check_writable(into: Location, ref: str) -> None:
    if into.read_only:
        raise ContainerError(f"container {ref}: the destination is on a read-only file "
                             "system (--read-only or a read-only mount)")


def _copy_stream(ref: str, stream: BinaryIO, dest: str, owner: tuple[int, int] | None,
                 store: "Store | None") -> None:
    containers, container = _container(ref, store)
    with _system_errors("cannot copy the archive"), container_root(containers, container) \
            as view:
        target = view.locate(dest, follow=True)
        st = target.lstat()
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise ContainerError(f'destination "{ref}:{dest}" must be a directory')
        _check_writable(target, ref)
        extract_into(target, stream, owner)


# --- export -------------------------------------------------------------------------------

def export_container(ref: str, output: str | os.PathLike[str] | BinaryIO, *,
                     store: "Store | None" = None) -> None:
    """``docker export``: the container's root file system as its layers make it (no volume,
    no whiteout: one flat tree) as a tar, to a stream or to a file (whole or not at all)."""
    from .archive import _write_atomically     # save's: a temp file, renamed when whole

    containers, container = _container(ref, store)
    with _system_errors(f"cannot export {ref}"), container_root(containers, container) \
            as view:
        def write(out: BinaryIO) -> None:
            dir_fd = open_dir(view.root, ())
            try:
                _write_tar(out, dir_fd, ".", "")
            finally:
                os.close(dir_fd)
        if isinstance(output, (str, os.PathLike)):
            _write_atomically(Path(output), write)
        else:
            write(output)
