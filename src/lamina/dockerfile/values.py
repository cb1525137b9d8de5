"""The values inside instruction flags and arguments, parsed as BuildKit parses them:
``RUN --mount`` and ``--device`` specs, Go durations (``HEALTHCHECK --interval``), EXPOSE ports.

Each parser raises :class:`~lamina.errors.DockerfileError` without a position; the instruction
that holds the value adds it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ..errors import DockerfileError
from .dump import go_quote

Expander = Callable[[str], str]

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount``. Sizes are bytes; ``mode`` is the octal value read as an int.

    ``read_only`` defaults by type: cache and tmpfs mounts are writable, the others read-only.
    ``id`` is the cache id for cache mounts and the secret/ssh id for those types.
    ``spec`` is the flag value as written, kept so the build can re-parse it after expansion.
    """

    type: str = "bind"
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    read_only: bool = True
    id: str | None = None
    sharing: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    required: bool = False
    env: str | None = None
    spec: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Device:
    """One ``RUN --device``: a CDI device name, and whether the build must fail without it."""

    name: str
    required: bool = False


@dataclass(frozen=True)
class PortSpec:
    """A container port or port range with its protocol, from an EXPOSE word."""

    start: int
    end: int
    protocol: str = "tcp"

    def ports(self) -> list[str]:
        """The image-config keys this spec exposes, one per port: ``["80/tcp"]``."""
        return [f"{port}/{self.protocol}" for port in range(self.start, self.end + 1)]

    def __str__(self) -> str:
        ports = str(self.start) if self.start == self.end else f"{self.start}-{self.end}"
        return f"{ports}/{self.protocol}"


# What makes a CSV field more than the text between commas: a quote or a line break.
_CSV_SPECIAL = re.compile('["\r\n]')


def _csv_fields(spec: str, what: str) -> list[str]:
    """The comma-separated fields of a --mount/--device value (CSV quoting allowed)."""
    if spec and not _CSV_SPECIAL.search(spec):
        return spec.split(",")   # what the csv reader gives, several times faster
    import csv   # RUN --mount and --device only: start-up time

    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as err:
        raise DockerfileError(f"failed to parse csv {what}: {err}") from None
    if not rows or not rows[0]:
        raise DockerfileError(f"failed to parse csv {what}: empty value")
    return rows[0]


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(key: str, value: str) -> bool:
    """A boolean option value, spelled any way Go's strconv.ParseBool accepts."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise DockerfileError(f"invalid value for {key}: {value}")


def _go_uint32(text: str, base: int) -> int | None:
    digits = "01234567" if base == 8 else "0123456789"
    if not text or any(c not in digits for c in text) or int(text, base) >= 2**32:
        return None
    return int(text, base)


_MOUNT_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly",
               "ro", "readwrite", "rw", "required", "size", "id", "sharing", "mode", "uid",
               "gid", "env")
# Keys whose values are plain text: kept as written at parse time even when they hold variables.
_MOUNT_TEXT_KEYS = ("from", "source", "src", "target", "dst", "destination", "id", "env")


def parse_mount(spec: str, expand: Expander | None = None) -> Mount:
    """Parse one ``--mount`` value, e.g. ``type=cache,target=/root/.cache,sharing=locked``.

    Without ``expand`` (at parse time) values are taken as written. A value holding a
    variable, quote or backslash cannot be checked yet: a text value (``target=$HOME/x``) is
    kept as written, a typed one (``uid=$UID``) is skipped, and the cross-field checks are
    left out. Such a mount is provisional; the build calls this again with ``expand``.
    ``from`` may never hold a variable: it names a stage, and the stage graph is fixed before
    anything is expanded.
    """
    m: dict[str, object] = {"type": "bind", "spec": spec}
    read_only: bool | None = None     # None: the type's default
    deferred = False
    for item in _csv_fields(spec, "mounts"):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                read_only = True
            elif key in ("readwrite", "rw"):
                read_only = False
            elif key == "required":
                m["required"] = True
            else:
                raise DockerfileError(f"invalid field '{item}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        elif key == "from" and "$" in value[:-1]:
            raise DockerfileError("'from' doesn't support variable expansion, "
                                  "define alias stage instead",
                                  hint="add a stage: FROM image AS name, and mount from=name")
        elif any(c in value for c in "$'\"\\"):
            # Expansion may change it (even empty it): no cross-field checks before the build.
            deferred = True
            if key not in _MOUNT_TEXT_KEYS:
                continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise DockerfileError(f"unsupported mount type {go_quote(value)}",
                                      hint=did_you_mean(value.lower(), MOUNT_TYPES))
            m["type"] = value.lower()
        elif key == "from":
            m["from_"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro"):
            read_only = _go_bool(key, value)
        elif key in ("readwrite", "rw"):
            read_only = not _go_bool(key, value)
        elif key == "required":
            m["required"] = _go_bool(key, value)
        elif key == "size":
            m["size"] = _ram_in_bytes(key, value)
        elif key == "id":
            m["id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES:
                raise DockerfileError(f"unsupported sharing value {go_quote(value)}",
                                      hint="use one of: " + ", ".join(SHARING_MODES))
            m["sharing"] = value.lower()
        elif key in ("mode", "uid", "gid"):
            number = _go_uint32(value, 8 if key == "mode" else 10)
            if number is None:
                raise DockerfileError(f"invalid value {value} for {key}")
            m[key] = number
        elif key == "env":
            m["env"] = value
        else:
            raise DockerfileError(f"unexpected key '{key}' in '{item}'",
                                  hint=did_you_mean(key, _MOUNT_KEYS))
    kind = m["type"]
    if read_only is None:
        read_only = kind not in ("cache", "tmpfs")
    if kind == "cache" and "sharing" not in m:
        m["sharing"] = "shared"
    mount = Mount(read_only=read_only, **m)  # type: ignore[arg-type]
    if not deferred:
        _check_mount(mount, given=m.keys())
    return mount


def _check_mount(m: Mount, given: Collection[str]) -> None:
    """The checks that need the whole mount (the type may come after the option).
    ``given``: the Mount fields the spec set."""
    if "required" in given and m.type not in ("secret", "ssh"):
        raise DockerfileError(f"unexpected key 'required' for mount type '{m.type}'")
    if "size" in given and m.type != "tmpfs":
        raise DockerfileError(f"unexpected key 'size' for mount type '{m.type}'")
    if m.type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if getattr(m, key) is not None:
                raise DockerfileError(f"{key} not allowed for {go_quote(m.type)} type mounts")
    if m.sharing is not None and m.type != "cache":
        if m.type == "secret":
            raise DockerfileError("secret mount should not define sharing")
        raise DockerfileError(f"invalid cache sharing set for {m.type} mount")
    if m.type == "secret":
        if m.from_:
            raise DockerfileError("secret mount should not have a from")
        if not (m.source or m.target or m.id):
            raise DockerfileError("invalid secret mount. one of source, target required",
                                  hint="name the secret: --mount=type=secret,id=NAME")
        if m.source and m.id:
            raise DockerfileError("both source and id can't be set")


# Patterns of rare instructions are compiled on first use (re keeps them): start-up time.
_RAM_SIZE = r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?"


def _ram_in_bytes(key: str, text: str) -> int:
    """A size like ``512m``, ``1g``, ``100`` (bytes): binary multiples, as Docker reads them."""
    match = re.fullmatch(_RAM_SIZE, text, re.IGNORECASE)
    if match is None:
        raise DockerfileError(f"invalid value for {key}: {text}",
                              hint="give a size like 64m or 1g")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * 1024 ** ("kmgtp".index(unit) + 1 if unit else 0))


def parse_device(spec: str) -> Device:
    """Parse one ``--device`` value: ``vendor.com/class=name[,required[=bool]]``.

    The first bare field names the device, and so does a first ``key=value`` field with an
    unknown key, since CDI names themselves contain ``=``.
    """
    name = ""
    required = False
    for item in _csv_fields(spec, "devices"):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value and key == "required":
            required = True
        elif not has_value or key not in ("name", "required"):
            if name:
                if not has_value:
                    raise DockerfileError(f"invalid field '{item}' must be a key=value pair")
                raise DockerfileError(f"unexpected key '{key}' in '{item}'",
                                      hint=did_you_mean(key, ("name", "required")))
            name = item
        elif key == "name":
            if name:
                raise DockerfileError(f"device name already set to {name}")
            name = value
        else:
            required = _go_bool(key, value)
    return Device(name, required)


def did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    import difflib   # only for a suggestion: start-up time

    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]}?" if close else None


# --------------------------------------------------------------------------- durations, ports

_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"


def parse_duration(text: str, what: str = "duration") -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``, ``250ms``, ``0``) in nanoseconds."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    total, pos = 0, 0
    while pos < len(body):
        match = re.compile(_DURATION_PART).match(body, pos)
        # Each part needs digits before or after the point ("." alone is not a number).
        if match is None or not (match.group(1) or match.group(2)):
            break
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale + int(fraction or "0") * scale // 10 ** len(fraction)
        pos = match.end()
    if not body or pos < len(body) or total >= 2**63:
        raise DockerfileError(f"invalid duration {go_quote(text)} for {what}",
                              hint="write a number with a unit (ns, us, ms, s, m, h), "
                                   "like 30s or 1m30s")
    return sign * total


_PORT_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
PROTOCOLS = ("tcp", "udp", "sctp")


def parse_port_spec(text: str) -> PortSpec:
    """Parse one EXPOSE word: ``80``, ``53/udp``, ``8000-8010/tcp``.

    As in Docker, an ``[ip:][host-port:]`` prefix is accepted and ignored (EXPOSE only
    declares container ports); the protocol is case-insensitive and defaults to tcp.
    """
    container = text.rsplit(":", 1)[-1]
    ports, _, protocol = container.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in PROTOCOLS:
        raise DockerfileError(f"invalid protocol {go_quote(protocol)} in port {go_quote(text)}",
                              hint="use tcp, udp or sctp, like 53/udp")
    match = _PORT_RANGE.fullmatch(ports)
    if match is None:
        raise DockerfileError(f"invalid port {go_quote(text)}",
                              hint="write a port or range with an optional protocol: "
                                   "80, 53/udp, 8000-8010/tcp")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if max(start, end) > 65535:
        raise DockerfileError(f"invalid port {go_quote(text)}: ports go up to 65535")
    if end < start:
        raise DockerfileError(f"invalid port range {go_quote(text)}: "
                              "the end is lower than the start")
    return PortSpec(start, end, protocol)
