"""The OCI image-spec rules for manifests, indexes and configs, as a small validator of our own.

``validate(raw, kind)`` returns every rule a document breaks, each with the JSON path where it
breaks it (``layers[1].digest``); an empty list means the document follows the spec. The rules
are the spec's REQUIRED fields, types and formats (descriptor, manifest, index, config), plus
Docker's schema 2 manifest and manifest list, which share the shape. Unknown fields are
allowed, as the spec requires of readers.

Pure: bytes in, a list out. ``lamina image verify`` and ``lamina system check`` use it.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

from . import mediatypes as mt

Kind = Literal["manifest", "index", "config"]

# RFC 6838 type/subtype (the spec's descriptor schema uses this pattern).
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/"
                         r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
# The spec's digest grammar: algorithm ":" encoded.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_PORT = re.compile(r"\d{1,5}(?:/(?:tcp|udp|sctp))?")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class SchemaProblem:
    """One way a manifest, index or config breaks its schema, at a path in the document."""

    path: str       # where in the document ("config.size"; "" for the whole document)
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def validate(raw: bytes, kind: Kind, media_type: str | None = None) -> list[SchemaProblem]:
    """The rules ``raw`` (a manifest, an index or a config) breaks. ``media_type`` is what the
    descriptor pointing at it says, which an inline ``mediaType`` must match."""
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:  # (too deep)
        return [SchemaProblem("", f"not valid JSON ({err})")]
    if not isinstance(obj, dict):
        return [SchemaProblem("", "must be a JSON object")]
    checker = _Checker()
    {"manifest": checker.manifest, "index": checker.index, "config": checker.config}[kind](
        obj, media_type)
    return checker.problems


class _Checker:
    def __init__(self) -> None:
        self.problems: list[SchemaProblem] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(SchemaProblem(path, message))

    # -- shared pieces

    def field(self, obj: dict, key: str, path: str, check: Callable[[Any, str], None], *,
              required: bool = False) -> None:
        where = _at(path, key)
        if key not in obj:
            if required:
                self.bad(where, "is required")
            return
        check(obj[key], where)

    def string(self, value: Any, path: str) -> bool:
        if not isinstance(value, str):
            self.bad(path, f"must be a string, not {_kind(value)}")
            return False
        return True

    def strings(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self.bad(path, f"must be an array of strings, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            self.string(item, f"{path}[{i}]")

    def string_map(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.bad(path, f"must be an object of strings, not {_kind(value)}")
            return
        for key, item in value.items():
            self.string(item, _at(path, key))

    def media_type(self, value: Any, path: str) -> None:
        if self.string(value, path) and not _MEDIA_TYPE.fullmatch(value):
            self.bad(path, f"{value!r} is not a media type (type/subtype, RFC 6838)")

    def digest(self, value: Any, path: str) -> None:
        if not self.string(value, path):
            return
        if not _DIGEST.fullmatch(value):
            self.bad(path, f"{value!r} is not a digest (algorithm:encoded)")
            return
        algorithm, encoded = value.split(":", 1)
        pattern = _ENCODED.get(algorithm)
        if pattern is not None and not pattern.fullmatch(encoded):
            self.bad(path, f"{value!r}: a {algorithm} digest is "
                           f"{64 if algorithm == 'sha256' else 128} lowercase hex characters")

    def size(self, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.bad(path, f"must be an integer, not {_kind(value)}")
        elif not 0 <= value <= _INT64_MAX:
            self.bad(path, f"{value} is out of range (0 to 2^63-1)")

    def schema_version(self, obj: dict) -> None:
        if "schemaVersion" not in obj:
            self.bad("schemaVersion", "is required")
        elif obj["schemaVersion"] != 2 or isinstance(obj["schemaVersion"], bool):
            self.bad("schemaVersion", f"must be 2, not {obj['schemaVersion']!r}")

    def own_media_type(self, obj: dict, allowed: frozenset[str], declared: str | None,
                       required: bool) -> None:
        inline = obj.get("mediaType")
        if inline is None:
            if required:
                self.bad("mediaType", "is required in a Docker manifest")
            return
        if not isinstance(inline, str):
            self.bad("mediaType", f"must be a string, not {_kind(inline)}")
        elif inline not in allowed:
            self.bad("mediaType", f"{inline!r} is not one of {', '.join(sorted(allowed))}")
        elif declared is not None and mt.strip_parameters(declared) != inline:
            self.bad("mediaType", f"{inline!r} differs from the descriptor's {declared!r}")

    def descriptor(self, value: Any, path: str, *, platform: bool = False) -> None:
        if not isinstance(value, dict):
            self.bad(path, f"a descriptor must be an object, not {_kind(value)}")
            return
        self.field(value, "mediaType", path, self.media_type, required=True)
        self.field(value, "digest", path, self.digest, required=True)
        self.field(value, "size", path, self.size, required=True)
        self.field(value, "urls", path, self.strings)
        self.field(value, "annotations", path, self.string_map)
        self.field(value, "artifactType", path, self.media_type)
        self.field(value, "data", path, lambda v, p: self.data(v, p, value.get("size")))
        if platform:
            self.field(value, "platform", path, self.platform)

    def data(self, value: Any, path: str, size: Any) -> None:
        if not self.string(value, path):
            return
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.bad(path, "is not base64")
            return
        if isinstance(size, int) and len(decoded) != size:
            self.bad(path, f"holds {len(decoded)} bytes, but size says {size}")

    def platform(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.bad(path, f"must be an object, not {_kind(value)}")
            return
        for key in ("architecture", "os"):
            self.field(value, key, path, self.non_empty, required=True)
        self.field(value, "os.version", path, self.string)
        self.field(value, "os.features", path, self.strings)
        self.field(value, "variant", path, self.string)
        self.field(value, "features", path, self.strings)

    def non_empty(self, value: Any, path: str) -> None:
        if self.string(value, path) and not value:
            self.bad(path, "must not be empty")

    def descriptors(self, value: Any, path: str, *, platform: bool = False) -> None:
        if not isinstance(value, list):
            self.bad(path, f"must be an array of descriptors, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            self.descriptor(item, f"{path}[{i}]", platform=platform)

    # -- the documents

    def manifest(self, obj: dict, declared: str | None) -> None:
        self.schema_version(obj)
        docker = obj.get("mediaType") == mt.DOCKER_MANIFEST or declared == mt.DOCKER_MANIFEST
        self.own_media_type(obj, frozenset(mt.IMAGE_MANIFESTS), declared, required=docker)
        self.field(obj, "config", "", self.descriptor, required=True)
        self.field(obj, "layers", "", self.descriptors, required=True)
        self.field(obj, "subject", "", self.descriptor)
        self.field(obj, "artifactType", "", self.media_type)
        self.field(obj, "annotations", "", self.string_map)
        config = obj.get("config")
        if isinstance(config, dict) and config.get("mediaType") in mt.CONFIGS \
                and isinstance(obj.get("layers"), list):
            # An image (not an artifact): its layers must be layers lamina can unpack.
            for i, layer in enumerate(obj["layers"]):
                kind = layer.get("mediaType") if isinstance(layer, dict) else None
                if isinstance(kind, str) and _MEDIA_TYPE.fullmatch(kind) \
                        and not mt.is_layer(kind):
                    self.bad(f"layers[{i}].mediaType", f"{kind!r} is not a layer media type")

    def index(self, obj: dict, declared: str | None) -> None:
        self.schema_version(obj)
        docker = obj.get("mediaType") == mt.DOCKER_MANIFEST_LIST \
            or declared == mt.DOCKER_MANIFEST_LIST
        self.own_media_type(obj, frozenset(mt.INDEXES), declared, required=docker)
        self.field(obj, "manifests", "", lambda v, p: self.descriptors(v, p, platform=True),
                   required=True)
        self.field(obj, "subject", "", self.descriptor)
        self.field(obj, "artifactType", "", self.media_type)
        self.field(obj, "annotations", "", self.string_map)

    def config(self, obj: dict, declared: str | None = None) -> None:
        for key in ("architecture", "os"):
            self.field(obj, key, "", self.non_empty, required=True)
        self.field(obj, "created", "", self.timestamp)
        for key in ("author", "variant", "os.version"):
            self.field(obj, key, "", self.string)
        self.field(obj, "os.features", "", self.strings)
        self.field(obj, "config", "", self.run_config)
        self.field(obj, "rootfs", "", self.rootfs, required=True)
        self.field(obj, "history", "", self.history)

    def timestamp(self, value: Any, path: str) -> None:
        if self.string(value, path) and not _RFC3339.fullmatch(value):
            self.bad(path, f"{value!r} is not an RFC 3339 date-time")

    def run_config(self, value: Any, path: str) -> None:
        if value is None:
            return  # Docker writes null for an image without a config
        if not isinstance(value, dict):
            self.bad(path, f"must be an object, not {_kind(value)}")
            return
        for key in ("User", "WorkingDir", "StopSignal"):
            self.field(value, key, path, self.string)
        for key in ("Env", "Entrypoint", "Cmd"):
            self.field(value, key, path, self.null_or(self.strings))
        self.field(value, "Labels", path, self.null_or(self.string_map))
        self.field(value, "ExposedPorts", path, self.null_or(self.ports))
        self.field(value, "Volumes", path, self.null_or(self.object_set))
        self.field(value, "ArgsEscaped", path, self.boolean)

    def null_or(self, check: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
        return lambda value, path: None if value is None else check(value, path)

    def ports(self, value: Any, path: str) -> None:
        self.object_set(value, path)
        if isinstance(value, dict):
            for key in value:
                if not _PORT.fullmatch(key):
                    self.bad(_at(path, key), "is not port/protocol (e.g. 8080/tcp)")

    def object_set(self, value: Any, path: str) -> None:
        """Go's map[string]struct{}: keys matter, every value is an object ({})."""
        if not isinstance(value, dict):
            self.bad(path, f"must be an object, not {_kind(value)}")
            return
        for key, item in value.items():
            if not isinstance(item, dict):
                self.bad(_at(path, key), f"must be an object ({{}}), not {_kind(item)}")

    def boolean(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self.bad(path, f"must be true or false, not {_kind(value)}")

    def rootfs(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.bad(path, f"must be an object, not {_kind(value)}")
            return
        if value.get("type") != "layers":
            self.bad(_at(path, "type"), f"must be \"layers\", not {value.get('type')!r}"
                     if "type" in value else "is required")
        if "diff_ids" not in value:
            self.bad(_at(path, "diff_ids"), "is required")
        elif not isinstance(value["diff_ids"], list):
            self.bad(_at(path, "diff_ids"), f"must be an array of digests, not "
                                            f"{_kind(value['diff_ids'])}")
        else:
            for i, item in enumerate(value["diff_ids"]):
                self.digest(item, f"{_at(path, 'diff_ids')}[{i}]")

    def history(self, value: Any, path: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.bad(path, f"must be an array, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(item, dict):
                self.bad(where, f"must be an object, not {_kind(item)}")
                continue
            self.field(item, "created", where, self.timestamp)
            for key in ("author", "created_by", "comment"):
                self.field(item, key, where, self.string)
            self.field(item, "empty_layer", where, self.boolean)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
