"""Host-wide clean-up of what a network leaves behind once no container uses it: the bridge,
lamina's network-wide rules (netrules.py), the CNI plugins' shared iptables chains, and empty
nf_tables tables (PLATFORM.md §3, "DEL leaves global state behind"). Rules are removed by exact
spec, never by flushing a table: Docker's and netavark's rules live in the same tables.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from pathlib import Path

from lamina.runtime import netrules
from lamina.runtime.netrules import (NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, iptables_save,
                                     nlmsg, nlmsgs, run_tool, target)
from lamina.runtime.network import DEFAULT_NETWORK, IPAM_DIR, NetworkConfig, NetworkError

# Chains the plugins create once per host and never delete, shared by every CNI network. portmap's
# are idle when CNI-HOSTPORT-DNAT has no rule (each published container adds one); the firewall
# plugin's when CNI-FORWARD holds only its jump to CNI-ADMIN (each container adds two) and
# CNI-ADMIN, the administrator's own overrides, is empty.
_PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
_FIREWALL_CHAINS = ("CNI-FORWARD", "CNI-ADMIN")


def teardown_network(network: NetworkConfig = DEFAULT_NETWORK) -> None:
    """Remove what CNI DEL leaves behind once no container uses ``network``: its bridge, its
    IPAM directory and its iptables rules (netrules.py; the LAMINA-* chains with the last
    network's); then, when no other network has state in /var/lib/cni/networks, the shared
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
        run_tool(["ip", "link", "delete", network.bridge])
    netrules.remove(network)
    for leftover in [*ipam.glob("last_reserved_ip.*"), ipam / "lock"]:
        leftover.unlink(missing_ok=True)
    try:
        ipam.rmdir()
    except OSError:  # missing, or not empty
        pass
    # /var/lib/cni/networks itself stays: removing it could race with another process's
    # host-local, which makes it and then its network's folder inside.
    if IPAM_DIR.is_dir() and any(IPAM_DIR.iterdir()):
        return  # another network may still need the shared chains
    for tool, family in (("iptables", socket.AF_INET), ("ip6tables", socket.AF_INET6)):
        _remove_idle_chains(tool)
        _drop_empty_tables(tool, family)


def _remove_idle_chains(tool: str) -> None:
    tables = iptables_save(tool)
    batch = []
    nat = tables.get("nat")
    if nat and "CNI-HOSTPORT-DNAT" in nat.chains and not nat.rules_in("CNI-HOSTPORT-DNAT"):
        batch += nat.removal("nat", _PORTMAP_CHAINS)
    filt = tables.get("filter")
    if (filt and "CNI-FORWARD" in filt.chains and not filt.rules_in("CNI-ADMIN")
            and all(target(rule) == "CNI-ADMIN" for rule in filt.rules_in("CNI-FORWARD"))):
        batch += filt.removal("filter", _FIREWALL_CHAINS)
    if batch:
        # One atomic batch: if a rule appeared since the save, -X fails and nothing changes.
        netrules.restore(batch, tool)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


# The iptables tools cannot delete a table, and iptables-nft creates one (with empty base chains)
# whenever any rule of that table is touched: portmap's DEL leaves an ip6 "nat" table that way
# even for IPv4-only containers. An empty table with ACCEPT policies behaves as no table, so the
# teardown deletes it through nf_tables' netlink API. The batch carries the ruleset generation
# read before the emptiness check: if anything changed since, the kernel refuses it (ERESTART).
_NFT_MSG_DELTABLE = 2
_NFNL_MSG_BATCH_BEGIN, _NFNL_MSG_BATCH_END = 0x10, 0x11
_NLM_F_ACK = 4
_NLMSG_ERROR = 2


def _drop_empty_tables(tool: str, family: int) -> None:
    generation = netrules.ruleset_generation()
    if generation is None:
        return  # the legacy backend: no nf_tables tables of iptables to drop
    empty = [name for name, table in iptables_save(tool).items()
             if name in ("filter", "nat") and not table.rules
             and all(policy == "ACCEPT" for policy in table.chains.values())]
    if not empty:
        return
    batch = nlmsg(_NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES,
                  _nlattr(1, struct.pack(">I", generation)))  # NFNL_BATCH_GENID
    for seq, name in enumerate(empty, start=1):
        batch += nlmsg(NFNL_SUBSYS_NFTABLES << 8 | _NFT_MSG_DELTABLE, seq, family, 0,
                       _nlattr(1, name.encode() + b"\0"), _NLM_F_ACK)  # NFTA_TABLE_NAME
    batch += nlmsg(_NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES)
    acked = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.send(batch)
        while acked < len(empty):
            for mtype, payload in nlmsgs(sock.recv(65536)):
                if mtype != _NLMSG_ERROR:
                    continue
                code = -struct.unpack_from("=i", payload)[0]
                if code == errno.ERESTART:
                    return  # the ruleset changed under us: keep the tables
                if code:
                    raise NetworkError(f"cannot delete empty table: {os.strerror(code)}")
                acked += 1


def _nlattr(kind: int, data: bytes) -> bytes:
    attr = struct.pack("=HH", 4 + len(data), kind) + data
    return attr + b"\0" * (-len(attr) % 4)
