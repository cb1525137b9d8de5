"""A network whose rules iptables-save prints otherwise than lamina writes them (a subnet in
netmask form: written ``/255.255.255.0``, printed ``/24``) is set up once and taken down
completely: no rule, chain or jump of lamina's is left behind. Runs in a private network
namespace (test_netrules.in_private_netns): the host's rules are never touched."""
from __future__ import annotations

from pathlib import Path

from lamina.runtime import netrules
from lamina.runtime.network import NetworkConfig
from tests.integration.test_netrules import (FOREIGN, in_private_netns, iptables,  # noqa: F401
                                             pytestmark, rules)

NETMASK = NetworkConfig(name="lmt-m", bridge="lmtm0", subnet="10.91.253.0/255.255.255.0")


def test_rules_printed_otherwise_are_added_once_and_removed(tmp_path: Path) -> None:
    def scenario() -> dict[str, list[str]]:
        iptables(FOREIGN)
        seen = {}
        netrules.ensure(NETMASK, marker_dir=tmp_path)
        (tmp_path / f"{NETMASK.name}.rules").unlink()   # as after a reboot of /run: check again
        netrules.ensure(NETMASK, marker_dir=tmp_path)
        seen["up"] = rules()
        netrules.remove(NETMASK, marker_dir=tmp_path)
        seen["down"] = rules()
        return seen

    seen = in_private_netns(scenario)
    masquerade = [r for r in seen["up"] if "MASQUERADE" in r]
    assert masquerade == ["nat -A LAMINA-POSTROUTING -s 10.91.253.0/24 -m comment --comment "
                          '"lamina network lmt-m" -j MASQUERADE'], seen["up"]
    ours = [r for r in seen["up"] if r != f"filter {FOREIGN}"]
    assert len(ours) == 9, ours     # 2 chains, 2 jumps, 5 rules: none twice
    assert seen["down"] == [f"filter {FOREIGN}"]
