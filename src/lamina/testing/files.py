"""What an image holds, file by file, read from its layer tars: no container, no unpacking,
no root needed. For a test to check what a build put where.

    files = image_files("app:1")
    assert files["/app/config.toml"].data == b"debug = false\\n"
    assert files["/usr/local/bin/app"].mode & 0o111           # executable
    assert "/tmp/build-cache" not in files                    # deleted by a later step

The layers are stacked as a container's root file system stacks them (OCI whiteouts
``.wh.NAME`` and ``.wh..wh..opq`` hide what lower layers hold). Every file's bytes are read
into memory: this is for the small images of tests.
"""
from __future__ import annotations

import os
import posixpath
import tarfile
from dataclasses import dataclass

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..store import Store

__all__ = ["ImageFile", "image_files"]

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
          tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char",
          tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


@dataclass(frozen=True)
class ImageFile:
    """One entry of an image's root file system, as its topmost layer has it."""

    kind: str           # file, dir, symlink, char, block or fifo (a hard link is a file)
    mode: int           # permission bits, setuid, setgid and sticky included
    uid: int
    gid: int
    mtime: int          # seconds since the epoch, as the layer recorded it
    data: bytes = b""   # a file's bytes
    link: str = ""      # a symlink's target

    @property
    def text(self) -> str:
        return self.data.decode()


def image_files(name: str, *, store: "Store | str | os.PathLike[str] | None" = None
                ) -> dict[str, ImageFile]:
    """The root file system of the image ``name``: absolute path -> ``ImageFile``, for every
    entry the stacked layers leave visible. ``store`` is a Store, a state root folder, or None
    for ``$LAMINA_ROOT``. Raises the store's ImageNotFoundError (a LaminaError)."""
    from ..layer import open_decompressed
    from .images import _store

    found = _store(store).image(name)
    tree: dict[str, ImageFile] = {}
    for layer in found.layers():
        with found.open_blob(layer) as blob, \
                tarfile.open(fileobj=open_decompressed(blob), mode="r|") as tar:
            _apply(tree, [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar])
    return dict(sorted(tree.items()))


def _apply(tree: dict[str, ImageFile], members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """Stack one layer on ``tree``: its whiteouts hide lower entries only (OCI), then its
    entries replace what was at their paths."""
    def drop_below(path: str) -> None:
        for key in [k for k in tree if k.startswith(path.rstrip("/") + "/")]:
            del tree[key]

    entries = []
    for member, data in members:
        path = _path(member.name)
        if path is None:
            continue
        parent, base = posixpath.split(path)
        if base == OPAQUE:
            drop_below(parent)
        elif base.startswith(WHITEOUT):
            hidden = posixpath.join(parent, base[len(WHITEOUT):])
            tree.pop(hidden, None)
            drop_below(hidden)
        else:
            entries.append((path, member, data))
    for path, member, data in entries:
        if member.islnk():
            target = tree.get(_path(member.linkname) or "")
            kind, data = "file", target.data if target else b""
        else:
            kind = _KINDS.get(member.type, "file")
        if kind != "dir":
            drop_below(path)        # a directory replaced by a file takes its contents along
        tree[path] = ImageFile(kind, member.mode & 0o7777, member.uid, member.gid,
                               int(member.mtime), data,
                               member.linkname if kind == "symlink" else "")


def _path(name: str) -> str | None:
    """The absolute path of a tar member's name; None for the root itself."""
    path = posixpath.normpath("/" + name.lstrip("/"))     # "./etc/" and "etc" alike
    return None if path == "/" else path
