"""What the fast ``lamina run`` path keeps true (fixtures: test_run_helpers.py): containers on
the default bridge reach each other through the network's own iptables rules (installed once,
not per container), ``--network none`` has ``lo`` up in the runtime's own namespace, and a
``--rm`` run leaves nothing behind (the fixtures check mounts, namespaces, records)."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from lamina.runtime import netrules
from lamina.runtime.network import DEFAULT_NETWORK
from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    INDEX_HTML, busybox_tar, default_network_teardown, lamina, make_image, needs_runtime, root)

pytestmark = needs_runtime


def saved_rules() -> list[str]:
    return subprocess.run(["iptables-save"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_containers_on_the_bridge_reach_each_other(lamina):
    server = lamina("run", "-d", "--name", "web", "busybox",
                    "httpd", "-f", "-p", "8080", "-h", "/www")
    assert server.returncode == 0, server.stderr
    ip = json.loads(lamina("inspect", "web").stdout)[0]["NetworkSettings"]["IPAddress"]
    # busybox's wget crashes in a static build (its resolver); nc speaks the HTTP here.
    request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080"
    client = lamina("run", "--rm", "busybox", "sh", "-c",
                    f"for i in $(seq 50); do {request} && exit; sleep 0.1; done; exit 1")
    assert client.returncode == 0, client.stderr
    assert client.stdout.startswith("HTTP/1.1 200 OK") and client.stdout.endswith(INDEX_HTML)
    # The network's rules are there once, whatever the number of containers.
    rules = saved_rules()
    for table, lines in netrules.network_rules(DEFAULT_NETWORK).items():
        for line in lines:
            assert rules.count(line) == 1, line
    assert lamina("rm", "-f", "web").returncode == 0


def test_a_container_on_the_bridge_has_no_rules_of_its_own(lamina):
    # CNI names a per-container rule by the container's id (in its comment): while the
    # container runs, and after it is gone, no rule may name it. (Other test workers' rules
    # come and go meanwhile: only this container's id is looked for.)
    started = lamina("run", "-d", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert len(cid) == 64, cid
    assert [line for line in saved_rules() if cid in line] == []
    assert lamina("rm", "-f", cid).returncode == 0
    assert [line for line in saved_rules() if cid in line] == []


def test_none_network_has_only_lo_and_it_is_up(lamina):
    script = "ip -o link show; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo pong"
    out = lamina("run", "--rm", "--network", "none", "busybox", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    links, pong = out.stdout.splitlines()[:-1], out.stdout.splitlines()[-1]
    assert [line.split(": ")[1] for line in links] == ["lo"]
    assert "UP" in links[0].split()[2] and pong == "pong"


ROOT_MOUNT = "grep ' / / ' /proc/self/mountinfo"


def test_only_rm_runs_skip_the_syncs_of_their_root(lamina):
    # --rm: its changes go with it, so its overlay is volatile (as podman's): no sync of the
    # whole disk when it is unmounted. A kept container's root is synced as usual.
    thrown_away = lamina("run", "--rm", "--network", "none", "busybox", "sh", "-c", ROOT_MOUNT)
    assert "volatile" in thrown_away.stdout, thrown_away.stdout + thrown_away.stderr
    kept = lamina("run", "--name", "kept", "--network", "none", "busybox", "sh", "-c", ROOT_MOUNT)
    assert kept.returncode == 0 and "overlay" in kept.stdout and "volatile" not in kept.stdout


def test_a_kept_containers_files_survive_its_run(lamina):
    assert lamina("run", "--name", "kept", "--network", "none", "busybox", "sh", "-c",
                  "echo data > /kept").returncode == 0
    again = lamina("start", "-a", "kept")
    assert again.returncode == 0, again.stderr
    out = lamina("cp", "kept:/kept", "-")
    assert out.returncode == 0 and "data" in out.stdout, shlex.quote(out.stderr)


# What a command imported by the time it exits: its own main, then sys.modules on the way out.
IMPORTED = """
import os, sys
import lamina_startup
lamina_startup.install()
from lamina.cli.main import main
slow = {"typing", "inspect", "argparse", "_hashlib", "datetime", "gettext", "ipaddress",
        "bz2", "lzma"}
exit_ = os._exit
def report(code):
    sys.stderr.write("IMPORTED " + repr(sorted(slow & set(sys.modules))) + "\\n")
    exit_(code)
os._exit = report
sys.argv = ["lamina", *sys.argv[1:]]
main()
"""


def test_a_run_and_a_build_import_none_of_the_slow_modules(lamina, root, tmp_path):
    """Start-up time, on the commands themselves (imports inside functions included): a
    `run --rm` and a build whose COPY ran leave out typing, inspect, argparse, OpenSSL's
    hashlib, datetime, ipaddress, bz2 and lzma (1-7 ms each). The image is unpacked first:
    unpacking hashes megabytes, which is OpenSSL's job."""
    src = Path(__file__).resolve().parents[2] / "src"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY app.txt /app/\nCMD [\"true\"]\n")
    (ctx / "app.txt").write_text("app\n")
    env = {"LAMINA_ROOT": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "PYTHONPATH": str(src)}
    assert lamina("run", "--rm", "--network", "none", "busybox", "true").returncode == 0
    for args in (["run", "--rm", "--network", "none", "busybox", "true"],
                 ["build", "-q", "--network", "none", str(ctx)]):
        done = subprocess.run([sys.executable, "-S", "-c", IMPORTED, *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "IMPORTED []" in done.stderr.splitlines(), (args, done.stderr)
