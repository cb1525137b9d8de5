"""Container networks through the real CNI plugins: a published port serves HTTP on 127.0.0.1,
none mode has only lo, and detach, a failed attach and cleanup after a killed run leave nothing.

Each test session has its own bridge and subnet (lmt<random>, a free 10.91.x.0/24), sends traffic
only to 127.0.0.1 and into the namespaces it makes, publishes only on 127.0.0.1, and releases what
a test made even when it fails; the session ends by tearing its network down.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina.runtime import netns
from lamina.runtime.netteardown import teardown_network
from lamina.runtime.network import (
    IPAM_DIR, LOCALHOST_ENTRIES, NetworkAttachment, NetworkConfig, NetworkError, attach,
    cleanup_stale, detach,
)
from lamina.runtime.ports import parse_publish, port_lines, publish_all
from tests.e2e.test_run_helpers import free_port, http_get

CNI_DIR = Path("/usr/lib/cni")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (CNI_DIR / "bridge").exists() or not shutil.which("iptables"),
    reason="needs root, the CNI plugins and iptables (make setup)")

# The chains every CNI network shares; the rest of the CNI-* chains belong to one container.
SHARED_CHAINS = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK",
                 "CNI-FORWARD", "CNI-ADMIN"}
COUNTERS = re.compile(r" \[\d+:\d+\]$")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def in_netns(attachment: NetworkAttachment, *args: str) -> str:
    return run("nsenter", f"--net={attachment.netns_path}", *args)


def free_subnet() -> str:
    """A 10.91.N.0/24 no interface uses. Each xdist worker draws from its own share of N (two
    workers must not pick the same one before either makes its bridge); 250-255 are the fixed
    subnets of test_netrules*.py."""
    used = run("ip", "-4", "-o", "addr", "show")
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = [n for n in range(250) if n % workers == worker % workers]
    while True:
        prefix = f"10.91.{random.choice(mine)}."
        if f" {prefix}" not in used:
            return f"{prefix}0/24"


def rules_of(network: NetworkConfig) -> set[str]:
    """The iptables lines, without counters, of the containers of ``network``: those naming the
    network or its subnet, and the per-container chains they use. The network's own rules
    (LAMINA-* chains, installed once and kept until teardown) are not theirs."""
    prefix = network.subnet.rsplit(".", 1)[0] + "."
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in run(tool).splitlines():
            if line.startswith("*"):
                table = line
            elif line.startswith((":", "-A ")):
                lines.append(f"{table} {COUNTERS.sub('', line)}")
    ours = {line for line in lines
            if (network.name in line or prefix in line) and "LAMINA-" not in line}
    chains = {c for line in ours for c in re.findall(r"CNI-[\w-]+", line)} - SHARED_CHAINS
    return ours | {line for line in lines if any(f":{c} " in line or f"-A {c} " in line
                                                 for c in chains)}


def reservations(network: NetworkConfig) -> list[str]:
    """The addresses host-local has handed out on ``network``."""
    return sorted(p.name for p in (IPAM_DIR / network.name).glob("10.*"))


def links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def bridge_ports(network: NetworkConfig) -> set[str]:
    """The host ends of the veth pairs on the network's bridge."""
    return {p.name for p in Path(f"/sys/class/net/{network.bridge}/brif").glob("*")}


def plugin_dir(directory: Path, **stubs: str) -> Path:
    """A CNI_PATH with the real plugins, except the ones given here as shell scripts."""
    directory.mkdir()
    for plugin in CNI_DIR.iterdir():
        target = directory / plugin.name
        if plugin.name in stubs:
            target.write_text(stubs[plugin.name])
            target.chmod(0o755)
        else:
            target.symlink_to(plugin)
    return directory


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkConfig]:
    suffix = secrets.token_hex(3)
    config = NetworkConfig(name=f"lmt{suffix}", bridge=f"lmt{suffix}", subnet=free_subnet())
    forwarding = original_ip_forward(tmp_path_factory)
    yield config
    teardown_network(config)
    # The bridge plugin turns on IPv4 forwarding (Docker does too). Turn it back off when this
    # run found it off and no lamina bridge, of another test worker or a user, needs it.
    if forwarding == "0" and not any(name.startswith(("lmt", "lamina")) for name in links()):
        IP_FORWARD.write_text("0")
    assert config.bridge not in links()
    assert not list(netns.NETNS_DIR.glob(f"lamina-{config.name}-*"))


def original_ip_forward(tmp_path_factory: pytest.TempPathFactory) -> str:
    """ip_forward as this test run found it, before any test worker attached a container."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the same directory for all workers of this run
    mine = shared / f"ip_forward.{os.getpid()}"
    mine.write_text(IP_FORWARD.read_text().strip())
    try:
        os.link(mine, shared / "ip_forward")  # the first worker's reading wins
    except FileExistsError:
        pass
    return (shared / "ip_forward").read_text()


@pytest.fixture
def state_root(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def attach_container(network: NetworkConfig, state_root: Path
                     ) -> Iterator[Callable[..., NetworkAttachment]]:
    """attach() on the session's network; whatever a test leaves attached is released."""
    def attach_(name: str, **options) -> NetworkAttachment:
        options = {"network": network, "state_root": state_root, **options}
        return attach(f"{network.name}-{name}", **options)
    yield attach_
    if state_root.exists():
        cleanup_stale(state_root, live_container_ids=())


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a process inside a container's namespace; it is killed at the end of the test."""
    processes = []

    def spawn_(attachment: NetworkAttachment, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["nsenter", f"--net={attachment.netns_path}", *args],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        return process
    yield spawn_
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("form", ["127.0.0.1:{port}:8080", "127.0.0.1::8080"])
def test_published_port_serves_http_on_localhost(form, attach_container, spawn, tmp_path):
    port = free_port()
    attachment = attach_container("web", ports=parse_publish(form.format(port=port)))
    [mapping] = attachment.ports
    assert mapping.resolved and (mapping.host_port == port or "{port}" not in form)
    assert port_lines(attachment.ports) == [f"8080/tcp -> 127.0.0.1:{mapping.host_port}"]
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from lamina\n")
    spawn(attachment, "busybox", "httpd", "-f", "-p", "8080", "-h", str(www))
    assert http_get(f"http://127.0.0.1:{mapping.host_port}/") == "hello from lamina\n"


def test_container_reaches_its_gateway(network, attach_container):
    attachment = attach_container("gateway")
    subnet = ipaddress.ip_network(network.subnet)
    assert attachment.mode == "bridge" and attachment.ports == ()
    assert ipaddress.ip_address(attachment.ip_address) in subnet
    assert attachment.gateway == str(next(subnet.hosts()))
    assert attachment.hosts_entries == LOCALHOST_ENTRIES + (
        f"{attachment.ip_address}\t{attachment.container_id[:12]}",)
    assert f"default via {attachment.gateway} dev eth0" in in_netns(attachment, "ip", "route")
    in_netns(attachment, "busybox", "ping", "-c", "1", "-W", "2", attachment.gateway)


def test_none_mode_leaves_the_namespace_to_the_runtime(state_root, attach_container):
    # crun and runc make the container a new network namespace with lo up themselves
    # (tests/e2e/test_run_fast.py checks it from inside a container).
    attachment = attach_container("none", mode="none", ports=parse_publish("8080"))
    assert (attachment.netns_path, attachment.ip_address, attachment.ports) == (None, None, ())
    assert attachment.hosts_entries == LOCALHOST_ENTRIES
    assert not list(netns.NETNS_DIR.glob(f"lamina-{attachment.container_id}"))
    assert not list((state_root / "networks").glob("*.json"))
    detach(attachment, state_root=state_root)


def test_host_mode_sets_up_nothing(state_root):
    attachment = attach("lmt-host", mode="host", ports=parse_publish("8080:80"),
                        state_root=state_root)
    assert (attachment.netns_path, attachment.ip_address, attachment.ports) == (None, None, ())
    assert attachment.hosts_entries == tuple(Path("/etc/hosts").read_text().splitlines())
    assert not state_root.exists()
    detach(attachment, state_root=state_root)


def test_detach_removes_namespace_veth_rules_and_record(network, state_root, attach_container):
    rules_before = rules_of(network)
    attachment = attach_container("detached", ports=parse_publish("127.0.0.1::8080"))
    record = state_root / "networks" / f"{attachment.container_id}.json"
    assert record.exists() and netns.is_netns(attachment.netns_path)
    veths = bridge_ports(network)
    assert len(veths) == 1 and veths <= links()
    assert rules_of(network) - rules_before  # the published port's DNAT rules
    assert reservations(network) == [attachment.ip_address]

    detach(attachment, state_root=state_root)
    assert not Path(attachment.netns_path).exists() and not record.exists()
    assert not veths & links() and not bridge_ports(network)
    assert rules_of(network) == rules_before
    assert reservations(network) == []
    detach(attachment, state_root=state_root)  # again: nothing to do


def test_host_ports_are_chosen_and_checked(network, state_root, attach_container):
    # -P publishes on all addresses; here on 127.0.0.1 only, with the same port choice.
    exposed = [dataclasses.replace(m, host_ip="127.0.0.1")
               for m in publish_all({"8080/tcp": {}, "53/udp": {}})]
    published = attach_container("all", ports=exposed)
    assert [m.private for m in published.ports] == ["53/udp", "8080/tcp"]
    assert all(m.resolved for m in published.ports)

    taken = published.ports[1].host_port
    with pytest.raises(NetworkError, match=f"Bind for 127.0.0.1:{taken} failed: "
                                           "port is already allocated"):
        attach_container("same-port", ports=parse_publish(f"127.0.0.1:{taken}:80"))
    with socket.socket() as server:  # a host process holds the port
        server.bind(("127.0.0.1", 0))
        server.listen()
        busy = server.getsockname()[1]
        with pytest.raises(NetworkError, match="address already in use"):
            attach_container("busy-port", ports=parse_publish(f"127.0.0.1:{busy}:80"))
        ranged = attach_container("ranged", ports=parse_publish(
            f"127.0.0.1:{min(taken, busy)}-{max(taken, busy) + 1}:80"))
    [mapping] = ranged.ports
    assert mapping.host_port not in (taken, busy)
    records = sorted(p.stem for p in (state_root / "networks").glob("*.json"))
    assert records == [published.container_id, ranged.container_id]  # none for the refused
    with pytest.raises(NetworkError, match="IPv4 only"):
        attach_container("v6", ports=parse_publish("[::1]::80"))
    with pytest.raises(NetworkError, match="Cannot assign requested address"):
        attach_container("foreign", ports=parse_publish("203.0.113.1::80"))  # not this host's


def test_failed_plugin_leaves_nothing_behind(network, state_root, tmp_path, attach_container):
    rules_before = rules_of(network)
    failing = plugin_dir(tmp_path / "cni", portmap=(
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        '  echo \'{"cniVersion": "1.0.0", "code": 999, "msg": "boom"}\'; exit 1\n'
        "fi\n"
        f"exec {CNI_DIR}/portmap\n"))
    with pytest.raises(NetworkError, match="CNI portmap ADD failed: boom"):
        attach_container("failed", ports=parse_publish("127.0.0.1::8080"),
                         network=dataclasses.replace(network, cni_path=str(failing)))
    assert not list((state_root / "networks").glob("*.json"))
    assert not list(netns.NETNS_DIR.glob(f"lamina-{network.name}-failed"))
    assert rules_of(network) == rules_before
    assert reservations(network) == []


@pytest.mark.slow
def test_cleanup_stale_releases_what_a_killed_run_left(network, state_root, tmp_path,
                                                      attach_container):
    rules_before = rules_of(network)
    # lamina is killed (-9) in the middle of ADD: the portmap plugin's turn kills its parent.
    killing = plugin_dir(tmp_path / "cni", portmap=(
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = ADD ]; then kill -9 "$PPID"; exit 1; fi\n'
        f"exec {CNI_DIR}/portmap\n"))
    killed = f"{network.name}-killed"
    args = json.dumps({"id": killed, "root": str(state_root),
                       "network": dataclasses.replace(network, cni_path=str(killing)).to_json()})
    script = ("import json, sys\n"
              "from lamina.runtime.network import NetworkConfig, attach\n"
              "from lamina.runtime.ports import parse_publish\n"
              "a = json.loads(sys.argv[1])\n"
              "attach(a['id'], network=NetworkConfig(**a['network']),\n"
              "       ports=parse_publish('127.0.0.1::8080'), state_root=a['root'])\n")
    done = subprocess.run([sys.executable, "-c", script, args], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    # ... and another run attached two containers and died without a word.
    forgotten = attach_container("forgotten", ports=parse_publish("127.0.0.1::8080"))
    alive = attach_container("alive")
    assert netns.is_netns(netns.NETNS_DIR / f"lamina-{killed}")
    assert len(reservations(network)) == 3

    released = cleanup_stale(state_root, [alive.container_id])
    assert sorted(released) == sorted([killed, forgotten.container_id])
    assert [p.stem for p in (state_root / "networks").glob("*.json")] == [alive.container_id]
    assert not Path(forgotten.netns_path).exists()
    assert not (netns.NETNS_DIR / f"lamina-{killed}").exists()
    assert netns.is_netns(alive.netns_path)
    assert reservations(network) == [alive.ip_address]

    assert cleanup_stale(state_root, []) == [alive.container_id]
    assert rules_of(network) == rules_before
    assert reservations(network) == []
