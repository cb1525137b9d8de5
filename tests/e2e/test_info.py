"""``lamina info`` as a user runs it: what lamina uses here and why, with the state root's
counts, on a state root of the test's own."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina import __version__, api
from lamina.store import Store
from tests.helpers_images import make_image

LAMINA = Path(sys.executable).with_name("lamina")


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def lamina(root, tmp_path):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        # A LAMINA_RUNTIME of the user's would change the runtime info reports: tests set it.
        full = {**{k: v for k, v in os.environ.items() if k != "LAMINA_RUNTIME"},
                "LAMINA_ROOT": str(root), "DOCKER_CONFIG": str(tmp_path / "docker"), **env}
        return subprocess.run([str(LAMINA), *args], capture_output=True, text=True, env=full,
                              timeout=60)
    return run


def fields(text: str) -> dict[str, str]:
    """Top-level ``Key: value`` lines (the indented details are left out)."""
    return dict(line.split(": ", 1) for line in text.splitlines()
                if ": " in line and not line.startswith(" "))


def test_info_on_a_fresh_machine_creates_nothing(lamina, root, tmp_path):
    out = lamina("info")
    assert out.returncode == 0, out.stderr
    top = fields(out.stdout)
    assert top["Version"] == __version__
    assert top["State Root"] == f"{root} (from LAMINA_ROOT)"
    assert top["Kernel Version"] == os.uname().release
    assert top["Storage Driver"] == "overlay"
    assert (top["Images"], top["Containers"], top["Volumes"]) == ("0", "0", "0")
    assert f" Credentials: {tmp_path / 'docker' / 'config.json'} (absent)" in out.stdout
    assert not root.exists()


def test_info_counts_what_the_state_root_holds(lamina, root):
    store = Store.open(root)
    make_image(store, layers=1, tag="a:1", seed="a")
    make_image(store, layers=1, tag="b:1", seed="b")
    api.create_volume("data", store=store)
    (root / "config.json").write_text(json.dumps(
        {"registry-mirrors": ["https://mirror.example.com"],
         "insecure-registries": ["10.0.0.0/8"]}))
    out = lamina("info")
    assert out.returncode == 0, out.stderr
    top = fields(out.stdout)
    assert (top["Images"], top["Containers"], top["Volumes"]) == ("2", "0", "1")
    assert " Mirrors: https://mirror.example.com" in out.stdout
    assert " Insecure Registries: 10.0.0.0/8, loopback" in out.stdout
    assert f" Config: {root / 'config.json'}\n" in out.stdout


@pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed")
def test_info_names_the_runtime_its_version_and_why(lamina):
    out = lamina("info")
    top = fields(out.stdout)
    assert top["Runtime"] == "crun"
    version = subprocess.run(["crun", "--version"], capture_output=True, text=True).stdout
    assert f" Version: {version.split()[2]}" in out.stdout
    assert f" Path: {shutil.which('crun')}" in out.stdout
    assert top["Cgroup Version"] in ("1", "1 (hybrid)", "2")
    assert " Hybrid Workaround: " in out.stdout
    if shutil.which("runc"):
        chosen = fields(lamina("info", LAMINA_RUNTIME="runc").stdout)
        assert chosen["Runtime"] == "runc"
    missing = lamina("info", LAMINA_RUNTIME="no-such-runtime")
    assert missing.returncode == 0 and fields(missing.stdout)["Runtime"] == "none found"
    assert "WARNING: no OCI runtime: LAMINA_RUNTIME=no-such-runtime" in missing.stdout


def test_info_json_has_the_same_facts(lamina, root):
    text = fields(lamina("info").stdout)
    obj = json.loads(lamina("info", "--format", "json").stdout)
    assert obj["storage"]["root"] == str(root) and obj["storage"]["driver"] == "overlay"
    assert obj["kernel"] == text["Kernel Version"]
    assert obj["runtime"]["cgroup_version"] == text["Cgroup Version"]
    assert set(obj["network"]["plugins_needed"]) >= {"bridge", "host-local"}
    assert obj["network"]["plugin_dir"] == "/usr/lib/cni"
    assert obj["images"] == 0
    bad = lamina("info", "--format", "yaml")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
