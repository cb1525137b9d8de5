"""The options of `lamina run`, as one immutable value.

Every field means what the `docker run` flag of the same name means. Sequences are stored as
tuples so that a RunOptions never changes after it is made.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

from .errors import ContainerError

NETWORK_MODES = ("bridge", "host", "none")


@dataclass(frozen=True)
class RunOptions:
    """The options of ``lamina run`` (and ``create``), one field per flag."""

    command: Sequence[str] = ()          # COMMAND [ARG...]: replaces the image's CMD
    # --entrypoint: None keeps the image's; a str is one word, as Docker's CLI passes it; a list
    # is taken as is; "" (or [] / [""]) clears it. Any override also drops the image's CMD.
    entrypoint: str | Sequence[str] | None = None
    env: Sequence[str] = ()              # -e K=V, over the image's Env; a bare "K" unsets K
    workdir: str | None = None           # -w, absolute; created when missing, as Docker does
    user: str | None = None              # -u user[:group], names or numeric ids
    hostname: str | None = None          # -h; default: the container id's first 12 hex digits
    tty: bool = False                    # -t
    interactive: bool = False            # -i
    name: str | None = None              # --name (recorded in the bundle's annotations)
    remove: bool = False                 # --rm: delete the container's directory after it exits
    binds: Sequence[str] = ()            # -v /host:/ctr[:ro|rw][,propagation]
    tmpfs: Sequence[str] = ()            # --tmpfs /ctr[:mount options]
    read_only: bool = False              # --read-only root file system
    network_mode: str = "bridge"         # --network bridge | host | none
    dns: Sequence[str] = ()              # --dns IP: the name servers, instead of the host's
    dns_search: Sequence[str] = ()       # --dns-search DOMAIN ("." alone: no search domain)
    dns_options: Sequence[str] = ()      # --dns-option OPTION (ndots:2, ...)
    privileged: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    security_opt: Sequence[str] = ()     # no-new-privileges[:true|false], seccomp=unconfined
    memory: int | None = None            # --memory in bytes (parse_bytes("32m"))
    cpus: float | None = None            # --cpus
    pids_limit: int | None = None        # --pids-limit; 0 or less means unlimited
    ulimits: Sequence[str] = ()          # --ulimit name=soft[:hard]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.network_mode not in NETWORK_MODES:
            raise ContainerError(f"network {self.network_mode!r} not found",
                                 hint=f"use one of: {', '.join(NETWORK_MODES)}")
        for ip in self.dns:
            import ipaddress    # here: 1 ms a run without --dns need not pay
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ContainerError(f"{ip} is not an ip address",
                                     hint="--dns takes IP addresses") from None
        if self.name is not None and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", self.name):
            raise ContainerError(f"invalid container name {self.name!r}, "
                                 "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if self.memory is not None and self.memory < 6 * 1024 * 1024:
            raise ContainerError("minimum memory limit allowed is 6MB")
        if self.cpus is not None and self.cpus <= 0:
            raise ContainerError(f"invalid --cpus value {self.cpus}: must be positive")


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int:
    """Docker's size syntax: "32m", "1.5g", "512k", "1024" (binary units, case-insensitive)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", text.lower())
    if not m:
        raise ContainerError(f"invalid size: {text!r}", hint="use a number with b, k, m, g or t")
    return int(float(m.group(1)) * _UNITS[m.group(2)])

