"""Container networking: a network namespace per container, wired up by the CNI plugins.

Modes, as Docker's ``--network``: ``bridge`` gives the container its own namespace with an
address on a host bridge, outbound masquerade and published ports; ``none`` a namespace with only
``lo`` up, which the OCI runtime makes with the container (crun and runc raise ``lo``), so there
is nothing to set up or release here; ``host`` the host's own network (nothing to set up either;
published ports are discarded in both).

Bridge mode runs the CNI plugins (containernetworking-plugins, spec 1.0.0) one by one, each given
the previous one's result as ``prevResult``:
  bridge + host-local IPAM: the veth pair, the address, the default route;
  portmap, only when ports are published (the slowest plugin): DNAT, with ``snat`` so that
    publishing on 127.0.0.1 works.
Outbound MASQUERADE and the FORWARD ACCEPT rules (needed where Docker set the FORWARD policy to
DROP) are not the plugins' per-container rules (bridge ``ipMasq``, the firewall plugin): they
are the network's, installed once when the network is first used (netrules.py).
``lo`` is raised when the namespace is made (netns.py), so the loopback plugin is not run.

Every namespace lamina makes has a record, ``<state_root>/networks/<container id>.json``: the
attachment, the network, the exact plugin configs and the final ADD result, which DEL needs as
``prevResult``. It is written before anything is created, so whatever a crash leaves behind can
be found and released by ``cleanup_stale``.

Cost, medians of 8, the old and the new chain side by side on 2 cores under heavy load: without
published ports attach 114 -> 40 ms and detach 127 -> 61 ms (the plugins ran iptables once per
rule: bridge ipMasq 3 rules and a chain, firewall 2 rules, each added, checked and deleted); with
a port, portmap still costs what it did (attach ~120, detach ~170-210 ms). In quiet times attach
took 48 ms without ports before. What is left is the two Go plugins' own start-up and work.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import LaminaError
from lamina.runtime import netns
from lamina.store.locks import directory_lock

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:   # `run --network none|host` imports this module; only bridge mode needs these
    from lamina.runtime.ports import PortMapping

MODES = ("bridge", "host", "none")
CNI_VERSION = "1.0.0"
IPAM_DIR = Path("/var/lib/cni/networks")  # host-local's default dataDir
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# What Docker writes above the container's own line in /etc/hosts.
LOCALHOST_ENTRIES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


class NetworkError(LaminaError):
    """A container network that cannot be set up or torn down."""


DEFAULT_SUBNET = "10.90.0.0/16"


@dataclass(frozen=True)
class NetworkConfig:
    """A bridge network. The default range is one neither Docker (172.17/16) nor podman
    (10.88/16) uses."""

    name: str = "lamina"
    bridge: str = "lamina0"
    subnet: str = DEFAULT_SUBNET
    cni_path: str = "/usr/lib/cni"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", self.bridge):
            raise NetworkError(f"invalid bridge name {self.bridge!r}: "
                               "at most 15 of A-Z a-z 0-9 _ . -")
        if self.subnet == DEFAULT_SUBNET:
            return      # valid: and a run need not import ipaddress (1 ms) to know it
        import ipaddress

        try:
            ipaddress.IPv4Network(self.subnet)
        except ValueError as err:
            raise NetworkError(f"invalid subnet {self.subnet!r}: {err}") from None

    def plugins(self, ports: Iterable[PortMapping]) -> list[dict[str, Any]]:
        """The CNI plugin configs, in ADD order, for a container publishing ``ports``."""
        chain: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": self.bridge,
            # ipMasq off: the network's rules masquerade (netrules.py).
            "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }]
        mappings = [{"hostPort": m.host_port, "containerPort": m.container_port,
                     "protocol": m.protocol, **({"hostIP": m.host_ip} if m.host_ip else {})}
                    for m in ports]
        if mappings:
            chain.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True,
                          "runtimeConfig": {"portMappings": mappings}})
        return chain

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NetworkConfig":
        return cls(**data)


DEFAULT_NETWORK = NetworkConfig()


@dataclass(frozen=True)
class NetworkAttachment:
    """A container's network as set up: what the runtime needs for the OCI spec and /etc/hosts.

    ``netns_path`` is the namespace to join (None in host mode, and in none mode, where the
    runtime makes one); ``ports`` are the published mappings with their host ports chosen;
    ``hosts_entries`` are the lines of /etc/hosts.
    """

    container_id: str
    mode: str
    netns_path: str | None
    ip_address: str | None = None
    gateway: str | None = None
    ports: tuple[PortMapping, ...] = ()
    hosts_entries: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NetworkAttachment":
        from lamina.runtime.ports import PortMapping
        return cls(**{**data, "ports": tuple(PortMapping.from_json(m) for m in data["ports"]),
                      "hosts_entries": tuple(data["hosts_entries"])})


def attach(container_id: str, *, mode: str = "bridge", ports: Iterable[PortMapping] = (),
           network: NetworkConfig = DEFAULT_NETWORK, hostname: str | None = None,
           state_root: str | os.PathLike[str] | None = None) -> NetworkAttachment:
    """Set up the network of a container that is about to start.

    ``ports`` are parsed ``-p``/``-P`` mappings; free host ports are chosen here (in host and
    none modes they are discarded, as Docker does: the attachment has none). ``hostname``
    (default: the first 12 characters of the id) goes into the hosts entries. On failure nothing
    is left behind. ``state_root`` defaults to $LAMINA_ROOT, else /var/lib/lamina.
    """
    if mode not in MODES:
        raise NetworkError(f"invalid network mode {mode!r}: use bridge, host or none")
    if not _ID.fullmatch(container_id):
        raise NetworkError(f"invalid container id {container_id!r}")
    if mode == "host":
        return NetworkAttachment(container_id, mode, None, hosts_entries=_host_hosts_entries())
    if mode == "none":  # the runtime's own new namespace: nothing of ours to clean up later
        return NetworkAttachment(container_id, mode, None, hosts_entries=LOCALHOST_ENTRIES)
    record_path = _record_path(state_root, container_id)
    netns_path = str(netns.NETNS_DIR / f"lamina-{container_id}")
    attachment = NetworkAttachment(container_id, mode, netns_path, hosts_entries=LOCALHOST_ENTRIES)
    record: dict[str, Any] = {"attachment": None, "network": None, "plugins": [], "result": None}
    # Ports are chosen and written down under a lock, so that two containers started at once
    # cannot take the same one: portmap's DNAT does not bind it, so the kernel cannot tell.
    with directory_lock(record_path.parent):
        if record_path.exists():
            raise NetworkError(f"container {container_id} already has a network")
        if mode == "bridge":
            attachment = dataclasses.replace(
                attachment, ports=tuple(_resolve_ports(ports, record_path)))
            record.update(network=network.to_json(), plugins=network.plugins(attachment.ports))
        record["attachment"] = attachment.to_json()
        _write_record(record_path, record)
    try:
        if mode == "bridge":
            from lamina.runtime import netrules
            netrules.ensure(network)
        _create_netns(attachment.netns_path)
        for plugin in record["plugins"]:
            record["result"] = _cni("ADD", plugin, record["result"], attachment, network)
            # Kept after every plugin: if lamina is killed before the end, DEL still gets the
            # addresses (portmap finds its rules by them).
            _write_record(record_path, record)
        if mode == "bridge":
            ip, gateway = _address(record["result"])
            attachment = dataclasses.replace(
                attachment, ip_address=ip, gateway=gateway,
                hosts_entries=LOCALHOST_ENTRIES + (f"{ip}\t{hostname or container_id[:12]}",))
            record["attachment"] = attachment.to_json()
            _write_record(record_path, record)
    except BaseException:
        try:
            _release(record_path, record)
        except NetworkError:
            pass  # the record stays for cleanup_stale; the first error is the one to report
        raise
    return attachment


def detach(attachment: NetworkAttachment, *,
           state_root: str | os.PathLike[str] | None = None) -> None:
    """Tear down what ``attach`` set up: CNI DEL in reverse order, the namespace, the record.

    Idempotent, and fine with half-made state. When a plugin's DEL fails, the namespace and the
    record stay (NetworkError) so that a later ``detach`` or ``cleanup_stale`` can retry.
    """
    if attachment.netns_path is None:  # host, or none: the runtime's namespace went with it
        return
    record_path = _record_path(state_root, attachment.container_id)
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        _delete_netns(attachment.netns_path)  # detached already; the record goes last
        return
    _release(record_path, record)


def cleanup_stale(state_root: str | os.PathLike[str],
                  live_container_ids: Iterable[str]) -> list[str]:
    """Release the networks of containers that are gone (after a ``kill -9`` of lamina, say).

    ``live_container_ids`` must name every container that may still use its network, those
    being created included. Returns the ids released; raises NetworkError after trying all if
    some could not be.
    """
    directory = Path(state_root) / "networks"
    live = set(live_container_ids)
    released, errors = [], []
    for path in sorted(directory.glob("*.json")):
        if path.stem in live:
            continue
        try:
            _release(path, json.loads(path.read_text()))
            released.append(path.stem)
        except NetworkError as err:
            errors.append(err)
    for partial in directory.glob("*.json.tmp"):  # a write cut short by the kill
        if partial.name.removesuffix(".json.tmp") not in live:
            partial.unlink(missing_ok=True)
    if errors:
        raise NetworkError(f"could not release {len(errors)} network(s): {errors[0].message}")
    return released


def _release(record_path: Path, record: dict[str, Any]) -> None:
    attachment = NetworkAttachment.from_json(record["attachment"])
    errors = []
    if record["plugins"]:
        network = NetworkConfig.from_json(record["network"])
        # Without the namespace (removed by hand) the plugins still release the address and the
        # port rules; the bridge plugin then cannot find the masquerade rules of the address.
        if not netns.is_netns(attachment.netns_path):
            attachment = dataclasses.replace(attachment, netns_path="")
        for plugin in reversed(record["plugins"]):
            try:
                _cni("DEL", plugin, record["result"], attachment, network)
            except NetworkError as err:
                errors.append(err)
    if errors:
        raise errors[0]
    _delete_netns(record["attachment"]["netns_path"])
    record_path.unlink(missing_ok=True)


def _cni(command: str, plugin: dict[str, Any], prev_result: dict[str, Any] | None,
         attachment: NetworkAttachment, network: NetworkConfig) -> dict[str, Any] | None:
    """Run one plugin; ADD returns its result."""
    from lamina.runtime.netrules import TOOL_ENV   # a fixed PATH: plugins exec iptables

    config = {"cniVersion": CNI_VERSION, "name": network.name, **plugin}
    if prev_result is not None:
        config["prevResult"] = prev_result
    env = {**TOOL_ENV, "CNI_COMMAND": command, "CNI_CONTAINERID": attachment.container_id,
           "CNI_NETNS": attachment.netns_path or "", "CNI_IFNAME": "eth0",
           "CNI_PATH": network.cni_path}
    binary = Path(network.cni_path) / plugin["type"]
    try:
        proc = subprocess.run([binary], input=json.dumps(config).encode(), env=env,
                              capture_output=True, timeout=60)
    except FileNotFoundError:
        raise NetworkError(f"CNI plugin {binary} not found",
                           hint="install containernetworking-plugins (make setup)") from None
    except subprocess.TimeoutExpired:
        raise NetworkError(f"CNI {plugin['type']} {command} did not finish in 60 s") from None
    if proc.returncode != 0:
        raise NetworkError(f"network {network.name}: CNI {plugin['type']} {command} failed: "
                           f"{_cni_message(proc)}")
    return json.loads(proc.stdout) if command == "ADD" else None


def _cni_message(proc: subprocess.CompletedProcess[bytes]) -> str:
    # A failing plugin prints {"code": N, "msg": "...", "details": "..."} on stdout.
    try:
        error = json.loads(proc.stdout)
        return ": ".join(part for part in (error.get("msg"), error.get("details")) if part)
    except (ValueError, AttributeError):
        return (proc.stderr or proc.stdout).decode(errors="replace").strip()


def _address(result: dict[str, Any]) -> tuple[str, str | None]:
    ips = [ip for ip in result.get("ips", []) if ip.get("address")]
    if not ips:
        raise NetworkError("CNI bridge plugin returned no address")
    return ips[0]["address"].split("/")[0], ips[0].get("gateway")


def _create_netns(path: str) -> None:
    try:
        netns.create(Path(path).name)
    except OSError as err:
        raise NetworkError(f"cannot create network namespace {path}: {err}") from None


def _delete_netns(path: str) -> None:
    try:
        netns.delete(path)
    except OSError as err:
        raise NetworkError(f"cannot remove network namespace {path}: {err}") from None


def _host_hosts_entries() -> tuple[str, ...]:
    try:  # Docker gives a host-network container a copy of the host's /etc/hosts
        return tuple(Path("/etc/hosts").read_text().splitlines())
    except FileNotFoundError:
        return LOCALHOST_ENTRIES


# --- records ----------------------------------------------------------------------------------

def _record_path(state_root: str | os.PathLike[str] | None, container_id: str) -> Path:
    root = Path(state_root or os.environ.get("LAMINA_ROOT") or "/var/lib/lamina")
    return root / "networks" / f"{container_id}.json"


def _write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(record))
    os.replace(partial, path)


# --- host ports -------------------------------------------------------------------------------

# Socket types by name (socket is imported late); 132 is IPPROTO_SCTP.
_SOCKET_TYPES = {"tcp": ("SOCK_STREAM", 0), "udp": ("SOCK_DGRAM", 0), "sctp": ("SOCK_STREAM", 132)}


def _resolve_ports(mappings: Iterable[PortMapping], record_path: Path) -> list[PortMapping]:
    """Give every mapping a host port: check a requested one, pick a free one otherwise.

    A port is taken when another lamina container publishes it (their records) or a host
    process has it bound (a bind probe)."""
    taken = [m for path in record_path.parent.glob("*.json") if path != record_path
             for m in _published(path)]
    resolved: list[PortMapping] = []
    for mapping in mappings:
        if ":" in mapping.host_ip:
            raise NetworkError(f"cannot publish on {mapping.host_ip}: "
                               "lamina networks are IPv4 only",
                               hint="publish on an IPv4 address such as 127.0.0.1, or on all")
        if mapping.resolved:
            _check_free(mapping, taken + resolved)
        else:
            mapping = _pick_free(mapping, taken + resolved)
        resolved.append(mapping)
    return resolved


def _published(record_path: Path) -> tuple[PortMapping, ...]:
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:  # detached meanwhile
        return ()
    return NetworkAttachment.from_json(record["attachment"]).ports


def _check_free(mapping: PortMapping, taken: list[PortMapping]) -> None:
    if any(_overlaps(mapping, other) for other in taken):
        raise NetworkError(f"Bind for {mapping.public} failed: port is already allocated")
    if not _bind(mapping, mapping.host_port):
        raise NetworkError(f"cannot publish {mapping.public}/{mapping.protocol}: "
                           "address already in use on the host")


def _pick_free(mapping: PortMapping, taken: list[PortMapping]) -> PortMapping:
    if mapping.host_port_end:  # -p 8000-8010:80: the first free port of the range
        candidates: Iterable[int] = range(max(mapping.host_port, 1), mapping.host_port_end + 1)
    else:  # ports the kernel offers from its ephemeral range, the range Docker allocates from
        candidates = (_bind(mapping, 0) for _ in range(20))
    for port in candidates:
        candidate = dataclasses.replace(mapping, host_port=port, host_port_end=0)
        if port and _bind(candidate, port) and not any(_overlaps(candidate, o) for o in taken):
            return candidate
    raise NetworkError(f"Bind for {mapping.public} failed: all ports are allocated")


def _overlaps(a: PortMapping, b: PortMapping) -> bool:
    return (a.protocol == b.protocol and a.host_port == b.host_port
            and (not a.host_ip or not b.host_ip or a.host_ip == b.host_ip))


def _bind(mapping: PortMapping, port: int) -> int:
    """Bind a probe socket to the mapping's host address and ``port`` (0: any); returns the
    port bound, or 0 when a host process has it."""
    import socket   # only in bridge mode: none and host modes skip the import

    kind, proto = _SOCKET_TYPES[mapping.protocol]
    try:
        with socket.socket(socket.AF_INET, getattr(socket, kind), proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
            sock.bind((mapping.host_ip or "0.0.0.0", port))
            return sock.getsockname()[1]
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return 0
        raise NetworkError(f"cannot publish {mapping.protocol} ports on "
                           f"{mapping.host_ip or '0.0.0.0'}: {err.strerror}") from None
