"""The iptables rules of a bridge network, installed once for the whole network rather than
once per container.

The CNI bridge plugin's ``ipMasq`` and the firewall plugin write a chain and rules for every
container, one iptables exec per rule, and remove them again at DEL: about 130 ms of every
``lamina run``. The same effect, network-wide, is five rules that name the subnet and the bridge:

    nat     POSTROUTING -> LAMINA-POSTROUTING:
              -s SUBNET -d SUBNET      RETURN       (between containers: no NAT)
              -s SUBNET -d 224.0.0.0/4 RETURN       (multicast, as the bridge plugin)
              -s SUBNET                MASQUERADE   (outbound)
    filter  FORWARD (first) -> LAMINA-FORWARD:     (where Docker set the policy to DROP)
              -i BRIDGE ACCEPT
              -o BRIDGE RELATED,ESTABLISHED,DNAT ACCEPT   (replies; published ports)

``ensure`` installs what is missing in one ``iptables-restore --noflush`` batch, under a lock.
Whether anything can be missing is answered without running iptables: after installing or
verifying, it writes the nf_tables ruleset generation down (/run/lamina/netrules, a tmpfs, gone
at reboot as the rules are). While the generation is unchanged, nobody changed any rule, so a
container on a network already set up pays one netlink round trip (~0.1 ms). ``remove`` takes
the rules out again, one by one by their spec; the LAMINA-* chains and their jumps go with the last
network (netteardown.teardown_network calls it).
"""
from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..image.digest import sha256_hex
from ..store.locks import directory_lock

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from lamina.runtime.network import NetworkConfig

MARKER_DIR = Path("/run/lamina/netrules")
# table -> (the built-in chain, our chain, how the jump is added: FORWARD's goes first, ahead
# of any DROP rule; POSTROUTING's last, as the bridge plugin's).
CHAINS = {"nat": ("POSTROUTING", "LAMINA-POSTROUTING", "-A"),
          "filter": ("FORWARD", "LAMINA-FORWARD", "-I")}
_SHARED_COMMENT = '-m comment --comment "lamina networks"'
TOOL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LC_ALL": "C"}


def network_rules(network: "NetworkConfig") -> dict[str, list[str]]:
    """The network's own rules, table -> lines exactly as iptables-save prints them."""
    subnet, bridge = network.subnet, network.bridge
    mark = f'-m comment --comment "lamina network {network.name}"'
    nat, filt = CHAINS["nat"][1], CHAINS["filter"][1]
    return {
        "nat": [f"-A {nat} -s {subnet} -d {subnet} {mark} -j RETURN",
                f"-A {nat} -s {subnet} -d 224.0.0.0/4 {mark} -j RETURN",
                f"-A {nat} -s {subnet} {mark} -j MASQUERADE"],
        "filter": [f"-A {filt} -i {bridge} {mark} -j ACCEPT",
                   f"-A {filt} -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT "
                   f"{mark} -j ACCEPT"],
    }


def jump_rule(table: str) -> str:
    """The rule that sends the built-in chain's packets to ours, as iptables-save prints it."""
    builtin, chain, _ = CHAINS[table]
    return f"-A {builtin} {_SHARED_COMMENT} -j {chain}"


def ensure(network: "NetworkConfig", *, marker_dir: Path = MARKER_DIR) -> None:
    """Make sure the network's rules are in place; cheap when they were put there already."""
    marker = marker_dir / f"{network.name}.rules"
    stamp = _stamp(network)
    if _unchanged(stamp, marker):
        return
    with directory_lock(marker_dir):
        if _unchanged(stamp, marker):   # another container did it meanwhile
            return
        tables = iptables_save()
        batch = _missing(tables, network)
        if batch:
            restore(batch)
        current = _generation_stamp(stamp)
        if current is not None:
            marker.write_text(current)


def remove(network: "NetworkConfig", *, marker_dir: Path = MARKER_DIR) -> None:
    """Take the network's rules out; with the last network's, the LAMINA-* chains and jumps.

    Rules are deleted one by one by their spec, never by flushing: Docker's and others' rules
    live in the same tables. Nothing to do when the rules are not there."""
    with directory_lock(marker_dir):
        (marker_dir / f"{network.name}.rules").unlink(missing_ok=True)
        tables = iptables_save()
        batch = []
        for table, ours in network_rules(network).items():
            saved = tables.get(table)
            if saved is None:
                continue
            _, chain, _ = CHAINS[table]
            # As in ensure: a rule iptables-save prints otherwise than we write it is found
            # with -C, and deleted by its spec all the same.
            present = [rule for rule in ours
                       if rule in saved.lines or (chain in saved.chains and _present(table, rule))]
            others = len(saved.rules_in(chain)) - len(present)
            lines = [f"-D {rule[3:]}" for rule in present]
            if not others and chain in saved.chains:   # (no jump can outlive its chain)
                jump = jump_rule(table)
                copies = saved.lines.count(jump) or int(_present(table, jump))
                lines += [f"-D {jump[3:]}"] * copies + [f"-X {chain}"]
            if lines:
                batch += [f"*{table}", *lines, "COMMIT"]
        if batch:
            restore(batch)


def _missing(tables: dict[str, "Table"], network: "NetworkConfig") -> list[str]:
    """The restore lines that add what is missing of the network's rules, chains and jumps."""
    batch = []
    for table, ours in network_rules(network).items():
        saved = tables.get(table) or Table({}, [])
        builtin, chain, add = CHAINS[table]
        lines = []
        if chain not in saved.chains:   # declaring an existing chain would flush it
            lines.append(f":{chain} - [0:0]")
            absent = [jump_rule(table), *ours]   # nothing can use or be in a missing chain
        else:
            absent = [rule for rule in [jump_rule(table), *ours]
                      if rule not in saved.lines and not _present(table, rule)]
        lines += [f"{add} {rule[3:]}" if rule == jump_rule(table) else rule for rule in absent]
        if lines:
            batch += [f"*{table}", *lines, "COMMIT"]
    return batch


def _present(table: str, rule: str) -> bool:
    """``iptables -C``: whether ``rule`` is there though iptables-save printed it otherwise
    than we write it (another iptables version): never add a rule twice."""
    args = ["iptables", "-t", table, "-C", *shlex.split(rule)[1:]]
    return subprocess.run(args, env=TOOL_ENV, capture_output=True).returncode == 0


def _stamp(network: "NetworkConfig") -> str:
    """What the rules depend on: a marker written for another subnet or bridge does not count."""
    text = repr(sorted(network_rules(network).items()))
    return sha256_hex(text.encode())[:16]


def _unchanged(stamp: str, marker: Path) -> bool:
    """Whether nothing changed the ruleset since the rules were last found in place."""
    current = _generation_stamp(stamp)
    return current is not None and current == _read(marker)


def _generation_stamp(stamp: str) -> str | None:
    generation = ruleset_generation()
    return None if generation is None else f"{generation} {stamp}\n"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# --- iptables-save and -restore ---------------------------------------------------------------

@dataclass
class Table:
    """One iptables table as ``iptables-save`` prints it: its chains and their rules, in order."""

    chains: dict[str, str]  # name -> policy ("-" for a user chain)
    rules: list[tuple[str, str]]  # (chain, "-A CHAIN spec" as iptables-save prints it)

    @property
    def lines(self) -> list[str]:
        return [rule for _, rule in self.rules]

    def rules_in(self, chain: str) -> list[str]:
        return [rule for c, rule in self.rules if c == chain]

    def removal(self, name: str, chains: tuple[str, ...]) -> list[str]:
        """iptables-restore lines removing ``chains``, the jumps to them first."""
        deletes = [f"-D {rule[3:]}" for chain, rule in self.rules
                   if chain in chains or target(rule) in chains]
        return [f"*{name}", *deletes, *(f"-X {c}" for c in chains if c in self.chains), "COMMIT"]


def iptables_save(tool: str = "iptables") -> dict[str, Table]:
    tables: dict[str, Table] = {}
    table = Table({}, [])
    for line in run_tool([f"{tool}-save"]).splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:], Table({}, []))
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.chains[name] = policy
        elif line.startswith("-A "):
            table.rules.append((line.split()[1], line))
    return tables


def restore(batch: list[str], tool: str = "iptables") -> None:
    """Apply ``batch`` atomically, leaving every other rule as it is."""
    run_tool([f"{tool}-restore", "--noflush"], input="\n".join(batch) + "\n")


def target(rule: str) -> str | None:
    words = rule.split()
    return words[words.index("-j") + 1] if "-j" in words else None


def run_tool(args: list[str], input: str | None = None) -> str:
    from lamina.runtime.network import NetworkError

    try:
        proc = subprocess.run(args, input=input, env=TOOL_ENV, capture_output=True, text=True)
    except FileNotFoundError:
        raise NetworkError(f"{args[0]} not found", hint="install iptables (make setup)") from None
    if proc.returncode != 0:
        raise NetworkError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# --- the nf_tables ruleset generation ---------------------------------------------------------
# nf_tables counts every change of the ruleset (of any table, by any tool). The iptables of
# Debian 12 is iptables-nft, so its rules are nf_tables rules; the legacy backend is not counted
# and gets no generation here, so ensure() then checks with iptables-save every time.

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16


def ruleset_generation() -> int | None:
    """The nf_tables ruleset generation of our network namespace; None where iptables does not
    keep its rules in nf_tables (or nf_tables is missing)."""
    import socket

    if "legacy" in os.path.basename(os.path.realpath(shutil.which("iptables", path=TOOL_ENV["PATH"])
                                                     or "legacy")):
        return None
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.send(nlmsg(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, 0, 0, 0))
            for mtype, payload in nlmsgs(sock.recv(65536)):
                offset = 4  # after struct nfgenmsg
                while offset + 4 <= len(payload):
                    length, kind = struct.unpack_from("=HH", payload, offset)
                    if kind == 1:  # NFTA_GEN_ID
                        return struct.unpack_from(">I", payload, offset + 4)[0]
                    offset += max((length + 3) & ~3, 4)
    except OSError:
        return None
    return None


def nlmsg(mtype: int, seq: int, family: int, res_id: int, payload: bytes = b"",
          flags: int = 0) -> bytes:
    """A netlink request with a struct nfgenmsg header (res_id is big-endian)."""
    body = struct.pack("=BB", family, 0) + struct.pack(">H", res_id) + payload
    return struct.pack("=IHHII", 16 + len(body), mtype, 1 | flags, seq, 0) + body  # REQUEST


def nlmsgs(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, offset)
        yield mtype, data[offset + 16:offset + length]
        offset += max((length + 3) & ~3, 16)
