"""Published ports as values: Docker's ``-p``/``-P`` forms in, ``docker port`` lines out.

Pure: no sockets, no files. ``parse_publish("127.0.0.1:8282:8080")`` follows Docker's parser
(go-connections ``nat.ParsePortSpec``), its accepted forms and its error messages. A host port
of 0 means "any free port"; ``runtime.network.attach`` chooses it and returns resolved mappings.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lamina.errors import UsageError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


class PortSpecError(UsageError):
    """A ``-p`` value, exposed port or ``port`` argument that Docker would reject as well."""


@dataclass(frozen=True)
class PortMapping:
    """One container port published on the host.

    ``host_ip`` "" publishes on every IPv4 address of the host (shown as 0.0.0.0, like Docker).
    ``host_port`` 0 asks for a free port; with ``host_port_end`` set (``-p 8000-8010:80``) a free
    one of ``host_port..host_port_end`` is taken. A resolved mapping has a host port and no end.
    """

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def private(self) -> str:
        """The container side as Docker names it: ``8080/tcp``."""
        return f"{self.container_port}/{self.protocol}"

    @property
    def public(self) -> str:
        """The host side: ``0.0.0.0:8282``, ``[::1]:80``."""
        ip = self.host_ip or "0.0.0.0"
        host = f"[{ip}]" if ":" in ip else ip
        ports = str(self.host_port)
        if self.host_port_end:
            ports += f"-{self.host_port_end}"
        return f"{host}:{ports}"

    @property
    def resolved(self) -> bool:
        return self.host_port != 0 and self.host_port_end == 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PortMapping":
        return cls(**data)


def parse_publish(spec: str) -> list[PortMapping]:
    """Parse one ``-p``/``--publish`` value: ``[ip:][hostPort:]containerPort[/proto]``.

    Ports may be ranges (``8000-8001:9000-9001``: one mapping per port); an IPv6 host address
    goes in brackets (``[::1]:80:80``). Raises PortSpecError with Docker's message.
    """
    ip, host_ports, container_ports = _split_parts(spec)
    container_ports, protocol = _split_protocol(container_ports)
    if not container_ports:
        raise PortSpecError(f"No port specified: {spec}<empty>")
    ip = _parse_ip(ip)
    start, end = _container_range(container_ports)
    if not host_ports:
        return [PortMapping(port, protocol, ip) for port in range(start, end + 1)]
    host_range = _parse_range(host_ports)
    if host_range is None:
        raise PortSpecError(f"Invalid hostPort: {host_ports}")
    host_start, host_end = host_range
    if host_end - host_start != end - start:
        if start != end:
            raise PortSpecError("Invalid ranges specified for container and host Ports: "
                                f"{container_ports} and {host_ports}")
        # One container port and a host range: Docker picks a free host port within the range.
        return [PortMapping(start, protocol, ip, host_start, host_end)]
    return [PortMapping(start + i, protocol, ip, host_start + i) for i in range(end - start + 1)]


def publish_all(exposed_ports: Iterable[str]) -> list[PortMapping]:
    """``-P``: every exposed port (``"8080/tcp"``, the keys of the image's ExposedPorts) on a
    free host port of every address."""
    mappings = []
    for key in exposed_ports:
        ports, protocol = _split_protocol(key)
        start, end = _container_range(ports)
        mappings += [PortMapping(port, protocol) for port in range(start, end + 1)]
    return sorted(set(mappings), key=_order)


def port_lines(mappings: Iterable[PortMapping], private: str | None = None) -> list[str]:
    """What ``docker port`` prints: ``8080/tcp -> 0.0.0.0:8282`` for every mapping, or, for one
    ``private`` port (``8080`` or ``8080/udp``), its host addresses alone. An empty list means
    nothing is published there (Docker then says ``No public port '8080/tcp' published for X``).
    """
    ordered = sorted(mappings, key=_order)
    if private is None:
        return [f"{m.private} -> {m.public}" for m in ordered]
    ports, protocol = _split_protocol(private)
    wanted = f"{_container_range(ports)[0]}/{protocol}"
    return [m.public for m in ordered if m.private == wanted]


def _order(m: PortMapping) -> tuple[int, str, str, int]:
    return (m.container_port, m.protocol, m.host_ip, m.host_port)


def _split_parts(spec: str) -> tuple[str, str, str]:
    """Split ``ip:host:container``; only the last two colons count, so a bare or bracketed
    IPv6 address keeps its own."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_protocol(text: str) -> tuple[str, str]:
    ports, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if ports and protocol not in PROTOCOLS:
        raise PortSpecError(f"invalid proto: {protocol}")
    return ports, protocol


def _parse_ip(text: str) -> str:
    if not text:
        return ""
    raw = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = str(ipaddress.ip_address(raw))
    except ValueError:
        raise PortSpecError(f"Invalid ip address: {text}") from None
    return "" if ip == "0.0.0.0" else ip  # the same as no address: every IPv4 address


def _container_range(text: str) -> tuple[int, int]:
    parsed = _parse_range(text)
    if parsed is None or parsed[0] == 0:
        raise PortSpecError(f"Invalid containerPort: {text}")
    return parsed


def _parse_range(text: str) -> tuple[int, int] | None:
    """``8000`` or ``8000-8010`` as (start, end); None when not a valid port range."""
    match = _RANGE.fullmatch(text)
    if match is None:
        return None
    start = int(match[1])
    end = int(match[2]) if match[2] is not None else start
    if end > 65535 or end < start:
        return None
    return start, end
