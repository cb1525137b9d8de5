"""Build cache records: what a build step produced, found again by the step's cache key.

    <root>/buildcache/records/<key hex>.json   one record per step result
    <root>/buildcache/children/<parent hex>    keys recorded on top of a parent, one per line
    <root>/buildcache/files/<name>.json        remembered file hashes of a build context
    <root>/buildcache/mounts/<id hash>/        RUN --mount=type=cache directories
    <root>/roots/cache-<key hex>.json          the record's blobs and snapshots, kept by GC

A record holds the image state after the step (its config bytes and layer descriptors) and
the parts its key was computed from (``parts``, a JSON object the builder defines: parent,
instruction, build args, file digests), so that a miss can be explained by comparing a new
step with the records made on the same parent. The store gives the parts no meaning.

A record is written after everything it names is in the store and rooted; a crash at any
moment leaves either no record or a complete one (written to a temp file, then renamed).
A record whose blobs went missing is a miss, never an error. A hit touches the record
file: its mtime is the record's last use, which ``prune`` goes by.

Exported cache (``--cache-to type=local,dest=DIR``, read back by ``--cache-from
type=local,src=DIR``): an OCI image layout, so that ordinary tools can copy it around::

    DIR/oci-layout            {"imageLayoutVersion": "1.0.0"}
    DIR/index.json            an OCI index with one manifest, annotated
                              "dev.lamina.build-cache": "v1"
    DIR/blobs/sha256/<hex>    the manifest, the cache config and every layer blob

The manifest is an OCI image manifest whose ``artifactType`` and config media type are
``application/vnd.lamina.buildcache.config.v1+json``; its ``layers`` list every layer blob
the records name. The cache config is lamina's own JSON::

    {"version": 1, "records": [RECORD, ...]}

where each RECORD is a cache record exactly as ``records/<hex>.json`` holds it (``key``,
``parts``, ``config`` (the image config, a string), ``layers`` (descriptors), ``chain_id``,
``extra``). Importing trusts nothing in DIR: the manifest and config must match their
digests, each layer blob is copied into the store through a digest check, a record must be
listed in the manifest's layers and its key must be the digest of its parts (the builder
gives that check); what fails is left out with a warning, and the rest is imported as
ordinary records (GC roots included).

The same manifest and config (``CacheArtifact``) travel through a registry for
``type=registry,ref=REF``; registry/buildcache.py pushes and pulls them, and hands the
records to ``import_records``, the import shared by both transports.

``prune`` removes records (all of them, or those not used since a given time, oldest first
down to a size to keep) and their GC roots; the caller then collects garbage.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..image.descriptor import Descriptor
from ..image.digest import digest_hex, sha256_digest
from .locks import write_volatile
from .roots import Roots
from .root import Store

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any
    from .roots import Lease

ROOT_PREFIX = "cache-"
EXPORT_MEDIA_TYPE = "application/vnd.lamina.buildcache.config.v1+json"
EXPORT_ANNOTATION = "dev.lamina.build-cache"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CHILDREN_READ = 8     # records read to explain a miss: the most recent on the same parent


@dataclass(frozen=True)
class CacheRecord:
    """A step's result, found again by the step's cache key."""

    key: str                          # sha256:<hex> of the parts
    parts: Mapping[str, Any]          # what the key was made of (see the module doc)
    config: bytes                     # the image config after the step, raw
    layers: tuple[Descriptor, ...]    # every layer of the image after the step, bottom first
    chain_id: str | None = None       # the chain ID of the top layer (None: no layers)
    extra: Mapping[str, Any] = field(default_factory=dict)   # e.g. per-file digests

    def to_json(self) -> bytes:
        return json.dumps({
            "key": self.key, "parts": self.parts, "config": self.config.decode(),
            "layers": [d.to_json() for d in self.layers], "chain_id": self.chain_id,
            "extra": self.extra}, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CacheRecord":
        obj = json.loads(raw)
        return cls(obj["key"], obj["parts"], obj["config"].encode(),
                   tuple(Descriptor.from_json(d) for d in obj["layers"]), obj.get("chain_id"),
                   obj.get("extra") or {})


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "buildcache"
        self._records = self.dir / "records"
        self._children = self.dir / "children"

    def get(self, key: str) -> CacheRecord | None:
        """The record of ``key`` if it is whole and its blobs are still in the store."""
        record = self._load(key)
        if record is not None:
            try:   # the last use, for prune
                os.utime(self._records / f"{digest_hex(key)}.json")
            except OSError:
                pass
        return record

    def _load(self, key: str) -> CacheRecord | None:
        try:
            record = CacheRecord.from_json((self._records / f"{digest_hex(key)}.json").read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None   # damaged: a miss; the next put replaces it
        if record.key != key or not all(self.store.content.has(d.digest) for d in record.layers):
            return None
        return record

    def put(self, record: CacheRecord, *, snapshots: Iterable[str] = ()) -> None:
        """Keep ``record``; its layer blobs and ``snapshots`` become GC roots first.

        Neither the root nor the record is fsynced: a blob's bytes are fsynced before it gets
        its name (content commit), so after a power loss a blob is whole or missing, and a
        record whose blobs went missing, or were collected because its root was lost, is a
        miss in ``get`` (a snapshot that went is unpacked again from the blobs). The build's
        lease keeps everything until then."""
        hex_key = digest_hex(record.key)
        self.store.roots.put(ROOT_PREFIX + hex_key, Roots(
            blobs=frozenset(d.digest for d in record.layers), snapshots=frozenset(snapshots)),
            durable=False)
        _replace(self._records / f"{hex_key}.json", record.to_json())
        parent = record.parts.get("parent")
        if isinstance(parent, str) and parent.startswith("sha256:"):
            # One short line in append mode: concurrent builds do not tear each other's lines.
            line = (record.key + "\n").encode()
            path = self._children / digest_hex(parent)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:   # the first record of this store
                self._children.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def children(self, parent_key: str, limit: int = CHILDREN_READ) -> list[CacheRecord]:
        """The records made on top of ``parent_key``, most recent first: at most ``limit``,
        so that explaining a miss does not slow down as the cache grows (a step rebuilt
        after each edit gains a record each time). Reading them is no use: not touched."""
        try:
            keys = (self._children / digest_hex(parent_key)).read_text().split()
        except FileNotFoundError:
            return []
        found = []
        for key in dict.fromkeys(reversed(keys)):
            record = self._load(key)
            if record is not None:
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def load_file_hashes(self, name: str) -> dict[str, list[Any]]:
        """Remembered file hashes of one build context (see build/context.py)."""
        try:
            data = json.loads((self.dir / "files" / f"{name}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_file_hashes(self, name: str, hashes: Mapping[str, list[Any]]) -> None:
        _replace(self.dir / "files" / f"{name}.json",
                 json.dumps(hashes, separators=(",", ":")).encode())


    # ------------------------------------------------------------------ export, import

    def export(self, records: Iterable[CacheRecord], dest: Path) -> int:
        """Write ``records`` and their layer blobs to ``dest`` as an OCI image layout (see the
        module doc), replacing the cache exported there before; the number of records."""
        artifact = CacheArtifact.of(records)
        blobs = dest / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        for desc in artifact.layers:
            target = blobs / digest_hex(desc.digest)
            if target.is_file() and target.stat().st_size == desc.size:
                continue   # content-addressed: already there (checked again on import)
            tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}")
            try:
                shutil.copyfile(self.store.content.path(desc.digest), tmp)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        _export_file(blobs / digest_hex(artifact.config_descriptor.digest), artifact.config)
        manifest = artifact.manifest()
        manifest_desc = _write_blob(blobs, manifest, OCI_MANIFEST)
        manifest_desc["annotations"] = {EXPORT_ANNOTATION: "v1"}
        _export_file(dest / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _export_file(dest / "index.json", json.dumps({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest_desc]},
            separators=(",", ":"), sort_keys=True).encode())
        return artifact.count

    def import_from(self, src: Path, lease: "Lease",
                    key_of: Callable[[Mapping[str, Any]], str] | None = None
                    ) -> tuple[int, list[str]]:
        """Import the records exported to ``src``; (records imported, warnings).

        Nothing in ``src`` is trusted: whatever does not check out is left out with a
        warning (a damaged or missing index, manifest or config: the whole cache)."""
        blobs = src / "blobs" / "sha256"
        try:
            index = json.loads((src / "index.json").read_bytes())
            found = [m for m in index["manifests"]
                     if (m.get("annotations") or {}).get(EXPORT_ANNOTATION) == "v1"]
            if not found:
                raise ValueError("index.json names no lamina build cache")
            manifest = read_cache_manifest(_read_checked(blobs, found[0]["digest"]))
            raw_records = read_cache_config(_read_checked(blobs, manifest["config"]["digest"]))
            listed = {d["digest"] for d in manifest["layers"]}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            return 0, [f"cache import from {src} ignored: {_reason(err)}"]

        def fetch(missing: list[Descriptor], warnings: list[str]) -> set[str]:
            return {d.digest for d in missing
                    if not self._import_blob(blobs, d.digest, warnings, src)}

        return self.import_records(raw_records, listed, fetch, str(src), lease, key_of)

    def import_records(self, raw_records: list[Any], listed: set[str],
                       fetch: Callable[[list[Descriptor], list[str]], set[str]],
                       origin: str, lease: "Lease",
                       key_of: Callable[[Mapping[str, Any]], str] | None = None
                       ) -> tuple[int, list[str]]:
        """Import exported records (the ``records`` of a cache config) from ``origin``, a
        local folder or a registry; (records imported, warnings).

        ``listed``: the layer digests the exported manifest offers; ``fetch(descs,
        warnings)`` brings the layer blobs the store lacks into it (each through a digest
        check), adds a warning per blob it could not, and returns their digests. A record
        that does not check out, or whose blobs could not be fetched, is left out."""
        from ..image.config import ImageConfig

        warnings: list[str] = []
        imported = 0
        todo: dict[str, CacheRecord] = {}
        for raw in raw_records:
            try:
                record = CacheRecord.from_json(json.dumps(raw).encode())
                if key_of is not None and key_of(record.parts) != record.key:
                    raise ValueError("its key is not the digest of its parts")
                parsed = ImageConfig.parse(record.config)
                if len(parsed.rootfs.diff_ids) != len(record.layers):
                    raise ValueError("its config and layers disagree")
                if not all(d.digest in listed for d in record.layers):
                    raise ValueError("it names a layer the manifest does not list")
            except Exception as err:   # anything odd in a record: leave it out
                warnings.append(f"cache import from {origin}: a record is ignored: "
                                f"{_reason(err)}")
                continue
            if self.get(record.key) is not None:
                imported += 1
            else:
                todo[record.key] = record
        needed = {d.digest: d for r in todo.values() for d in r.layers}
        lease.add(blobs=list(needed))   # kept from now until the records root them
        missing = [d for d in needed.values() if not self.store.content.has(d.digest)]
        failed = fetch(missing, warnings) if missing else set()
        for record in todo.values():
            if any(d.digest in failed for d in record.layers):
                continue
            self.put(record, snapshots=())
            imported += 1
        return imported, warnings

    def _import_blob(self, blobs: Path, digest: str, warnings: list[str], src: Path) -> bool:
        from .content import ContentError

        try:
            with open(blobs / digest_hex(digest), "rb") as stream:
                self.store.content.put_stream(stream, digest)
        except FileNotFoundError:
            warnings.append(f"cache import from {src}: blob {digest} is missing: the steps "
                            "that need it are not imported")
            return False
        except (ContentError, OSError, ValueError) as err:
            warnings.append(f"cache import from {src}: blob {digest} is damaged "
                            f"({_reason(err)}): the steps that need it are not imported")
            return False
        return True

    # ------------------------------------------------------------------ prune, usage

    def records(self) -> list[tuple[CacheRecord, float]]:
        """Every readable record with its last use (a time stamp), oldest first."""
        found = []
        try:
            entries = list(os.scandir(self._records))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            try:
                found.append((CacheRecord.from_json(Path(entry.path).read_bytes()),
                              entry.stat().st_mtime))
            except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue
        return sorted(found, key=lambda item: item[1])

    def own_size(self, record: CacheRecord) -> int:
        """The size of the layer the record's step made (0 for a metadata step)."""
        try:
            history = json.loads(record.config).get("history") or []
        except ValueError:
            return 0
        if not record.layers or not history or history[-1].get("empty_layer"):
            return 0
        return record.layers[-1].size

    def mounts(self) -> list[tuple[Path, int, float]]:
        """The ``RUN --mount=type=cache`` directories: (path, bytes, last change)."""
        try:
            entries = [Path(e.path) for e in os.scandir(self.dir / "mounts") if e.is_dir()]
        except FileNotFoundError:
            return []
        return [(path, _tree_size(path), path.stat().st_mtime) for path in entries]

    def usage(self) -> tuple[int, int]:
        """(records and cache mounts, bytes): the Build Cache row of ``system df``."""
        records = self.records()
        layers = {r.layers[-1].digest: self.own_size(r) for r, _ in records if r.layers}
        mounts = self.mounts()
        return len(records) + len(mounts), sum(layers.values()) + sum(m[1] for m in mounts)

    def prune(self, *, all: bool = False, until: float | None = None,
              keep_storage: int | None = None) -> tuple[list[tuple[str, int, float]], int]:
        """Remove records (and cache mounts) not used since ``until`` (a time stamp; None:
        any time), or every one with ``all``; with ``keep_storage``, only the oldest ones
        while the cache holds more than that many bytes. Returns the removed entries
        (id, size, last use) and the bytes the cache mounts freed; the layers are freed by
        the garbage collection the caller runs next."""
        candidates: list[tuple[str, int, float, Any]] = []
        for record, used in self.records():
            candidates.append((digest_hex(record.key), self.own_size(record), used, record))
        for path, size, used in self.mounts():
            candidates.append((f"mount:{path.name}", size, used, path))
        candidates.sort(key=lambda item: item[2])
        total = sum(item[1] for item in candidates)
        removed: list[tuple[str, int, float]] = []
        freed_mounts = 0
        for name, size, used, what in candidates:
            if not all and until is not None and used >= until:
                continue
            if keep_storage is not None and total <= keep_storage:
                break
            if isinstance(what, Path):
                shutil.rmtree(what, ignore_errors=True)
                freed_mounts += size
            else:
                self.store.roots.remove(ROOT_PREFIX + name)
                (self._records / f"{name}.json").unlink(missing_ok=True)
            total -= size
            removed.append((name, size, used))
        if all and keep_storage is None:
            shutil.rmtree(self._children, ignore_errors=True)
            shutil.rmtree(self.dir / "files", ignore_errors=True)
        return removed, freed_mounts


@dataclass(frozen=True)
class CacheArtifact:
    """Records in their exported form: the cache config blob (see the module doc) and the
    layer blobs the records name, each once, in the order first named."""
    config: bytes
    layers: tuple[Descriptor, ...]
    count: int                        # records

    @classmethod
    def of(cls, records: Iterable[CacheRecord]) -> "CacheArtifact":
        unique = list({r.key: r for r in records}.values())
        layers: dict[str, Descriptor] = {}
        for record in unique:
            for desc in record.layers:
                layers.setdefault(desc.digest, Descriptor(desc.media_type, desc.digest,
                                                          desc.size))
        config = json.dumps({"version": 1, "records": [json.loads(r.to_json()) for r in unique]},
                            separators=(",", ":"), sort_keys=True).encode()
        return cls(config, tuple(layers.values()), len(unique))

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor(EXPORT_MEDIA_TYPE, sha256_digest(self.config),
                          len(self.config))

    def manifest(self, layer_annotations: Mapping[str, Mapping[str, str]] | None = None
                 ) -> bytes:
        """The OCI image manifest of the cache: ``artifactType`` and config media type
        EXPORT_MEDIA_TYPE; ``layer_annotations`` by layer digest."""
        layers = []
        for desc in self.layers:
            obj = desc.to_json()
            if layer_annotations and desc.digest in layer_annotations:
                obj["annotations"] = dict(layer_annotations[desc.digest])
            layers.append(obj)
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": EXPORT_MEDIA_TYPE,
            "config": self.config_descriptor.to_json(), "layers": layers},
            separators=(",", ":"), sort_keys=True).encode()


def read_cache_manifest(raw: bytes) -> dict[str, Any]:
    """An exported cache manifest (already checked against its digest), as JSON; ValueError
    when it is not a lamina build cache."""
    manifest = json.loads(raw)
    if not isinstance(manifest, dict) or manifest.get("artifactType") != EXPORT_MEDIA_TYPE \
            or (manifest.get("config") or {}).get("mediaType") != EXPORT_MEDIA_TYPE:
        raise ValueError("the manifest is not a lamina build cache")
    if not isinstance(manifest.get("layers"), list):
        raise ValueError("the cache manifest has no layer list")
    return manifest


def read_cache_config(raw: bytes) -> list[Any]:
    """The raw records of a cache config blob (already checked against its digest)."""
    config = json.loads(raw)
    if not isinstance(config, dict) or config.get("version") != 1:
        version = config.get("version") if isinstance(config, dict) else None
        raise ValueError(f"cache version {version!r} is not known")
    if not isinstance(config.get("records"), list):
        raise ValueError("the cache config has no record list")
    return config["records"]


def _write_blob(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = sha256_digest(data)
    _export_file(blobs / digest_hex(digest), data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _read_checked(blobs: Path, digest: str) -> bytes:
    """A small blob of an exported cache, whose content must match its digest."""
    if not isinstance(digest, str) or not digest.startswith("sha256:") or \
            len(digest) != 71 or not all(c in "0123456789abcdef" for c in digest[7:]):
        raise ValueError(f"invalid digest {digest!r}")
    path = blobs / digest[7:]
    if path.stat().st_size > 64 << 20:
        raise ValueError(f"blob {digest} is too large for a cache manifest or config")
    data = path.read_bytes()
    if sha256_digest(data) != digest:
        raise ValueError(f"blob {digest} does not match its digest")
    return data


def _reason(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return f"{err.filename or 'a file'} is missing"
    if isinstance(err, KeyError):
        return f"{err} is missing"
    return str(getattr(err, "message", None) or err)


def _tree_size(path: Path) -> int:
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _export_file(path: Path, data: bytes) -> None:
    """Write a file of an exported cache whole: a build reading that folder meanwhile sees
    the old file or the new one, never none."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all. Not fsynced: losing a record costs a rebuild of
    its step, nothing more, and the blobs it names were made durable before. The old file
    goes first (see ``write_volatile``): a moment without the record is only a miss."""
    try:
        write_volatile(path, data)
    except FileNotFoundError:   # its folder is made at the first write
        path.parent.mkdir(parents=True, exist_ok=True)
        write_volatile(path, data)
