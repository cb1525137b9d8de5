"""The image commands as a Python API: list, tag, remove, inspect, history, prune, disk usage.

Each function works on the store at ``$LAMINA_ROOT`` (default ``/var/lib/lamina``) unless it is
given one, and returns typed values or raises a ``LaminaError``; ``lamina.cli`` prints them the
way Docker does.

Sizes. Docker shows the size of a local image uncompressed: the sum of its unpacked layers.
lamina counts a layer with the size its snapshot recorded when the layer has been unpacked, and
with its compressed blob size (from the manifest) when it has not: the uncompressed size of a
layer never unpacked is only known by decompressing it, too slow for a listing.

Containers. The runtime keeps the image of a container by registering the GC root
``container-<id>`` with ``Roots(images={manifest digest})``. An image such a root names is in
use: ``remove`` refuses it without ``force`` and ``prune`` keeps it, as Docker does for the image
of a container. Whether that container runs is the runtime's to know, so the conflict is always
one that ``force`` overrides (the image's content stays for the container either way).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..errors import LaminaError
from ..image import mediatypes as mt
from ..image.config import ConfigError, ImageConfig, parse_timestamp
from ..image.descriptor import Descriptor
from ..image.digest import chain_ids, short_id
from ..image.manifest import Index, parse_manifest
from ..image.platform import host_platform
from ..image.reference import ImageReference, ReferenceError
from ..store import Roots, Store, StoredImage
from ..store.gc import GCError, mark, usage
from ..store.layout import ImageNotFoundError
from ..store.snapshots import SnapshotError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any, Literal

CONTAINER_ROOT_PREFIX = "container-"
NEVER_TAGGED = "0001-01-01T00:00:00Z"  # Docker's LastTagTime for an image not tagged here


class NoSuchImageError(ImageNotFoundError):
    """Docker's ``No such image: NAME``; exit status 1, as docker's."""

    exit_code = 1


class ImageConflictError(LaminaError):
    """An image that cannot be removed without force (Docker's ``conflict: ...``)."""

    exit_code = 1


@dataclass(frozen=True)
class ImageSummary:
    """One local image: a row per tag in ``lamina images``, or one ``<none>`` row."""

    id: str                     # the config digest (a multi-platform index: its own digest)
    digest: str                 # the manifest (or index) digest that index.json names
    repo_tags: tuple[str, ...]  # familiar names ("busybox:latest"); () for an untagged image
    created: str | None         # RFC 3339, from the image config
    size: int                   # bytes: see the module docstring

    @property
    def dangling(self) -> bool:
        return not self.repo_tags


@dataclass(frozen=True)
class RemovalEvent:
    """One line of ``rmi`` and ``image prune`` (Docker's ``Untagged:`` and ``Deleted:``)."""

    kind: Literal["untagged", "deleted"]
    name: str  # untagged: a familiar name; deleted: an image ID or a layer's chain ID


@dataclass(frozen=True)
class HistoryRow:
    """One build step of an image, as ``lamina history`` shows it."""

    id: str | None      # the image ID on the newest step; None below (Docker's <missing>)
    created: str | None
    created_by: str
    size: int           # the layer's size (see the module docstring); 0 for an empty layer
    comment: str
    empty_layer: bool


@dataclass(frozen=True)
class PruneReport:
    """What ``lamina image prune`` untagged and deleted, and the bytes it freed."""

    events: tuple[RemovalEvent, ...]
    reclaimed: int      # bytes the store freed


@dataclass(frozen=True)
class UsageRow:
    """One row of ``lamina system df``: what one kind of content holds and could give back."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int


@dataclass(frozen=True)
class DiskUsage:
    """``system df``: Docker's four rows. Only images exist yet; the others stay 0 until the
    runtime, volumes and the build cache record what they hold."""

    images: UsageRow
    containers: UsageRow = UsageRow("Containers", 0, 0, 0, 0)
    local_volumes: UsageRow = UsageRow("Local Volumes", 0, 0, 0, 0)
    build_cache: UsageRow = UsageRow("Build Cache", 0, 0, 0, 0)

    @property
    def rows(self) -> tuple[UsageRow, ...]:
        return (self.images, self.containers, self.local_volumes, self.build_cache)


def images(store: Store | None = None, all: bool = False,
           reference: str | Iterable[str] | None = None,
           dangling: bool | None = None) -> list[ImageSummary]:
    """The local images, newest first.

    Untagged images are left out unless ``all`` is set (Docker 29 does the same) or
    ``dangling`` is true; ``dangling`` true or false keeps only untagged or only tagged images.
    ``reference`` is one or more patterns (``busybox``, ``busy*``, ``busybox:1.*``) matched as
    Docker's ``reference=`` filter does, against a tag's familiar name with and without its
    tag; only the matching tags of an image are kept. Images that cannot be read are left out:
    ``lamina system check`` reports them.
    """
    store = _open(store)
    patterns = [reference] if isinstance(reference, str) else list(reference or ())
    found = []
    for desc, tags in _grouped(store):
        if patterns:
            tags = [t for t in tags if any(_reference_matches(p, t) for p in patterns)]
            if not tags:
                continue
        untagged = not tags
        if dangling is not None and dangling != untagged:
            continue
        if untagged and not (all or dangling):
            continue
        try:
            image = platform_image(store, desc)
            config = image.config()
            size = sum(_layer_sizes(store, image, config))
        except LaminaError:
            continue
        found.append(ImageSummary(_image_id(store, desc), desc.digest, tuple(tags),
                                  config.created, size))
    found.sort(key=lambda s: _created_key(s.created), reverse=True)
    return found


def tag(source: str, target: str, *, store: Store | None = None) -> None:
    """Give the image ``source`` (a name or an ID) the name ``target``."""
    store = _open(store)
    ref = ImageReference.parse(target)  # an uppercase name fails here, with the fix as hint
    store.tag(ref, resolve_image(store, source).digest)


def remove(names: str | Iterable[str], force: bool = False, *,
           store: Store | None = None) -> list[RemovalEvent]:
    """Remove images as ``docker rmi`` does, then collect what nothing references any more.

    A name removes that tag; the image goes with its last tag. An ID removes the image with
    all its tags, but an image with several tags needs ``force``, and so does an image a
    container uses. Names are handled in order; the first that fails raises, after the
    earlier ones are done (the CLI removes one name at a time to report each).
    """
    store = _open(store)
    events: list[RemovalEvent] = []
    for name in [names] if isinstance(names, str) else names:
        events.extend(_remove_one(store, name, force))
    return events


def inspect(name: str, *, store: Store | None = None) -> dict[str, Any]:
    """The image as ``docker image inspect`` shows it (Docker's keys, JSON values)."""
    store = _open(store)
    desc = resolve_image(store, name)
    image = platform_image(store, desc)
    config = image.config()
    raw = json.loads(image.config_bytes())
    last_comment = config.history[-1].comment if config.history else None
    out: dict[str, Any] = {
        "Id": _image_id(store, desc),
        "RepoTags": [familiar(n) for n in store.index.names_of(desc.digest)],
        "RepoDigests": _repo_digests(store, desc.digest),  # pulls and pushes record them
        "Parent": "",
        # Docker shows the config's comment, else the last step's ("buildkit.dockerfile.v0").
        "Comment": raw.get("comment") or last_comment or "",
        "Created": config.created or "",
        "Author": config.author or "",
        "Config": raw.get("config") or {},  # as stored: Docker's keys, unknown ones kept
        "Architecture": config.architecture or "",
        "Os": config.os or "",
    }
    if config.variant:
        out["Variant"] = config.variant
    if config.os_version:
        out["OsVersion"] = config.os_version
    out.update({
        "Size": sum(_layer_sizes(store, image, config)),
        "RootFS": {"Type": config.rootfs.type, "Layers": list(config.rootfs.diff_ids)},
        "Metadata": {"LastTagTime": NEVER_TAGGED},  # not recorded
        "Descriptor": {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size},
    })
    return out


def _repo_digests(store: Store, digest: str) -> list[str]:
    """``name@sha256:<registry digest>`` that pulls and pushes recorded for the image."""
    from ..registry.repodigests import RepoDigests
    return RepoDigests(store.root, store.lock).familiar_of(digest)


def history(name: str, *, store: Store | None = None) -> list[HistoryRow]:
    """The build steps of an image, newest first, each with the size of the layer it made."""
    store = _open(store)
    desc = resolve_image(store, name)
    image = platform_image(store, desc)
    config = image.config()
    sizes = iter(_layer_sizes(store, image, config))
    rows = []
    for step, diff_id in config.layer_history():
        rows.append(HistoryRow(None, step.created, step.created_by or "",
                               0 if diff_id is None else next(sizes, 0), step.comment or "",
                               diff_id is None))
    rows.reverse()
    if rows:  # only the image itself is a local image; its steps are not (Docker: <missing>)
        rows[0] = replace(rows[0], id=_image_id(store, desc))
    return rows


def prune(all: bool = False, *, store: Store | None = None) -> PruneReport:
    """Remove the untagged images (with ``all``, every image) no container uses, then
    collect what nothing references any more."""
    store = _open(store)
    in_use = _in_use(store)
    targets = [(desc, _image_id(store, desc)) for desc, tags in _grouped(store)
               if (all or not tags) and not _keys(store, desc) & in_use]
    events, freed = _delete(store, targets)
    return PruneReport(tuple(events), freed)


def disk_usage(*, store: Store | None = None) -> DiskUsage:
    """What the images take on disk, and what ``image prune -a`` would give back.

    SIZE counts every blob and snapshot once, however many images share it; RECLAIMABLE is
    what the store would still free if no image had a name, i.e. all but what containers,
    the build cache and operations in flight keep.
    """
    store = _open(store)
    use = usage(store)
    total = sum(use.blobs.values()) + sum(use.snapshots.values())
    in_use = _in_use(store)
    grouped = _grouped(store)
    active = sum(1 for desc, _ in grouped if _keys(store, desc) & in_use)
    try:
        kept = mark(_Unnamed(store))  # type: ignore[arg-type]  # a Store without names
        reclaimable = (sum(n for d, n in use.blobs.items() if d not in kept.blobs)
                       + sum(n for c, n in use.snapshots.items() if c not in kept.snapshots))
    except GCError:
        reclaimable = 0  # a root cannot be read: GC would not free anything either
    from ..store.cache import BuildCache   # records and cache mounts; all reclaimable
    cache_count, cache_size = BuildCache(store).usage()
    return DiskUsage(UsageRow("Images", len(grouped), active, total, reclaimable),
                     build_cache=UsageRow("Build Cache", cache_count, 0, cache_size,
                                          cache_size))


# How Docker shows names; the CLI and the store check use these too.
def familiar(name: str) -> str:
    """The name as Docker shows it: ``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    try:
        return ImageReference.parse(name).familiar()
    except ReferenceError:  # a name another tool wrote as it pleased
        return name


def split_repo_tag(repo_tag: str) -> tuple[str, str]:
    """``localhost:5000/app:v1`` -> (``localhost:5000/app``, ``v1``): the tag follows the last
    ``:`` after the last ``/``."""
    colon = repo_tag.rfind(":")
    if colon > repo_tag.rfind("/"):
        return repo_tag[:colon], repo_tag[colon + 1:]
    return repo_tag, ""


class _Unnamed:
    """The store as garbage collection sees it once every image has lost its names: what it
    still keeps is what the registered roots reach."""

    def __init__(self, store: Store) -> None:
        self.content, self.snapshots, self.roots = store.content, store.snapshots, store.roots
        self.index = self

    def list(self) -> list[Any]:
        return []


def _open(store: Store | None) -> Store:
    return store if store is not None else Store.open()


def resolve_image(store: Store, name: str) -> Descriptor:
    """What ``name`` (a name, an ID or ID prefix, a digest) means in ``store``; NoSuchImageError
    when nothing."""
    try:
        return store.resolve(name)
    except ImageNotFoundError:
        raise NoSuchImageError(f"No such image: {name}", reference=name,
                               hint="`lamina images` lists the local images") from None


def _grouped(store: Store) -> list[tuple[Descriptor, list[str]]]:
    """Each image of index.json (its first entry's descriptor) with its familiar names."""
    found: dict[str, tuple[Descriptor, list[str]]] = {}
    for entry in store.index.list():
        _, tags = found.setdefault(entry.descriptor.digest, (entry.descriptor, []))
        if entry.name:
            tags.append(familiar(entry.name))
    return list(found.values())


def platform_image(store: Store, desc: Descriptor) -> StoredImage:
    """The image a stored name means on this machine (an index: this platform's manifest)."""
    if mt.is_index(desc.media_type):
        index = parse_manifest(store.content.read_bytes(desc.digest), desc.media_type)
        assert isinstance(index, Index)
        desc = index.select(host_platform())
    return StoredImage(store.content, desc)


def _image_id(store: Store, desc: Descriptor) -> str:
    return store.index.image_id(desc) or desc.digest  # a missing manifest: its digest


def _keys(store: Store, desc: Descriptor) -> frozenset[str]:
    """The digests a container root may name for this image: the digest index.json names,
    and for an index the manifest this machine runs."""
    if not mt.is_index(desc.media_type):
        return frozenset({desc.digest})
    try:
        return frozenset({desc.digest, platform_image(store, desc).descriptor.digest})
    except LaminaError:
        return frozenset({desc.digest})


def _layer_sizes(store: Store, image: StoredImage, config: ImageConfig) -> list[int]:
    """Each layer's size, bottom first: see the module docstring."""
    sizes = []
    for layer, chain_id in zip(image.layers(), chain_ids(config.rootfs.diff_ids)):
        try:
            sizes.append(store.snapshots.info(chain_id).size)
        except SnapshotError:  # not unpacked (or damaged: system check says so)
            sizes.append(layer.size)
    return sizes


def _created_key(created: str | None) -> datetime:
    try:
        return parse_timestamp(created) if created else _EPOCH
    except ConfigError:
        return _EPOCH


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _reference_matches(pattern: str, repo_tag: str) -> bool:
    """Docker's reference filter: ``pattern`` (``*``, ``?``, ``[...]`` not crossing ``/``,
    as Go's path.Match) against ``name:tag`` or against ``name`` alone."""
    regex = re.compile("".join(
        "[^/]*" if part == "*" else "[^/]" if part == "?"
        else part if part.startswith("[") else re.escape(part.removeprefix("\\"))
        for part in re.findall(r"\[[^\]]+\]|\\.|.", pattern, re.S)))
    return bool(regex.fullmatch(repo_tag) or regex.fullmatch(split_repo_tag(repo_tag)[0]))


def _in_use(store: Store) -> frozenset[str]:
    """The image digests that containers' roots name."""
    return frozenset().union(*(r.images for r in _container_roots(store).values()))


def _container_roots(store: Store) -> dict[str, Roots]:
    """The GC roots of containers, by container ID."""
    found = {}
    for path in sorted(store.roots.roots_dir.glob(f"{CONTAINER_ROOT_PREFIX}*.json")):
        try:
            found[path.stem[len(CONTAINER_ROOT_PREFIX):]] = Roots.from_json(path.read_bytes())
        except FileNotFoundError:
            continue  # the container went meanwhile
        except (ValueError, LaminaError) as err:
            raise GCError(f"GC root file {path} is damaged: {err}",
                          hint="fix or remove the file (`lamina system check` shows it)") \
                from None
    return found


def _remove_one(store: Store, name: str, force: bool) -> list[RemovalEvent]:
    desc, tag_name = _lookup(store, name)
    image_id = _image_id(store, desc)
    tags = store.index.names_of(desc.digest)
    keys = _keys(store, desc)
    users = [cid for cid, roots in _container_roots(store).items() if roots.images & keys]
    if tag_name is not None:
        if len(tags) > 1:  # other names keep the image: only this tag goes
            store.index.remove(tag_name)
            return [RemovalEvent("untagged", familiar(tag_name))]
        if users and not force:
            raise ImageConflictError(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0][:12]} is using its referenced image "
                f"{short_id(image_id)}",
                hint="remove the container first, or use -f (the container keeps its files)")
    elif not force:
        if len(tags) > 1:
            raise ImageConflictError(
                f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                "image is referenced in multiple repositories",
                hint="remove the names one by one, or use -f to remove them all")
        if users:
            raise ImageConflictError(
                f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                f"image is being used by container {users[0][:12]}",
                hint="remove the container first, or use -f (the container keeps its files)")
    return _delete(store, [(desc, image_id)])[0]


def _lookup(store: Store, name: str) -> tuple[Descriptor, str | None]:
    """The image ``name`` means, and the tag it names (None when it is an ID or a digest)."""
    if not name.startswith("sha256:"):
        try:
            ref = ImageReference.parse(name)
        except ReferenceError:
            ref = None
        if ref is not None and ref.digest is None:
            try:
                desc = store.index.get(ref)
                return desc, desc.ref_name
            except ImageNotFoundError:
                pass  # perhaps an ID prefix that reads as a name
    return resolve_image(store, name), None


def _delete(store: Store, targets: list[tuple[Descriptor, str]]) -> tuple[list[RemovalEvent], int]:
    """Remove images with all their names, collect garbage, and say what went as Docker does:
    per image its names, its ID, then the chain IDs of its layers that went with it."""
    per_image = []
    for desc, image_id in targets:
        try:
            chains = chain_ids(platform_image(store, desc).config().rootfs.diff_ids)
        except LaminaError:
            chains = []
        names = store.index.remove_image(desc.digest)
        per_image.append(([*(RemovalEvent("untagged", familiar(n)) for n in names),
                           RemovalEvent("deleted", image_id)], chains))
    result = store.gc()
    gone = set(result.removed_snapshots)
    events: list[RemovalEvent] = []
    for image_events, chains in per_image:
        events.extend(image_events)
        for chain_id in reversed(chains):  # the top layer first, as Docker releases them
            if chain_id in gone:
                gone.discard(chain_id)
                events.append(RemovalEvent("deleted", chain_id))
    return events, result.bytes_freed
