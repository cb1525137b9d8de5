"""``lamina run`` with runc, the OCI runtime used where crun is missing (or chosen with
LAMINA_RUNTIME=runc): the same container as with crun, on this hybrid-cgroup host too
(fixtures: test_run_helpers.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    LAMINA, busybox_tar, default_network_teardown, lamina, make_image, needs_runtime, root)

pytestmark = [needs_runtime,
              pytest.mark.skipif(not shutil.which("runc"), reason="needs runc (make setup)")]


@pytest.fixture(autouse=True)
def with_runc(monkeypatch):
    """Every lamina command of the test (and the fixtures' clean-up) uses runc."""
    monkeypatch.setenv("LAMINA_RUNTIME", "runc")


def test_foreground_run_output_exit_code_and_network(lamina, root):
    out = lamina("run", "--rm", "busybox", "sh", "-c",
                 "ip -4 -o addr show eth0 | grep -c inet; cat /etc/os-release; exit 3")
    assert (out.returncode, out.stderr) == (3, ""), out.stderr
    assert out.stdout.splitlines()[0] == "1"
    assert "ID=busybox" in out.stdout
    assert list((root / "containers").glob("[0-9a-f]*")) == []


def test_errors_and_limits_as_with_crun(lamina):
    missing = lamina("run", "--rm", "--network", "none", "busybox", "nosuchcommand")
    assert missing.returncode == 127
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in missing.stderr
    limited = lamina("run", "--rm", "--network", "none", "--memory", "16m", "busybox",
                     "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert (limited.returncode, limited.stdout.strip()) == (0, str(16 * 1024 * 1024))


def test_detached_container_exec_stop_and_rm(lamina):
    started = lamina("run", "-d", "--network", "none", "busybox", "sh", "-c",
                     "echo up; exec sleep 60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert lamina("exec", cid, "echo", "inside").stdout == "inside\n"
    assert lamina("stop", "-t", "1", cid).returncode == 0
    deadline = time.monotonic() + 10
    while "up" not in lamina("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lamina("logs", cid).stdout == "up\n"
    assert lamina("rm", cid).returncode == 0
    assert lamina("ps", "-aq").stdout == ""


def test_unknown_runtime_is_refused_clearly(lamina, root):
    env = {**os.environ, "LAMINA_ROOT": str(root), "LAMINA_RUNTIME": "nosuch-runtime"}
    out = subprocess.run([str(LAMINA), "run", "--rm", "--network", "none", "busybox", "true"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 125
    assert "LAMINA_RUNTIME=nosuch-runtime: no such OCI runtime" in out.stderr
