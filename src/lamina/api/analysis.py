"""Where an image's bytes went: ``lamina history --wasted`` and ``lamina image analyze``.

Each layer tar is streamed once, bottom first, and replayed on a model of the file tree (paths
only, no contents). A file's bytes are *wasted* when a later layer hides them: a whiteout
(``.wh.NAME``), an opaque directory (``.wh..wh..opq``), a new entry at the same path, or a
non-directory in place of a directory. The image still ships those bytes, but no container
sees them.

Efficiency follows dive's definition, per path: each layer that writes a path adds a version
with its size, and a deletion adds a version of size 0; the score is the sum over paths of the
smallest version divided by the sum of all versions (1.0 for an image without file bytes).
Unlike dive, a deleted directory counts as the deletion of each file under it.

The user wasted ratio is dive's too: wasted bytes over the file bytes of every layer but the
bottom one (taken as the base image).
"""
from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import Literal

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.descriptor import Descriptor
from ..store import Store
from .images import platform_image, resolve_image

DEFAULT_OFFENDERS = 20

# dive's CI rules and their defaults (None: the rule is skipped).
DEFAULT_RULES = {"lowestEfficiency": 0.9, "highestWastedBytes": None,
                 "highestUserWastedPercent": 0.1}

How = Literal["deleted", "overwritten", "replaced"]


class AnalyzeError(LaminaError):
    """A layer that cannot be read for the analysis."""


@dataclass(frozen=True)
class LayerUsage:
    """One layer: how it is stored, how big it is, and what of it later layers hid."""

    index: int                  # 0 is the bottom layer
    digest: str                 # the blob digest (manifest)
    diff_id: str                # the digest of the uncompressed tar (config)
    created_by: str             # the build step that made it
    stored_size: int            # bytes of the blob as stored
    compression: str | None     # "gzip", "zstd", or None: stored as an uncompressed tar
    tar_size: int               # bytes of the uncompressed tar
    file_bytes: int             # bytes of the regular files it holds
    files: int                  # how many regular files it holds
    wasted_bytes: int           # of its file bytes, those later layers hid
    removed_bytes: int          # file bytes of lower layers this layer hid

    @property
    def compressed(self) -> bool:
        return self.compression is not None


@dataclass(frozen=True)
class WastedFile:
    """Bytes a layer shipped that a later layer hid."""

    path: str       # absolute, as in the container ("/var/cache/apt/pkgcache.bin")
    size: int
    added_by: int   # layer index
    removed_by: int
    how: How        # deleted (a whiteout or an opaque dir), overwritten (a new file at the
                    # path), replaced (a directory by a file or the other way round)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one of dive's CI rules on an ``Analysis`` (``lamina image analyze --ci``)."""

    name: str                                # dive's rule name
    threshold: float | None                  # None: skipped
    status: Literal["PASS", "FAIL", "SKIP"]
    message: str


@dataclass(frozen=True)
class Analysis:
    """Where an image's bytes went, layer by layer, and which of them later layers wasted."""

    image: str                      # the name asked for
    image_id: str                   # config digest
    layers: tuple[LayerUsage, ...]  # bottom first
    wasted: tuple[WastedFile, ...]  # every hidden file, biggest first
    total_bytes: int                # file bytes over all layers
    wasted_bytes: int
    user_bytes: int                 # file bytes of all layers but the bottom one
    efficiency: float

    @property
    def user_wasted_ratio(self) -> float:
        """Wasted bytes over the bytes the layers above the base added (dive's
        highestUserWastedPercent is compared with this ratio)."""
        return self.wasted_bytes / self.user_bytes if self.user_bytes else 0.0

    @property
    def stored_size(self) -> int:
        return sum(layer.stored_size for layer in self.layers)

    @property
    def tar_size(self) -> int:
        return sum(layer.tar_size for layer in self.layers)

    def offenders(self, limit: int = DEFAULT_OFFENDERS) -> tuple[WastedFile, ...]:
        return self.wasted[:limit]

    def to_json(self, limit: int | None = None) -> dict:
        """A JSON-ready summary (every wasted file unless ``limit``)."""
        return {
            "image": self.image, "id": self.image_id,
            "efficiency": self.efficiency, "totalBytes": self.total_bytes,
            "wastedBytes": self.wasted_bytes, "userBytes": self.user_bytes,
            "userWastedPercent": self.user_wasted_ratio,
            "storedSize": self.stored_size, "uncompressedSize": self.tar_size,
            "layers": [{"index": la.index, "digest": la.digest, "diffID": la.diff_id,
                        "createdBy": la.created_by, "storedSize": la.stored_size,
                        "compression": la.compression or "none",
                        "uncompressedSize": la.tar_size, "fileBytes": la.file_bytes,
                        "files": la.files, "wastedBytes": la.wasted_bytes,
                        "removedBytes": la.removed_bytes} for la in self.layers],
            "wasted": [{"path": w.path, "size": w.size, "addedBy": w.added_by,
                        "removedBy": w.removed_by, "how": w.how}
                       for w in (self.wasted if limit is None else self.wasted[:limit])],
        }


def analyze(name: str, *, store: Store | None = None) -> Analysis:
    """Stream every layer of the image ``name`` (this machine's platform for an index) and
    account for its bytes: see the module docstring."""
    store = store if store is not None else Store.open()
    desc = resolve_image(store, name)
    image = platform_image(store, desc)
    config = image.config()
    layers = image.layers()
    diff_ids = config.rootfs.diff_ids
    if len(layers) != len(diff_ids):
        raise AnalyzeError(f"image {name} has {len(layers)} layers but its config lists "
                           f"{len(diff_ids)} diff IDs",
                           hint=f"`lamina image verify {name}` lists what is wrong")
    steps = [step.created_by or "" for step, diff_id in config.layer_history()
             if diff_id is not None]
    tree = _Tree()
    scans = []
    for index, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
        scans.append(_scan_layer(store, layer, diff_id, index, tree, name))
    wasted_by: dict[int, int] = {}    # layer -> its bytes later layers hid
    removed_by: dict[int, int] = {}   # layer -> lower bytes it hid
    for w in tree.wasted:
        wasted_by[w.added_by] = wasted_by.get(w.added_by, 0) + w.size
        removed_by[w.removed_by] = removed_by.get(w.removed_by, 0) + w.size
    usages = tuple(LayerUsage(
        index=i, digest=layer.digest, diff_id=diff_id,
        created_by=steps[i] if i < len(steps) else "", stored_size=layer.size,
        compression=_compression(layer), tar_size=tar_size, file_bytes=file_bytes,
        files=files, wasted_bytes=wasted_by.get(i, 0), removed_bytes=removed_by.get(i, 0))
        for i, (layer, diff_id, (tar_size, file_bytes, files))
        in enumerate(zip(layers, diff_ids, scans)))
    total = sum(u.file_bytes for u in usages)
    wasted = tuple(sorted(tree.wasted, key=lambda w: (-w.size, w.path, w.added_by)))
    return Analysis(
        image=name, image_id=image.manifest().config.digest, layers=usages, wasted=wasted,
        total_bytes=total, wasted_bytes=sum(w.size for w in wasted),
        user_bytes=total - (usages[0].file_bytes if usages else 0),
        efficiency=tree.efficiency())


def evaluate(analysis: Analysis, *, lowest_efficiency: float | None = None,
             highest_wasted_bytes: int | None = None,
             highest_user_wasted_percent: float | None = None,
             defaults: bool = True) -> tuple[RuleResult, ...]:
    """dive's three CI rules. A threshold not given takes dive's default when ``defaults``
    (efficiency 0.9, user wasted ratio 0.1, wasted bytes skipped), else its rule is skipped.
    A rule fails when the efficiency is below its threshold, or the wasted bytes or the user
    wasted ratio are above theirs."""
    def pick(value: float | None, rule: str) -> float | None:
        return value if value is not None else DEFAULT_RULES[rule] if defaults else None

    return (
        _rule("lowestEfficiency", pick(lowest_efficiency, "lowestEfficiency"),
              analysis.efficiency, "efficiency", low_fails=True),
        _rule("highestWastedBytes", pick(highest_wasted_bytes, "highestWastedBytes"),
              analysis.wasted_bytes, "wasted bytes"),
        _rule("highestUserWastedPercent",
              pick(highest_user_wasted_percent, "highestUserWastedPercent"),
              analysis.user_wasted_ratio, "user wasted ratio"),
    )


def _rule(name: str, threshold: float | None, measured: float, what: str, *,
          low_fails: bool = False) -> RuleResult:
    if threshold is None:
        return RuleResult(name, None, "SKIP", "rule disabled")
    failed = measured < threshold if low_fails else measured > threshold
    relation = ("below" if low_fails else "above") if failed \
        else ("at or above" if low_fails else "at or below")
    shown = (f"{measured}", f"{threshold:.0f}") if isinstance(measured, int) \
        else (f"{measured:.4g}", f"{threshold:g}")
    return RuleResult(name, threshold, "FAIL" if failed else "PASS",
                      f"{what} {shown[0]} is {relation} the threshold {shown[1]}")


def _compression(layer: Descriptor) -> str | None:
    try:
        return mt.layer_compression(layer.media_type)
    except mt.MediaTypeError:
        return None  # sniffed when read; an unknown type is reported by the read


def _scan_layer(store: Store, layer: Descriptor, diff_id: str, index: int, tree: "_Tree",
                name: str) -> tuple[int, int, int]:
    """Replay one layer on ``tree``; return (tar bytes, file bytes, files)."""
    from ..layer.compress import DigestReader, open_decompressed

    if not store.content.has(layer.digest):
        raise AnalyzeError(f"layer {layer.digest} of image {name} is not in the store",
                           hint="pull or load the image again (a foreign layer is fetched "
                                "only when the image is run)")
    file_bytes = files = 0
    entry = None
    try:
        with store.content.open_blob(layer.digest) as blob:
            tar_stream = DigestReader(open_decompressed(blob))
            with tarfile.open(fileobj=tar_stream, mode="r|", encoding="utf-8",
                              errors="surrogateescape") as tar:
                while (member := tar.next()) is not None:
                    entry = member.name
                    size = member.size if member.isreg() else 0
                    if tree.apply(member.name, size, member.isdir(), index) and member.isreg():
                        file_bytes += size
                        files += 1
                    tar.members.clear()  # stream mode keeps members: memory stays flat
            while tar_stream.read(1 << 16):  # the padding after the end-of-archive blocks
                pass
    except Exception as err:  # tarfile, gzip, zstd and the file system each raise their own
        where = f" at entry {entry!r}" if entry else ""
        raise AnalyzeError(f"layer {layer.digest} of image {name} cannot be read{where}: "
                           f"{err}", hint=f"`lamina image verify {name}` checks the image")
    if tar_stream.digest != diff_id:
        raise AnalyzeError(f"layer {layer.digest} of image {name} unpacks to "
                           f"{tar_stream.digest}, not to its diff ID {diff_id}",
                           hint=f"the image is damaged: `lamina image verify {name}` "
                                "lists the problems")
    return tar_stream.size, file_bytes, files


@dataclass
class _Node:
    """A path of the merged file tree while layers are applied: the layer that last wrote it."""

    size: int = 0
    layer: int = -1
    is_dir: bool = True
    children: dict[str, "_Node"] = field(default_factory=dict)


class _Tree:
    """The merged file tree so far, with the versions of every file path for efficiency."""

    def __init__(self) -> None:
        self.root = _Node()
        self.wasted: list[WastedFile] = []
        self.total: dict[str, int] = {}     # path -> the bytes of all its versions
        self.smallest: dict[str, int] = {}  # path -> its smallest version

    def apply(self, name: str, size: int, is_dir: bool, layer: int) -> bool:
        """One tar entry; False for what is not content (whiteouts, the root, bad names)."""
        path = _normalised(name)
        if path is None:
            return False
        parent, base = posixpath.split(path)
        if base == ".wh..wh..opq":
            node = self._dir(parent, layer)
            for child_name in list(node.children):
                self._hide(node, child_name, parent, layer, "deleted")
            return False
        if base.startswith(".wh..wh."):
            return False  # aufs bookkeeping: not content
        if base.startswith(".wh."):
            self._hide(self._dir(parent, layer), base[4:], parent, layer, "deleted")
            return False
        node = self._dir(parent, layer)
        old = node.children.get(base)
        if old is not None:
            if old.is_dir and is_dir:
                old.layer = layer  # a directory listed again: its content stays
                return True
            self._hide(node, base, parent, layer, "replaced" if old.is_dir != is_dir
                       else "overwritten", also_same_layer=True)
        node.children[base] = _Node(size, layer, is_dir)
        if not is_dir:
            self._version(_join(parent, base), size)
        return True

    def _dir(self, path: str, layer: int) -> _Node:
        """The directory at ``path``, made on the way (a file in the way is replaced)."""
        node, here = self.root, ""
        for part in path.split("/") if path else ():
            child = node.children.get(part)
            if child is None or not child.is_dir:
                if child is not None:
                    self._hide(node, part, here, layer, "replaced", also_same_layer=True)
                child = node.children[part] = _Node(0, layer, True)
            node, here = child, _join(here, part)
        return node

    def _hide(self, parent: _Node, name: str, parent_path: str, layer: int, how: How,
              also_same_layer: bool = False) -> None:
        """Hide what lower layers put at ``parent/name`` (a whiteout or opaque dir hides
        only lower layers' content; the same layer's own entries stay)."""
        node = parent.children.get(name)
        if node is None:
            return
        path = _join(parent_path, name)
        kept = self._hide_tree(node, path, layer, how, also_same_layer)
        if not kept:
            del parent.children[name]

    def _hide_tree(self, node: _Node, path: str, layer: int, how: How,
                   also_same_layer: bool) -> bool:
        """Hide ``node`` and what is under it; True if something of ``layer`` stays."""
        if node.layer == layer and not also_same_layer and not node.is_dir:
            return True
        if not node.is_dir:
            self._lose(path, node, layer, how)
            return False
        kept = False
        for name, child in list(node.children.items()):
            if self._hide_tree(child, _join(path, name), layer, how, also_same_layer):
                kept = True
            else:
                del node.children[name]
        return kept or (node.layer == layer and not also_same_layer)

    def _lose(self, path: str, node: _Node, layer: int, how: How) -> None:
        if node.size:
            self.wasted.append(WastedFile("/" + path, node.size, node.layer, layer, how))
        if how != "overwritten":
            self._version(path, 0)  # gone: its smallest version is nothing

    def _version(self, path: str, size: int) -> None:
        self.total[path] = self.total.get(path, 0) + size
        self.smallest[path] = min(self.smallest.get(path, size), size)

    def efficiency(self) -> float:
        total = sum(self.total.values())
        return sum(self.smallest.values()) / total if total else 1.0


def _normalised(name: str) -> str | None:
    """A tar entry name as a path relative to the root, or None for the root itself or a
    name that climbs out (such a layer cannot be applied anyway)."""
    if ".." in name.split("/"):
        return None
    path = posixpath.normpath("/" + name).lstrip("/")
    return path or None


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
