"""Published ports: Docker's -p forms and errors, -P, `port` output; the CNI chain they make."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from lamina.errors import UsageError
from lamina.runtime.network import NetworkAttachment, NetworkConfig, NetworkError
from lamina.runtime.ports import (
    PortMapping, PortSpecError, parse_publish, port_lines, publish_all,
)


@pytest.mark.parametrize("spec, expected", [
    ("8282:8080", [PortMapping(8080, "tcp", "", 8282)]),
    ("127.0.0.1:8282:8080", [PortMapping(8080, "tcp", "127.0.0.1", 8282)]),
    ("8080", [PortMapping(8080)]),
    ("8080/udp", [PortMapping(8080, "udp")]),
    ("8080/TCP", [PortMapping(8080, "tcp")]),
    ("53:53/sctp", [PortMapping(53, "sctp", "", 53)]),
    ("127.0.0.1::8080", [PortMapping(8080, "tcp", "127.0.0.1", 0)]),
    ("0.0.0.0:80:80", [PortMapping(80, "tcp", "", 80)]),
    ("0:8080", [PortMapping(8080)]),
    ("8000-8001:9000-9001",
     [PortMapping(9000, "tcp", "", 8000), PortMapping(9001, "tcp", "", 8001)]),
    ("9000-9001/udp", [PortMapping(9000, "udp"), PortMapping(9001, "udp")]),
    ("8000-8010:80", [PortMapping(80, "tcp", "", 8000, 8010)]),
    ("[::1]:80:80", [PortMapping(80, "tcp", "::1", 80)]),
    ("[::]::80", [PortMapping(80, "tcp", "::", 0)]),
    ("::1:80:80", [PortMapping(80, "tcp", "::1", 80)]),
])
def test_publish_forms(spec: str, expected: list[PortMapping]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("8080/foo", "invalid proto: foo"),
    ("80:80/icmp", "invalid proto: icmp"),
    ("", "No port specified: <empty>"),
    ("8080:", "No port specified: 8080:<empty>"),
    ("abc:8080", "Invalid hostPort: abc"),
    ("65536:80", "Invalid hostPort: 65536"),
    ("+80:80", "Invalid hostPort: +80"),
    ("8001-8000:80", "Invalid hostPort: 8001-8000"),
    ("8080:abc", "Invalid containerPort: abc"),
    ("80:65536", "Invalid containerPort: 65536"),
    ("0", "Invalid containerPort: 0"),
    ("9001-9000", "Invalid containerPort: 9001-9000"),
    ("80-", "Invalid containerPort: 80-"),
    ("300.0.0.1:80:80", "Invalid ip address: 300.0.0.1"),
    ("localhost:80:80", "Invalid ip address: localhost"),
    ("[::1:80:80", "Invalid ip address: [::1"),
    ("8000-8001:9000-9002",
     "Invalid ranges specified for container and host Ports: 9000-9002 and 8000-8001"),
])
def test_publish_errors_are_dockers(spec: str, message: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_publish(spec)
    assert str(caught.value) == message
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 125


@given(host=st.integers(1, 65535), container=st.integers(1, 65535),
       protocol=st.sampled_from(["tcp", "udp", "sctp"]),
       ip=st.sampled_from(["", "127.0.0.1", "192.0.2.7", "::1"]))
def test_publish_reads_back_what_port_prints(host: int, container: int, protocol: str,
                                             ip: str) -> None:
    mapping = PortMapping(container, protocol, ip, host)
    # `port` prints "private -> public"; public then private is the -p form of the same mapping.
    private, public = port_lines([mapping])[0].split(" -> ")
    spec = f"{public}:{private}" if ip else f"{host}:{private}"
    assert parse_publish(spec) == [mapping]


def test_publish_all_takes_the_exposed_ports_in_order() -> None:
    exposed = {"8080/tcp": {}, "53/udp": {}, "9000-9001/tcp": {}, "443": {}}
    assert publish_all(exposed) == [
        PortMapping(53, "udp"), PortMapping(443), PortMapping(8080),
        PortMapping(9000), PortMapping(9001)]
    assert publish_all(("80/tcp", "80/tcp")) == [PortMapping(80)]
    assert not any(m.resolved for m in publish_all(exposed))  # host ports chosen at attach
    with pytest.raises(PortSpecError, match="invalid proto: foo"):
        publish_all({"80/foo": {}})


def test_port_lines_are_dockers() -> None:
    mappings = [PortMapping(8080, "tcp", "", 8282), PortMapping(80, "tcp", "::1", 8080),
                PortMapping(53, "udp", "127.0.0.1", 5353), PortMapping(8080, "udp", "", 8282)]
    assert port_lines(mappings) == [
        "53/udp -> 127.0.0.1:5353",
        "80/tcp -> [::1]:8080",
        "8080/tcp -> 0.0.0.0:8282",
        "8080/udp -> 0.0.0.0:8282",
    ]
    assert port_lines(mappings, "8080") == ["0.0.0.0:8282"]
    assert port_lines(mappings, "8080/udp") == ["0.0.0.0:8282"]
    assert port_lines(mappings, "53/tcp") == []  # Docker: No public port '53/tcp' published
    with pytest.raises(PortSpecError, match="invalid proto: x"):
        port_lines(mappings, "53/x")


def test_unresolved_mappings_show_what_was_asked() -> None:
    assert PortMapping(80, "tcp", "", 8000, 8010).public == "0.0.0.0:8000-8010"
    assert PortMapping(80).public == "0.0.0.0:0"
    assert PortMapping(80, host_port=8080).resolved


def test_attachment_round_trips_through_json() -> None:
    attachment = NetworkAttachment(
        "c0ffee", "bridge", "/run/netns/lamina-c0ffee", "10.90.0.2", "10.90.0.1",
        (PortMapping(8080, "tcp", "127.0.0.1", 8282), PortMapping(53, "udp", "", 5353)),
        ("127.0.0.1\tlocalhost", "10.90.0.2\tc0ffee"))
    text = json.dumps(attachment.to_json())
    assert NetworkAttachment.from_json(json.loads(text)) == attachment
    network = NetworkConfig("n", "br-n", "10.91.3.0/24")
    assert NetworkConfig.from_json(json.loads(json.dumps(network.to_json()))) == network


def test_plugin_chain_runs_portmap_only_for_published_ports() -> None:
    network = NetworkConfig("lmt", "lmt0", "10.91.7.0/24")
    assert [p["type"] for p in network.plugins([])] == ["bridge"]
    chain = network.plugins([PortMapping(8080, "tcp", "127.0.0.1", 8282),
                             PortMapping(53, "udp", "", 5353)])
    assert [p["type"] for p in chain] == ["bridge", "portmap"]
    bridge, portmap = chain
    # Masquerade and FORWARD rules are the network's (netrules.py), not one set per container.
    assert bridge["bridge"] == "lmt0" and bridge["isGateway"] and not bridge["ipMasq"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.91.7.0/24"}]]
    assert portmap["snat"] is True
    assert portmap["runtimeConfig"]["portMappings"] == [
        {"hostPort": 8282, "containerPort": 8080, "protocol": "tcp", "hostIP": "127.0.0.1"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},  # all addresses: no hostIP
    ]


@pytest.mark.parametrize("fields, message", [
    ({"bridge": "a-bridge-name-too-long"}, "invalid bridge name"),
    ({"bridge": "br 0"}, "invalid bridge name"),
    ({"subnet": "10.90.0.1/16"}, "invalid subnet"),
    ({"subnet": "fd00::/64"}, "invalid subnet"),
])
def test_network_config_is_checked(fields: dict[str, str], message: str) -> None:
    with pytest.raises(NetworkError, match=message):
        NetworkConfig(**fields)


def test_default_network_avoids_docker_and_podman_ranges() -> None:
    import ipaddress
    default = ipaddress.ip_network(NetworkConfig().subnet)
    for taken in ("172.17.0.0/16", "10.88.0.0/16"):
        assert not default.overlaps(ipaddress.ip_network(taken))
