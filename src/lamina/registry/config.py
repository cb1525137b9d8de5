"""lamina's registry settings, from ``<state root>/config.json`` (beside the store it serves).

    {
      "insecure-registries": ["myregistry:5000", "10.0.0.0/8"],
      "registry-mirrors": ["https://mirror.example.com", "http://127.0.0.1:5001"],
      "certs-directory": "/etc/docker/certs.d"
    }

The keys mean what they mean in Docker's ``daemon.json``. A missing file or key is the
default: no insecure registry but loopback, no mirror, ``/etc/docker/certs.d``. An insecure
registry is spoken to over TLS without verification, or over plain HTTP when it has no TLS
(as Docker does); loopback hosts (``localhost``, 127.0.0.0/8, ::1) are insecure too, unless
``certs.d`` holds a CA for them: a CA put there for a host means "verify this one".
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import RegistryError

CONFIG_FILE = "config.json"
DEFAULT_CERTS_DIRECTORY = Path("/etc/docker/certs.d")
_KEYS = {"insecure-registries", "registry-mirrors", "certs-directory"}


class RegistryConfigError(RegistryError):
    """A lamina config.json that cannot be used."""


@dataclass(frozen=True)
class RegistryConfig:
    """The registry settings of the state root's ``config.json``: insecure ones, mirrors, certs."""

    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    certs_directory: Path = DEFAULT_CERTS_DIRECTORY

    @classmethod
    def load(cls, root: Path) -> "RegistryConfig":
        """Read ``<root>/config.json``; the defaults when there is none."""
        path = Path(root) / CONFIG_FILE
        try:
            obj = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RegistryConfigError(f"{path}: cannot read it: {err}",
                                      hint="fix or remove the file") from None
        if not isinstance(obj, dict):
            raise RegistryConfigError(f"{path}: must be a JSON object")
        unknown = sorted(set(obj) - _KEYS)
        if unknown:
            raise RegistryConfigError(f"{path}: unknown key {unknown[0]!r}",
                                      hint=f"the keys are {', '.join(sorted(_KEYS))}")
        insecure = _strings(obj, "insecure-registries", path)
        mirrors = _strings(obj, "registry-mirrors", path)
        for mirror in mirrors:
            _check_mirror(mirror, path)
        certs = obj.get("certs-directory", str(DEFAULT_CERTS_DIRECTORY))
        if not isinstance(certs, str) or not certs:
            raise RegistryConfigError(f"{path}: certs-directory must be a folder name")
        return cls(insecure, mirrors, Path(certs))

    def is_insecure(self, host: str) -> bool:
        """Whether ``host`` (``name[:port]``) may be spoken to without verified TLS."""
        name = split_host(host)[0]
        address = _address(name)
        for entry in self.insecure_registries:
            if entry in (host, name):
                return True
            network = _network(entry)
            if network is not None and address is not None and address in network:
                return True
        return _is_loopback(name, address) and not self.has_ca(host)

    def host_certs(self, host: str) -> Path:
        """``<certs.d>/<host>/``: ``*.crt`` CAs, ``*.cert``/``*.key`` client pairs."""
        return self.certs_directory / host

    def has_ca(self, host: str) -> bool:
        directory = self.host_certs(host)
        return directory.is_dir() and any(directory.glob("*.crt"))


def _strings(obj: dict, key: str, path: Path) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistryConfigError(f"{path}: {key} must be a list of strings")
    return tuple(value)


def _check_mirror(mirror: str, path: Path) -> None:
    parts = urlsplit(mirror if "://" in mirror else f"https://{mirror}")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise RegistryConfigError(f"{path}: registry mirror {mirror!r} is not a URL like "
                                  "https://host[:port]", hint="a mirror URL has no path")


def split_host(host: str) -> tuple[str, int | None]:
    """``name:port`` -> (name, port); ``[::1]:5000`` -> (``::1``, 5000); no port: None."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() else None


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "/" not in entry:
        return None
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _is_loopback(name: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) \
        -> bool:
    return name == "localhost" or (address is not None and address.is_loopback)
