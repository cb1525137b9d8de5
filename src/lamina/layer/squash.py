"""Squash: layer tars composed into one layer with the same effect on their base.

Applying the squashed tar on the base the layers were made on gives the same file system as
applying them one by one (``lamina build --squash``). The layers are read top first, as
OCI's apply rules say who wins:

- an entry of a higher layer wins over the same path below; a directory keeps the higher
  layer's metadata, while the lower layers' entries inside it still count;
- a whiteout (``dir/.wh.NAME``) hides ``dir/NAME`` and everything below it in the lower
  layers; an opaque marker (``dir/.wh..wh..opq``) hides what the lower layers have inside
  ``dir``; a non-directory hides what the lower layers have below its path. Neither hides
  entries of its own layer;
- the squashed layer keeps a whiteout only when the base shows the path (``base_has``): a
  file made and deleted by the squashed layers leaves nothing. A path deleted and made again
  as a directory becomes an opaque directory when the base has it, so the base's content
  inside it stays hidden;
- a hardlink whose target no longer is the same entry (overwritten or deleted higher up)
  becomes a copy of the file it pointed to in its own layer.

The output is ordered as ``write_layer`` orders it (depth first, the opaque marker, then the
whiteouts, then the other entries, each sorted by name bytes) and headers are rebuilt the same
way, so the same layers always squash to the same bytes. The inputs are uncompressed tars
that can seek: only their headers are held in memory, file data is copied straight through.
"""
from __future__ import annotations

import posixpath
import tarfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lamina.layer import LayerError, LayerStats
from lamina.layer.whiteout import AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["squash_layers"]

_CHUNK = 1 << 20
_ZEROS = bytes(1024)
# Header fields tarfile derives from the TarInfo itself; the rest of a PAX header (xattrs)
# is carried over.
_DERIVED_PAX = {"path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname",
                "atime", "ctime"}
_KINDS = {tarfile.REGTYPE: "files", tarfile.AREGTYPE: "files", tarfile.DIRTYPE: "dirs",
          tarfile.SYMTYPE: "symlinks", tarfile.LNKTYPE: "hardlinks",
          tarfile.CHRTYPE: "specials", tarfile.BLKTYPE: "specials",
          tarfile.FIFOTYPE: "specials"}


@dataclass
class _Node:
    """A path of the squashed layer: its entry (None: only a parent of others), and what
    goes inside it."""

    entry: tuple[int, tarfile.TarInfo] | None = None       # (layer index, member)
    opaque: int | None = None                              # the marker's mtime, if opaque
    whiteouts: dict[str, int] = field(default_factory=dict)  # name -> marker mtime
    children: dict[str, "_Node"] = field(default_factory=dict)


def squash_layers(layers: Sequence[BinaryIO], out: BinaryIO, *,
                  base_has: Callable[[str], bool]) -> LayerStats:
    """Write to ``out`` one layer tar with the effect of ``layers`` (bottom first, each an
    uncompressed tar open for reading, seekable). ``base_has(path)`` says whether the base
    below the layers shows a path (``"etc/passwd"``)."""
    indexes = [_index(f, n) for n, f in enumerate(layers)]
    decided: dict[str, tuple[int, tarfile.TarInfo]] = {}
    under_decided: set[str] = set()  # the folders above the decided paths
    hidden: set[str] = set()        # deleted by a higher layer: the path and what is below
    covering: set[str] = set()      # opaque dirs and non-directories of higher layers: below
    whiteouts: dict[str, int] = {}
    opaque: dict[str, int] = {}

    def covered(path: str) -> bool:
        if path in hidden:
            return True
        parent = posixpath.dirname(path)
        while parent:
            if parent in hidden or parent in covering:
                return True
            parent = posixpath.dirname(parent)
        return "" in covering

    for n in reversed(range(len(layers))):
        new_hidden, new_covering = set(), set()
        for name, member in indexes[n].items():
            parent, base = posixpath.split(name)
            if base == OPAQUE_MARKER:
                if parent and covered(parent):
                    continue
                new_covering.add(parent)
                if base_has(parent) or not parent:
                    opaque.setdefault(parent, int(member.mtime))
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", ".."):
                    raise LayerError(f"cannot squash layer {n + 1}: its whiteout {name!r} "
                                     f"names no file")
                path = posixpath.join(parent, target)
                if covered(path):
                    continue
                new_hidden.add(path)
                if path in decided or path in under_decided:
                    # made again higher up (a folder, or files under it without the folder's
                    # own entry): only the base's content under it is hidden
                    remade_folder = path in under_decided or decided[path][1].isdir()
                    if remade_folder and base_has(path):
                        opaque.setdefault(path, int(member.mtime))
                elif base_has(path):
                    whiteouts.setdefault(path, int(member.mtime))
                continue
            if covered(name) or name in decided:
                continue
            decided[name] = (n, member)
            folder = posixpath.dirname(name)
            while folder and folder not in under_decided:
                under_decided.add(folder)
                folder = posixpath.dirname(folder)
            if not member.isdir():
                new_covering.add(name)
        hidden |= new_hidden
        covering |= new_covering

    root = _Node()
    for path, entry in decided.items():
        _node(root, path).entry = entry
    for path, mtime in whiteouts.items():
        parent, name = posixpath.split(path)
        _node(root, parent).whiteouts[name] = mtime
    for path, mtime in opaque.items():
        _node(root, path).opaque = mtime
    writer = _Writer(out, layers, indexes, decided)
    writer.emit(root, "")
    return writer.finish()


def _index(layer: BinaryIO, n: int) -> dict[str, tarfile.TarInfo]:
    """The members of one layer tar by normalized name (the last of a name wins, as when
    the tar is applied). aufs's own entries are left out."""
    members: dict[str, tarfile.TarInfo] = {}
    layer.seek(0)
    try:
        with tarfile.open(fileobj=layer, mode="r:", encoding="utf-8",
                          errors="surrogateescape") as tar:
            for member in tar:
                name = posixpath.normpath(member.name.lstrip("/"))
                if name in (".", "", "..") or name.startswith("../"):
                    continue
                if posixpath.basename(name).startswith(AUFS_META_PREFIX) and \
                        posixpath.basename(name) != OPAQUE_MARKER:
                    continue
                members.pop(name, None)   # keep tar order for the last one
                members[name] = member
    except tarfile.TarError as err:
        raise LayerError(f"cannot squash layer {n + 1}: it is not a valid tar ({err})") \
            from None
    return members


def _node(root: _Node, path: str) -> _Node:
    node = root
    for part in path.split("/") if path else ():
        node = node.children.setdefault(part, _Node())
    return node


def _key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


class _Writer:
    def __init__(self, out: BinaryIO, layers: Sequence[BinaryIO],
                 indexes: list[dict[str, tarfile.TarInfo]],
                 decided: dict[str, tuple[int, tarfile.TarInfo]]) -> None:
        self._out = out
        self._layers = layers
        self._indexes = indexes
        self._decided = decided
        self._counts: Counter[str] = Counter()
        self._size = 0

    def emit(self, root: _Node, prefix: str) -> None:
        # An explicit stack: a deep tree must not reach Python's recursion limit.
        stack = [iter([(root, prefix, True)])]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            node, path, is_root = item
            if not is_root and node.entry is not None:
                self._entry(path, *node.entry)
            inside = f"{path}/" if path else ""
            if node.opaque is not None:
                self._marker(inside + OPAQUE_MARKER, node.opaque, "opaque_dirs")
            for name in sorted(node.whiteouts, key=_key):
                self._marker(inside + WHITEOUT_PREFIX + name, node.whiteouts[name],
                             "whiteouts")
            children = sorted(node.children.items(), key=lambda kv: _key(kv[0]))
            stack.append(iter([(child, inside + name, False) for name, child in children]))

    def _entry(self, path: str, n: int, member: tarfile.TarInfo) -> None:
        data_from: tuple[int, tarfile.TarInfo] | None = None
        info = tarfile.TarInfo(path)
        info.mode, info.uid, info.gid = member.mode, member.uid, member.gid
        info.mtime = int(member.mtime)
        info.type = member.type
        info.pax_headers = {k: v for k, v in member.pax_headers.items()
                            if k not in _DERIVED_PAX}
        if member.islnk():
            target = posixpath.normpath(member.linkname.lstrip("/"))
            source = self._indexes[n].get(target)
            if source is None or not source.isreg():
                raise LayerError(f"cannot squash: hardlink {path} names {target}, which its "
                                 "layer does not hold as a file", entry=path)
            if self._decided.get(target) == (n, source):
                info.linkname = target
            else:   # its target was replaced higher up: a copy of the file it named
                info.type, info.size = tarfile.REGTYPE, source.size
                data_from = (n, source)
        elif member.issym():
            info.linkname = member.linkname
        elif member.ischr() or member.isblk():
            info.devmajor, info.devminor = member.devmajor, member.devminor
        elif member.isreg():
            info.type, info.size = tarfile.REGTYPE, member.size
            data_from = (n, member)
        self._header(info, _KINDS.get(info.type, "files"))
        if data_from is not None:
            self._copy(*data_from)
            self._counts["content_bytes"] += info.size

    def _marker(self, name: str, mtime: int, kind: str) -> None:
        info = tarfile.TarInfo(name)
        info.mode = 0o600
        info.mtime = mtime
        self._header(info, kind)

    def _header(self, info: tarfile.TarInfo, kind: str) -> None:
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self._counts["entries"] += 1
        self._counts[kind] += 1

    def _copy(self, n: int, member: tarfile.TarInfo) -> None:
        layer = self._layers[n]
        layer.seek(member.offset_data)
        remaining = member.size
        while remaining:
            chunk = layer.read(min(remaining, _CHUNK))
            if not chunk:
                raise LayerError(f"cannot squash: layer {n + 1} ends inside {member.name}",
                                 entry=member.name)
            self._write(chunk)
            remaining -= len(chunk)
        self._write(_ZEROS[:-member.size % 512])

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)

    def finish(self) -> LayerStats:
        self._write(_ZEROS)
        return LayerStats(**self._counts, tar_bytes=self._size)
