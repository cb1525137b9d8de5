"""A bridge network's iptables rules (runtime/netrules.py), installed once per network.

Every test runs in a network namespace of its own (a thread that unshares its network
namespace: iptables and netlink, run from that thread, see only that namespace's ruleset), so
the host's rules are never touched; the namespace goes when the thread ends.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from lamina.runtime import netrules
from lamina.runtime.network import NetworkConfig, NetworkError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables-restore"),
    reason="needs root and iptables (make setup)")

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
FIRST = NetworkConfig(name="lmt-a", bridge="lmta0", subnet="10.91.250.0/24")
SECOND = NetworkConfig(name="lmt-b", bridge="lmtb0", subnet="10.91.251.0/24")
FOREIGN = "-A FORWARD -i docker0 -j ACCEPT"    # someone else's rule, which must stay


def in_private_netns(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread that has a network namespace of its own; its result."""
    outcome: list = []

    def thread() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            outcome.append(work())
        except BaseException as err:  # handed to the test's thread
            outcome.append(err)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def rules() -> list[str]:
    """This namespace's nat and filter rules and chains, as iptables-save prints them."""
    lines = []
    for table in ("nat", "filter"):
        out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                             check=True).stdout
        lines += [f"{table} {line.split(' [')[0]}" for line in out.splitlines()
                  if line.startswith(("-A", ":LAMINA"))]
    return lines


def expected(*networks: NetworkConfig, foreign: bool = False) -> list[str]:
    """What rules() shows with ``networks`` set up (and the FOREIGN rule): the jump to
    LAMINA-FORWARD comes first in FORWARD, ahead of the others' rules."""
    lines = ["nat :LAMINA-POSTROUTING -", "nat " + netrules.jump_rule("nat")]
    lines += [f"nat {rule}" for n in networks for rule in netrules.network_rules(n)["nat"]]
    lines += ["filter :LAMINA-FORWARD -", "filter " + netrules.jump_rule("filter")]
    lines += [f"filter {FOREIGN}"] if foreign else []
    lines += [f"filter {rule}" for n in networks for rule in netrules.network_rules(n)["filter"]]
    return lines


def iptables(rule: str, table: str = "filter") -> None:
    subprocess.run(["iptables", "-t", table, *shlex.split(rule)], check=True,
                   capture_output=True)


def test_rules_are_installed_once_and_removed_by_their_text(tmp_path: Path) -> None:
    def scenario() -> dict[str, list[str]]:
        iptables(FOREIGN)
        seen = {}
        netrules.ensure(FIRST, marker_dir=tmp_path)
        netrules.ensure(FIRST, marker_dir=tmp_path)     # a second container: nothing to add
        seen["first"] = rules()
        netrules.ensure(SECOND, marker_dir=tmp_path)
        seen["both"] = rules()
        netrules.remove(FIRST, marker_dir=tmp_path)
        seen["second only"] = rules()
        netrules.remove(SECOND, marker_dir=tmp_path)
        netrules.remove(SECOND, marker_dir=tmp_path)    # again: nothing left to remove
        seen["none"] = rules()
        return seen

    seen = in_private_netns(scenario)
    assert seen["first"] == expected(FIRST, foreign=True)
    assert seen["both"] == expected(FIRST, SECOND, foreign=True)
    assert seen["second only"] == expected(SECOND, foreign=True)
    assert seen["none"] == [f"filter {FOREIGN}"]


def test_a_rule_removed_by_someone_else_comes_back(tmp_path: Path) -> None:
    masquerade = netrules.network_rules(FIRST)["nat"][-1]

    def scenario() -> tuple[list[str], list[str]]:
        netrules.ensure(FIRST, marker_dir=tmp_path)
        iptables("-D" + masquerade[2:], table="nat")
        removed = rules()
        netrules.ensure(FIRST, marker_dir=tmp_path)
        return removed, rules()

    removed, restored = in_private_netns(scenario)
    assert f"nat {masquerade}" not in removed
    assert restored == expected(FIRST)


def test_later_containers_do_not_run_iptables(tmp_path: Path, monkeypatch) -> None:
    def scenario() -> list[str]:
        netrules.ensure(FIRST, marker_dir=tmp_path)

        def no_tools(args, input=None):
            raise AssertionError(f"ran {args}")
        monkeypatch.setattr(netrules, "run_tool", no_tools)
        netrules.ensure(FIRST, marker_dir=tmp_path)
        monkeypatch.undo()
        return rules()

    assert in_private_netns(scenario) == expected(FIRST)


def test_missing_iptables_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(netrules.TOOL_ENV, "PATH", str(tmp_path))
    with pytest.raises(NetworkError, match="iptables-save not found") as caught:
        in_private_netns(lambda: netrules.ensure(FIRST, marker_dir=tmp_path / "marks"))
    assert "install iptables" in caught.value.hint


@pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists() or not shutil.which("busybox"),
                    reason="needs the CNI plugins and busybox (make setup)")
def test_containers_talk_where_forward_drops_by_default(tmp_path: Path) -> None:
    """On a host whose FORWARD policy is DROP (Docker sets it), two containers of a network
    reach each other through the network's rules, and only through them."""
    from lamina.runtime.network import attach, detach
    from lamina.runtime.netteardown import teardown_network

    suffix = os.urandom(3).hex()
    network = NetworkConfig(name=f"lmt{suffix}", bridge=f"lmt{suffix}",
                            subnet="10.91.252.0/24")
    state = tmp_path / "state"

    def ping(source, target) -> int:
        return subprocess.run(["nsenter", f"--net={source.netns_path}", "busybox", "ping",
                               "-c", "1", "-W", "1", target.ip_address],
                              capture_output=True).returncode

    def scenario() -> tuple[int, int]:
        iptables("-P FORWARD DROP")
        one = attach(f"{network.name}-1", network=network, state_root=state)
        try:
            two = attach(f"{network.name}-2", network=network, state_root=state)
            try:
                with_rules = ping(one, two)
                netrules.remove(network)
                without = ping(one, two)
            finally:
                detach(two, state_root=state)
        finally:
            detach(one, state_root=state)
            teardown_network(network)   # the bridge goes with this namespace anyway
        return with_rules, without

    with_rules, without = in_private_netns(scenario)
    assert with_rules == 0
    assert without != 0
