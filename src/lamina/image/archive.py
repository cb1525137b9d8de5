"""Image archives: the tar ``docker save`` writes and ``docker load`` reads, and OCI layouts.

One tar can hold its images three ways at once; ``write_archive`` writes all three, as
Docker 25+ does, so that ``docker load`` (any version), skopeo (``docker-archive:`` and
``oci-archive:``) and umoci (on the extracted tar) all read it::

    blobs/sha256/<hex>   every manifest, config and layer (a layer compressed as it is stored)
    oci-layout           the OCI image layout ...
    index.json           ... whose tagged entries carry the full name (io.containerd.image.name)
                         and the tag (org.opencontainers.image.ref.name), as Docker writes them
    manifest.json        the docker-archive: per image its Config, RepoTags and Layers (paths)
    repositories         {name: {tag: top layer}}, for readers older than Docker 1.10

``read_archive`` reads the images of such a tar as ``Image`` sources: by manifest.json when
there is one (Docker before 25 wrote ``<id>.json`` configs and ``<id>/layer.tar`` layers,
plain tars; such an image gets a new OCI manifest unless the tar holds one for the same
content), else by index.json. It needs a seekable, uncompressed tar: ``sniff_compression`` and
``decompress`` open what Docker accepts (plain, gzip, bzip2, xz, zstd). An entry whose path
or link leads outside the archive (absolute, or through ``..``) refuses the whole archive.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import posixpath
import re
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from ..errors import LaminaError
from . import mediatypes as mt
from .config import ConfigError, ImageConfig
from .descriptor import Descriptor
from .digest import Sha256, canonical_json, digest_hex, sha256_digest
from .manifest import Index, Manifest, ManifestError, build_index, build_manifest, parse_manifest
from .platform import host_platform
from .reference import ImageReference, ReferenceError, parse_normalized
from .source import MAX_CONFIG_SIZE, Image, ImageBase

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.json"
LAYOUT_FILE = "oci-layout"
REPOSITORIES_FILE = "repositories"
LAYOUT_VERSION = "1.0.0"
NAME_ANNOTATION = "io.containerd.image.name"  # Docker's full image name in index.json
TAG_ANNOTATION = "org.opencontainers.image.ref.name"

_BLOB_PATH = re.compile(r"blobs/sha256/([a-f0-9]{64})")
_MAGIC = {b"\x1f\x8b\x08": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
          b"\x28\xb5\x2f\xfd": "zstd"}
# What the decompressors raise for damaged input (a bad header, a cut stream, bad data).
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
_MAX_LINKS = 40  # links followed from one entry before giving up (a loop)
_CHUNK = 1024 * 1024


class ArchiveError(LaminaError):
    """An archive lamina cannot read or write; the message names the entry at fault."""


@dataclass(frozen=True)
class ArchivedImage:
    """One image read from a ``docker save`` tar or OCI layout, with the names it carries there."""

    image: "ArchiveImage"
    names: tuple[ImageReference, ...]  # the tags the archive gives it (normalised)


class ArchiveImage(ImageBase):
    """One image in an archive: its blobs are entries of the tar."""

    def __init__(self, members: "TarMembers", manifest_raw: bytes,
                 entries: dict[str, str]) -> None:
        self._members = members
        self._raw = manifest_raw
        self._entries = entries  # digest -> entry path (default: blobs/sha256/<hex>)

    def manifest_bytes(self) -> bytes:
        return self._raw

    def config_bytes(self) -> bytes:
        if self._config_bytes is None:
            desc = self.manifest().config
            self._config_bytes = _verified(self._members, self.entry_name(desc.digest), desc)
        return self._config_bytes

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._members.open(self.entry_name(desc.digest))

    def entry_name(self, digest: str) -> str:
        """The archive entry that holds the blob ``digest``."""
        return self._entries.get(digest) or _blob_path(digest)


class TarMembers:
    """The entries of a seekable tar by path; links are followed inside the archive only."""

    def __init__(self, fileobj: BinaryIO) -> None:
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:")
            members = self._tar.getmembers()
        except (tarfile.TarError, EOFError) as err:
            raise ArchiveError(f"not a tar archive, or a damaged one ({err})",
                               hint="give a file written by docker save, lamina save or "
                                    "skopeo (docker-archive: or oci-archive:)") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            path = _entry_path(member.name, "archive entry")
            if member.issym() or member.islnk():
                self._link_target(path, member)  # refuse a link out of the archive now
            self._members[path] = member

    def __contains__(self, path: str) -> bool:
        return path in self._members

    def size(self, path: str) -> int:
        return self._file(path).size

    def open(self, path: str) -> BinaryIO:
        stream = self._tar.extractfile(self._file(path))
        assert stream is not None  # _file returns regular files only
        return stream  # type: ignore[return-value]

    def read(self, path: str) -> bytes:
        """A small entry (JSON: a manifest, a config, index.json) read whole."""
        size = self.size(path)
        if size > MAX_CONFIG_SIZE:
            raise ArchiveError(f"{path}: {size} bytes, too big for a JSON file of an archive")
        with self.open(path) as stream:
            return stream.read()

    def json(self, path: str) -> Any:
        try:
            return json.loads(self.read(path))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArchiveError(f"{path}: not valid JSON ({err})") from None

    def _file(self, path: str) -> tarfile.TarInfo:
        member = self._members.get(path)
        for _ in range(_MAX_LINKS):
            if member is None:
                raise ArchiveError(f"{path}: no such entry in the archive",
                                   hint="the archive is incomplete or was not written by "
                                        "docker save, lamina save or skopeo")
            if not (member.issym() or member.islnk()):
                break
            member = self._members.get(self._link_target(path, member))
        else:
            raise ArchiveError(f"{path}: too many links (a loop?)")
        if not member.isreg():
            raise ArchiveError(f"{path}: not a regular file in the archive")
        return member

    @staticmethod
    def _link_target(path: str, member: tarfile.TarInfo) -> str:
        if member.islnk():  # a hard link names another entry of the archive
            return _entry_path(member.linkname, path)
        if member.linkname.startswith("/"):
            raise ArchiveError(f"{path}: links to the absolute path {member.linkname!r}, "
                               "outside the archive", hint="the archive is damaged or hostile")
        return _entry_path(posixpath.join(posixpath.dirname(path), member.linkname), path)


def read_archive(fileobj: BinaryIO) -> list[ArchivedImage]:
    """The images of an archive (a seekable, uncompressed tar), in the archive's order."""
    members = TarMembers(fileobj)
    if MANIFEST_FILE in members:
        return _docker_archive(members)
    if INDEX_FILE in members:
        return _oci_layout(members)
    hint = ("this is a docker save archive from before Docker 1.10, which lamina does not read: "
            "save it again with a newer Docker" if REPOSITORIES_FILE in members else
            "give a file written by docker save, lamina save or skopeo")
    raise ArchiveError("the archive has neither manifest.json (docker save) nor index.json "
                       "(an OCI image layout)", hint=hint)


def _docker_archive(members: TarMembers) -> list[ArchivedImage]:
    entries = members.json(MANIFEST_FILE)
    if not isinstance(entries, list):
        raise ArchiveError(f"{MANIFEST_FILE}: not a list of images")
    known = _oci_manifests(members)
    images = []
    for n, entry in enumerate(entries):
        where = f"{MANIFEST_FILE} image {n + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not _strings(entry.get("Layers")) or not _strings(entry.get("RepoTags")):
            raise ArchiveError(f"{where}: needs Config (a path), Layers and RepoTags (lists of "
                               "strings)")
        config_path = _entry_path(entry["Config"], where)
        config_raw = members.read(config_path)
        config_desc = Descriptor(mt.OCI_CONFIG, sha256_digest(config_raw), len(config_raw))
        _check_blob_name(config_path, config_desc.digest)
        try:
            diff_ids = ImageConfig.parse(config_raw).rootfs.diff_ids
        except ConfigError as err:
            raise ArchiveError(f"{config_path}: {err.message}") from None
        layer_paths = [_entry_path(p, where) for p in entry.get("Layers") or ()]
        if len(layer_paths) != len(diff_ids):
            raise ArchiveError(f"{where}: lists {len(layer_paths)} layers but its config "
                               f"{config_path} has {len(diff_ids)} diff IDs")
        layers = [_layer(members, p, d) for p, d in zip(layer_paths, diff_ids)]
        raw = known.get((config_desc.digest, tuple(layer.digest for layer in layers))) \
            or build_manifest(config_desc, layers).raw
        paths = {config_desc.digest: config_path,
                 **{layer.digest: p for layer, p in zip(layers, layer_paths)}}
        names = tuple(_name(tag, where) for tag in entry.get("RepoTags") or ())
        images.append(ArchivedImage(ArchiveImage(members, raw, paths), names))
    return images


def _oci_layout(members: TarMembers) -> list[ArchivedImage]:
    images = []
    for entry in _index(members).manifests:
        desc = entry
        if mt.is_index(desc.media_type):  # several platforms: this machine's
            index = _parse(_verified(members, _blob_path(desc.digest), desc), desc)
            assert isinstance(index, Index)
            desc = index.select(host_platform())
        if not mt.is_image_manifest(desc.media_type):
            continue  # not an image (an artifact): nothing to load
        raw = _verified(members, _blob_path(desc.digest), desc)
        _parse(raw, desc)  # a damaged manifest is refused here, where its entry is known
        images.append(ArchivedImage(ArchiveImage(members, raw, {}), _layout_names(entry)))
    return images


def _oci_manifests(members: TarMembers) -> dict[tuple[str, tuple[str, ...]], bytes]:
    """The image manifests index.json lists, by (config digest, layer digests)."""
    if INDEX_FILE not in members:
        return {}
    found = {}
    for desc in _index(members).manifests:
        if mt.is_image_manifest(desc.media_type):
            raw = _verified(members, _blob_path(desc.digest), desc)
            manifest = _parse(raw, desc)
            assert isinstance(manifest, Manifest)
            found[(manifest.config.digest, tuple(d.digest for d in manifest.layers))] = raw
    return found


def _index(members: TarMembers) -> Index:
    try:
        index = parse_manifest(members.read(INDEX_FILE), mt.OCI_INDEX)
    except ManifestError as err:
        raise ArchiveError(f"{INDEX_FILE}: {err.message}") from None
    assert isinstance(index, Index)
    return index


def _parse(raw: bytes, desc: Descriptor) -> Manifest | Index:
    try:
        return parse_manifest(raw, desc.media_type)
    except ManifestError as err:
        raise ArchiveError(f"{_blob_path(desc.digest)}: {err.message}") from None


def _layer(members: TarMembers, path: str, diff_id: str) -> Descriptor:
    """The descriptor of a layer listed in manifest.json, which gives only its path."""
    with members.open(path) as stream:
        compression = detect(stream.read(6))
    if compression not in (None, "gzip", "zstd"):
        raise ArchiveError(f"{path}: a {compression} layer, which image layers cannot be",
                           hint="layers are tars, plain or compressed with gzip or zstd")
    match = _BLOB_PATH.fullmatch(path)
    if match:
        digest = "sha256:" + match.group(1)  # checked as the blob is copied
    elif compression is None:
        digest = diff_id  # a plain tar is its own blob; checked as it is copied
    else:
        with members.open(path) as stream:
            digest = _digest_of(stream)
    return Descriptor(mt.layer_media_type(compression), digest, members.size(path))


def _verified(members: TarMembers, path: str, desc: Descriptor) -> bytes:
    """A small blob (a manifest, a config), checked against its descriptor."""
    data = members.read(path)
    if len(data) != desc.size or sha256_digest(data) != desc.digest:
        raise ArchiveError(f"{path}: expected {desc.digest} ({desc.size} bytes) but the entry "
                           f"has {sha256_digest(data)} ({len(data)} bytes)",
                           hint="the archive is damaged: save or download it again")
    return data


def _check_blob_name(path: str, digest: str) -> None:
    match = _BLOB_PATH.fullmatch(path)
    if match and "sha256:" + match.group(1) != digest:
        raise ArchiveError(f"{path}: the content has digest {digest}, not the one its name says",
                           hint="the archive is damaged: save or download it again")


def _layout_names(desc: Descriptor) -> tuple[ImageReference, ...]:
    """The name of an index.json entry: Docker's full name, else a ref.name that is one.

    A bare ref.name ("latest", as Docker writes beside the full name) is only a tag, with no
    repository to put it in, so it names nothing.
    """
    name = desc.annotations.get(NAME_ANNOTATION)
    ref_name = desc.annotations.get(TAG_ANNOTATION)
    if name is None and ref_name and ("/" in ref_name or ":" in ref_name):
        name = ref_name
    return (_name(name, INDEX_FILE),) if name else ()


def _name(text: str, where: str) -> ImageReference:
    try:
        ref = parse_normalized(text)
    except ReferenceError as err:
        raise ArchiveError(f"{where}: invalid image name {text!r}: {err.message}") from None
    if ref.digest is not None:
        raise ArchiveError(f"{where}: image name {text!r} has a digest; a name needs a tag")
    return ref


def _entry_path(name: str, where: str) -> str:
    """An archive path, normalised (``./a//b`` is ``a/b``); refused if it leads outside."""
    path = posixpath.normpath(name)
    if name.startswith("/") or path == ".." or path.startswith("../"):
        raise ArchiveError(f"{where}: the path {name!r} leads outside the archive",
                           hint="the archive is damaged or hostile: lamina reads none of it")
    return path


def _strings(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _digest_of(stream: BinaryIO) -> str:
    reader = _HashingReader(stream)
    while reader.read(_CHUNK):
        pass
    return reader.digest


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


# --------------------------------------------------------------------------- writing


def write_archive(out: BinaryIO, images: Sequence[tuple[Image, Sequence[ImageReference]]]) -> None:
    """Write ``images``, each with its names (tagged references), as one archive to ``out``.

    ``out`` is written front to back (a pipe will do). The tar is deterministic: entries
    sorted, times zero, owner root; the same images and names give the same bytes. Each
    layer is checked against its digest as it is copied.
    """
    small: dict[str, bytes] = {}
    layers: dict[str, tuple[Image, Descriptor]] = {}
    index_entries: list[Descriptor] = []
    docker_entries: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image, names in images:
        manifest = image.manifest()
        small[_blob_path(manifest.digest)] = manifest.raw
        small[_blob_path(manifest.config.digest)] = image.config_bytes()
        for layer in manifest.layers:
            layers.setdefault(_blob_path(layer.digest), (image, layer))
        index_entries.extend(manifest.descriptor(annotations={
            NAME_ANNOTATION: str(ref), TAG_ANNOTATION: str(ref.tag)}) for ref in names)
        if not names:
            index_entries.append(manifest.descriptor())
        docker_entries.append({
            "Config": _blob_path(manifest.config.digest),
            "RepoTags": [ref.familiar() for ref in names] or None,  # null, as Docker writes
            "Layers": [_blob_path(layer.digest) for layer in manifest.layers]})
        for ref in names if manifest.layers else ():
            repositories.setdefault(ref.familiar_name, {})[str(ref.tag)] = \
                digest_hex(manifest.layers[-1].digest)
    small[INDEX_FILE] = build_index(index_entries).raw
    small[MANIFEST_FILE] = json.dumps(docker_entries, separators=(",", ":")).encode()
    small[LAYOUT_FILE] = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
    if repositories:
        small[REPOSITORIES_FILE] = canonical_json(repositories)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            tar.addfile(_header(folder, 0, tarfile.DIRTYPE, 0o755))
        for path in sorted(small.keys() | layers.keys()):
            if path in small:
                tar.addfile(_header(path, len(small[path])), io.BytesIO(small[path]))
                continue
            image, desc = layers[path]
            with image.open_blob(desc) as blob:
                reader = _HashingReader(blob)
                tar.addfile(_header(path, desc.size), reader)  # type: ignore[arg-type]
            if reader.digest != desc.digest:
                raise ArchiveError(f"layer {desc.digest} is damaged: its content now has "
                                   f"digest {reader.digest}; the archive is incomplete",
                                   hint="remove the image and pull or build it again")


def _header(path: str, size: int, kind: bytes = tarfile.REGTYPE,
            mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)  # mtime 0, uid and gid 0, no owner names
    info.size, info.type, info.mode = size, kind, mode
    return info


class _HashingReader:
    """Reads through ``stream``, hashing what passes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = Sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


# --------------------------------------------------------------------------- compression


def detect(head: bytes) -> str | None:
    """The compression of a tarball from its first 6 bytes: gzip, bzip2, xz, zstd or None."""
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def sniff_compression(stream: BinaryIO) -> tuple[str | None, BinaryIO]:
    """The compression of ``stream`` (see ``detect``) and the stream, still at its start.

    A seekable stream is rewound; a pipe is read forward only, its first bytes put back.
    """
    head = b""
    while len(head) < 6 and (more := stream.read(6 - len(head))):
        head += more
    if getattr(stream, "seekable", lambda: False)():
        stream.seek(-len(head), io.SEEK_CUR)
        return detect(head), stream
    return detect(head), _Prepended(head, stream)  # type: ignore[return-value]


def decompress(compression: str | None, stream: BinaryIO) -> BinaryIO:
    """The plain bytes of ``stream`` compressed with ``compression`` (as ``detect`` names it)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(stream)  # type: ignore[return-value]
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            stream, read_across_frames=True, closefd=False)
    return stream


class _Prepended:
    """A stream with the bytes already read from it (to sniff them) put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if 0 <= size <= len(self._head):
            data, self._head = self._head[:size], self._head[size:]
            return data
        data, self._head = self._head, b""
        return data + self._stream.read(-1 if size < 0 else size - len(data))

    def readable(self) -> bool:
        return True
