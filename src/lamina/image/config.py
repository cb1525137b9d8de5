"""The image config: what a container of the image runs, its root file system and history.

Key names are Docker's (``Env``, ``WorkingDir``, ``empty_layer``; the OCI config uses the same).
Parsing keeps every key lamina does not model in ``extra`` (``Hostname``, ``StopTimeout``,
``container_config``, ...), so a config read and written again loses nothing lamina does not
understand. A JSON ``null`` reads as absent. ``to_json`` writes canonical bytes; an existing
image keeps its raw config bytes (see ``Image.config_bytes``), since digests are of the bytes
written.

Durations in ``Healthcheck`` are nanoseconds, as Docker writes them.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from ..errors import LaminaError
from .digest import DigestError, canonical_json, sha256_digest, validate_digest

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:     # datetime is imported where times are read or written: `run` needs neither
    from datetime import datetime


class ConfigError(LaminaError):
    """Image config bytes lamina cannot read."""


def _key(json_key: str, kind: str, default: Any = None, nested: type | None = None) -> Any:
    """A field stored under ``json_key``; ``kind`` says how JSON values convert (see _decode)."""
    return field(default=default, metadata={"key": json_key, "kind": kind, "nested": nested})


def _extra() -> Any:
    return field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Healthcheck:
    """The image config's ``Healthcheck``: the check a container of the image runs."""

    test: tuple[str, ...] | None = _key("Test", "strs")
    interval: int | None = _key("Interval", "int")
    timeout: int | None = _key("Timeout", "int")
    start_period: int | None = _key("StartPeriod", "int")
    start_interval: int | None = _key("StartInterval", "int")
    retries: int | None = _key("Retries", "int")
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` object: the defaults of a container made from the image."""

    user: str | None = _key("User", "str")
    env: tuple[str, ...] | None = _key("Env", "strs")          # "NAME=value" in order
    entrypoint: tuple[str, ...] | None = _key("Entrypoint", "strs")
    cmd: tuple[str, ...] | None = _key("Cmd", "strs")
    working_dir: str | None = _key("WorkingDir", "str")
    exposed_ports: tuple[str, ...] | None = _key("ExposedPorts", "set")  # "80/tcp"
    volumes: tuple[str, ...] | None = _key("Volumes", "set")
    labels: Mapping[str, str] | None = _key("Labels", "map")
    stop_signal: str | None = _key("StopSignal", "str")
    healthcheck: Healthcheck | None = _key("Healthcheck", "obj", nested=Healthcheck)
    on_build: tuple[str, ...] | None = _key("OnBuild", "strs")
    shell: tuple[str, ...] | None = _key("Shell", "strs")
    args_escaped: bool | None = _key("ArgsEscaped", "bool")
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True)
class RootFS:
    """The image config's ``rootfs``: the layers, by diff ID, that make the root file system."""

    type: str = _key("type", "str", default="layers")
    diff_ids: tuple[str, ...] = _key("diff_ids", "digests", default=())  # bottom layer first
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True)
class History:
    """One build step. ``empty_layer`` steps (ENV, CMD, ...) made no layer."""

    created: str | None = _key("created", "str")
    created_by: str | None = _key("created_by", "str")
    author: str | None = _key("author", "str")
    comment: str | None = _key("comment", "str")
    empty_layer: bool = _key("empty_layer", "flag", default=False)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True)
class ImageConfig:
    """An image's config blob: what it runs, on which platform, its layers and history.

    The digest of its bytes is the image ID; keys lamina does not model stay in ``extra``.
    """

    architecture: str | None = _key("architecture", "str")
    os: str | None = _key("os", "str")
    variant: str | None = _key("variant", "str")
    os_version: str | None = _key("os.version", "str")
    created: str | None = _key("created", "str")               # RFC 3339, see parse_timestamp
    author: str | None = _key("author", "str")
    config: ContainerConfig | None = _key("config", "obj", nested=ContainerConfig)
    rootfs: RootFS = _key("rootfs", "obj", default=RootFS(), nested=RootFS)
    history: tuple[History, ...] = _key("history", "objs", default=(), nested=History)
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def parse(cls, raw: bytes) -> "ImageConfig":
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:  # (too deep)
            raise ConfigError(f"image config {sha256_digest(raw)} is not valid JSON ({err})",
                              hint="the blob is damaged or is not an image config") from None
        try:
            return cls.from_dict(obj)
        except ConfigError as err:
            raise ConfigError(f"image config {sha256_digest(raw)}: {err.message}") from None

    @classmethod
    def from_dict(cls, obj: Any) -> "ImageConfig":
        return _decode(cls, obj, "")

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)

    def to_json(self) -> bytes:
        """Canonical bytes for a new config (sorted keys, compact)."""
        return canonical_json(self.to_dict())

    def layer_history(self) -> list[tuple[History, str | None]]:
        """Each history entry with the diff ID of the layer it made (None for empty layers).

        Without history, each layer gets an empty entry. More non-empty entries than layers is
        an error, as in Docker; layers beyond the history get empty entries.
        """
        diff_ids = list(self.rootfs.diff_ids)
        paired: list[tuple[History, str | None]] = []
        for entry in self.history:
            if entry.empty_layer:
                paired.append((entry, None))
            elif diff_ids:
                paired.append((entry, diff_ids.pop(0)))
            else:
                raise ConfigError("the history has more non-empty entries than the image has "
                                  "layers", hint="the image config is inconsistent; rebuild it")
        paired.extend((History(), d) for d in diff_ids)
        return paired


def _decode(cls: type, obj: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a JSON object; unknown keys go to ``extra``."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where or 'the config'} must be a JSON object")
    values: dict[str, Any] = {}
    known: set[str] = set()
    for f in fields(cls):
        if f.name == "extra":
            continue
        key, kind, nested = f.metadata["key"], f.metadata["kind"], f.metadata["nested"]
        known.add(key)
        if obj.get(key) is not None:
            values[f.name] = _decode_value(obj[key], kind, nested, f"{where}{key}")
    values["extra"] = MappingProxyType({k: v for k, v in obj.items() if k not in known})
    return cls(**values)


def _decode_value(value: Any, kind: str, nested: type | None, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where} must be {expected}, not {json.dumps(value)[:80]}")

    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind in ("bool", "flag"):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if kind in ("strs", "digests"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        if kind == "digests":
            for item in value:
                try:
                    validate_digest(item)
                except DigestError as err:
                    raise ConfigError(f"{where}: {err.message}") from None
        return tuple(value)
    if kind == "map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad("an object of strings")
        return MappingProxyType(dict(value))
    if kind == "set":  # Docker's {"80/tcp": {}}: only the keys carry meaning
        if not isinstance(value, dict):
            raise bad("an object")
        return tuple(sorted(value))
    if kind == "obj":
        return _decode(nested, value, f"{where}.")
    if kind == "objs":
        if not isinstance(value, list):
            raise bad("a list")
        return tuple(_decode(nested, item, f"{where}[{i}].") for i, item in enumerate(value))
    raise AssertionError(f"unknown field kind {kind}")


def _encode(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(value.extra)
    for f in fields(value):
        if f.name == "extra":
            continue
        item, kind, key = getattr(value, f.name), f.metadata["kind"], f.metadata["key"]
        if item is None or (kind in ("flag", "objs") and not item):
            continue  # absent (Docker omits a false flag and an empty history)
        if kind in ("strs", "digests"):
            out[key] = list(item)
        elif kind == "map":
            out[key] = dict(item)
        elif kind == "set":
            out[key] = {name: {} for name in item}
        elif kind == "obj":
            out[key] = _encode(item)
        elif kind == "objs":
            out[key] = [_encode(entry) for entry in item]
        else:
            out[key] = item
    return out


def parse_timestamp(text: str) -> datetime:
    """Read an RFC 3339 time as Go writes it (``Z``, up to nanoseconds), timezone-aware."""
    from datetime import datetime, timezone
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid timestamp {text!r}",
                          hint="use RFC 3339, e.g. 2024-01-31T12:00:00Z") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def format_unix_time(ns: int) -> str:
    """A Unix time in nanoseconds as RFC 3339 in UTC with ``Z``, to the microsecond, without a
    fraction when it is zero (as Go's RFC3339Nano). No datetime: its import would cost a build
    at its first new step."""
    seconds, rest = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if rest // 1000:
        text += f".{rest // 1000:06d}".rstrip("0")
    return text + "Z"
