"""Host-wide clean-up of what the CNI plugins leave behind once no container uses a network:
the bridge, the plugins' shared iptables chains, and empty nf_tables tables (PLATFORM.md §3,
"DEL leaves global state behind"). Rules are removed by exact spec, never by flushing a table:
Docker's and netavark's rules live in the same tables.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina.runtime.network import (DEFAULT_NETWORK, IPAM_DIR, NetworkConfig, NetworkError,
                                     _TOOL_ENV)

# Chains the plugins create once per host and never delete, shared by every CNI network. portmap's
# are idle when CNI-HOSTPORT-DNAT has no rule (each published container adds one); the firewall
# plugin's when CNI-FORWARD holds only its jump to CNI-ADMIN (each container adds two) and
# CNI-ADMIN, the administrator's own overrides, is empty.
_PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
_FIREWALL_CHAINS = ("CNI-FORWARD", "CNI-ADMIN")


def teardown_network(network: NetworkConfig = DEFAULT_NETWORK) -> None:
    """Remove what CNI DEL leaves behind once no container uses ``network``: its bridge and its
    IPAM directory; then, when no other network has state in /var/lib/cni/networks, the shared
    iptables chains that no rule of a container uses and the iptables tables left empty. Rules
    are removed by their exact spec, never by flushing a table. NetworkError while in use."""
    ipam = IPAM_DIR / network.name
    addresses = [p for p in ipam.glob("*") if _is_ip(p.name)]  # one file per address in use
    interfaces = list(Path(f"/sys/class/net/{network.bridge}/brif").glob("*"))
    if addresses or interfaces:
        raise NetworkError(f"network {network.name} is still in use by "
                           f"{max(len(addresses), len(interfaces))} container(s)",
                           hint="remove the containers first (cleanup_stale for killed ones)")
    if Path(f"/sys/class/net/{network.bridge}").exists():
        _tool(["ip", "link", "delete", network.bridge])
    for leftover in [*ipam.glob("last_reserved_ip.*"), ipam / "lock"]:
        leftover.unlink(missing_ok=True)
    for directory in (ipam, IPAM_DIR, IPAM_DIR.parent):  # all made by host-local
        try:
            directory.rmdir()
        except OSError:  # missing, or holds another network's state
            pass
    if IPAM_DIR.exists():
        return  # another network may still need the shared chains
    for tool, family in (("iptables", socket.AF_INET), ("ip6tables", socket.AF_INET6)):
        _remove_idle_chains(tool)
        _drop_empty_tables(tool, family)


def _remove_idle_chains(tool: str) -> None:
    tables = _iptables_save(tool)
    batch = []
    nat = tables.get("nat")
    if nat and "CNI-HOSTPORT-DNAT" in nat.chains and not nat.rules_in("CNI-HOSTPORT-DNAT"):
        batch += nat.removal("nat", _PORTMAP_CHAINS)
    filt = tables.get("filter")
    if (filt and "CNI-FORWARD" in filt.chains and not filt.rules_in("CNI-ADMIN")
            and all(_target(rule) == "CNI-ADMIN" for rule in filt.rules_in("CNI-FORWARD"))):
        batch += filt.removal("filter", _FIREWALL_CHAINS)
    if batch:
        # One atomic batch: if a rule appeared since the save, -X fails and nothing changes.
        _tool([f"{tool}-restore", "--noflush"], input="\n".join(batch) + "\n")


@dataclass
class _Table:
    chains: dict[str, str]  # name -> policy ("-" for a user chain)
    rules: list[tuple[str, str]]  # (chain, "-A CHAIN spec" as iptables-save prints it)

    def rules_in(self, chain: str) -> list[str]:
        return [rule for c, rule in self.rules if c == chain]

    def removal(self, name: str, chains: tuple[str, ...]) -> list[str]:
        """iptables-restore lines removing ``chains``, the jumps to them first."""
        deletes = [f"-D {rule[3:]}" for chain, rule in self.rules
                   if chain in chains or _target(rule) in chains]
        return [f"*{name}", *deletes, *(f"-X {c}" for c in chains if c in self.chains), "COMMIT"]


def _iptables_save(tool: str) -> dict[str, _Table]:
    tables: dict[str, _Table] = {}
    table = _Table({}, [])
    for line in _tool([f"{tool}-save"]).splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:], _Table({}, []))
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.chains[name] = policy
        elif line.startswith("-A "):
            table.rules.append((line.split()[1], line))
    return tables


def _target(rule: str) -> str | None:
    words = rule.split()
    return words[words.index("-j") + 1] if "-j" in words else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _tool(args: list[str], input: str | None = None) -> str:
    proc = subprocess.run(args, input=input, env=_TOOL_ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# The iptables tools cannot delete a table, and iptables-nft creates one (with empty base chains)
# whenever any rule of that table is touched: portmap's DEL leaves an ip6 "nat" table that way
# even for IPv4-only containers. An empty table with ACCEPT policies behaves as no table, so the
# teardown deletes it through nf_tables' netlink API. The batch carries the ruleset generation
# read before the emptiness check: if anything changed since, the kernel refuses it (ERESTART).
_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_NFTABLES = 10
_NFT_MSG_DELTABLE = 2
_NFT_MSG_GETGEN = 16
_NFNL_MSG_BATCH_BEGIN, _NFNL_MSG_BATCH_END = 0x10, 0x11
_NLM_F_REQUEST, _NLM_F_ACK = 1, 4
_NLMSG_ERROR = 2


def _drop_empty_tables(tool: str, family: int) -> None:
    generation = _nft_generation()
    empty = [name for name, table in _iptables_save(tool).items()
             if name in ("filter", "nat") and not table.rules
             and all(policy == "ACCEPT" for policy in table.chains.values())]
    if not empty:
        return
    batch = _nlmsg(_NFNL_MSG_BATCH_BEGIN, 0, 0, _NFNL_SUBSYS_NFTABLES,
                   _nlattr(1, struct.pack(">I", generation)))  # NFNL_BATCH_GENID
    for seq, name in enumerate(empty, start=1):
        batch += _nlmsg(_NFNL_SUBSYS_NFTABLES << 8 | _NFT_MSG_DELTABLE, seq, family, 0,
                        _nlattr(1, name.encode() + b"\0"), _NLM_F_ACK)  # NFTA_TABLE_NAME
    batch += _nlmsg(_NFNL_MSG_BATCH_END, 0, 0, _NFNL_SUBSYS_NFTABLES)
    acked = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as sock:
        sock.send(batch)
        while acked < len(empty):
            for mtype, payload in _nlmsgs(sock.recv(65536)):
                if mtype != _NLMSG_ERROR:
                    continue
                code = -struct.unpack_from("=i", payload)[0]
                if code == errno.ERESTART:
                    return  # the ruleset changed under us: keep the tables
                if code:
                    raise NetworkError(f"cannot delete empty table: {os.strerror(code)}")
                acked += 1


def _nft_generation() -> int:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as sock:
        sock.send(_nlmsg(_NFNL_SUBSYS_NFTABLES << 8 | _NFT_MSG_GETGEN, 0, 0, 0))
        for _, payload in _nlmsgs(sock.recv(65536)):
            offset = 4  # after struct nfgenmsg
            while offset + 4 <= len(payload):
                length, kind = struct.unpack_from("=HH", payload, offset)
                if kind == 1:  # NFTA_GEN_ID
                    return struct.unpack_from(">I", payload, offset + 4)[0]
                offset += (length + 3) & ~3
    raise NetworkError("cannot read the nf_tables ruleset generation")


def _nlmsg(mtype: int, seq: int, family: int, res_id: int, payload: bytes = b"",
           flags: int = 0) -> bytes:
    """A netlink message with a struct nfgenmsg header (res_id is big-endian)."""
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), mtype, _NLM_F_REQUEST | flags, seq, 0) + body


def _nlattr(kind: int, data: bytes) -> bytes:
    attr = struct.pack("=HH", 4 + len(data), kind) + data
    return attr + b"\0" * (-len(attr) % 4)


def _nlmsgs(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, offset)
        yield mtype, data[offset + 16:offset + length]
        offset += (length + 3) & ~3
