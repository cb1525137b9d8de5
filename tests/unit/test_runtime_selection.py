"""Choosing the OCI runtime (crun, runc as the fallback, $LAMINA_RUNTIME) and fitting the spec
to runc on cgroup v1 hosts."""
from __future__ import annotations

from pathlib import Path

import pytest

from lamina.runtime.crun import Runtime, _drop_device_denials_under_wildcards, find_runtime
from lamina.runtime.errors import ContainerError
from lamina.runtime.spec import DEVICE_RULES


def fake_runtime(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_crun_first_then_runc(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LAMINA_RUNTIME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    runc = fake_runtime(tmp_path, "runc")
    assert find_runtime() == runc             # crun missing: runc is the fallback
    crun = fake_runtime(tmp_path, "crun")
    assert find_runtime() == crun
    assert Runtime().name == "crun"


def test_lamina_runtime_chooses(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_runtime(tmp_path, "crun")
    runc = fake_runtime(tmp_path, "runc")
    monkeypatch.setenv("LAMINA_RUNTIME", "runc")
    assert Runtime().binary == runc and Runtime().root.name == "runc"
    other = fake_runtime(tmp_path, "my-runtime")
    monkeypatch.setenv("LAMINA_RUNTIME", str(other))
    assert find_runtime() == other


def test_unknown_lamina_runtime_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("LAMINA_RUNTIME", "nosuch")
    with pytest.raises(ContainerError, match="LAMINA_RUNTIME=nosuch: no such OCI runtime") as e:
        find_runtime()
    assert "crun, runc" in e.value.hint and e.value.exit_code == 125


def test_no_runtime_at_all(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LAMINA_RUNTIME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ContainerError, match="no OCI runtime found"):
        find_runtime()


def test_runc_on_cgroup_v1_gets_no_denial_inside_a_wildcard() -> None:
    config = {"linux": {"resources": {"devices": [dict(r) for r in DEVICE_RULES]}}}
    _drop_device_denials_under_wildcards(config)
    kept = config["linux"]["resources"]["devices"]
    fuse = {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    assert fuse in DEVICE_RULES and fuse not in kept
    assert kept == [r for r in DEVICE_RULES if r != fuse]   # the rest as it was, in order
    # A denial no wildcard allow covers stays.
    config = {"linux": {"resources": {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "access": "m"},
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]}}}
    _drop_device_denials_under_wildcards(config)
    assert len(config["linux"]["resources"]["devices"]) == 3
