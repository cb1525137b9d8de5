"""Detached containers and the lifecycle commands, as a user drives them: ``run -d``, ``ps``,
``logs``, ``stop``, ``wait``, ``rm``, ``exec``, ``restart``, ``kill``, ``port``, ``container
prune``, a published web server, and the clean-up after a killed lamina
(fixtures: test_run_helpers.py)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    INDEX_HTML, LAMINA, busybox_tar, default_network_teardown, eventually, free_port,
    http_get, lamina, make_image, needs_runtime, root, state)

pytestmark = needs_runtime
COUNTERS = re.compile(r" \[\d+:\d+\]$")
TICKER = "echo started; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; " \
         "sleep 0.2; done"


def table(text: str) -> list[list[str]]:
    """Rows of a docker-style table: cells are padded with 3 spaces at least."""
    return [re.split(r" {3,}", line.rstrip()) for line in text.splitlines()]


def test_detached_run_ps_logs_stop_wait_rm(lamina, root):
    out = lamina("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKER)
    assert out.returncode == 0, out.stderr
    container_id = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)

    header, row = table(lamina("ps").stdout)
    assert header == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                      "NAMES"]
    assert row[:3] == [container_id[:12], "busybox", '"sh -c \'echo started…"']
    assert row[3].endswith(" ago") and row[4].startswith("Up ") and row[-1] == "ticker"

    assert eventually(lambda: "tick 2" in lamina("logs", "ticker").stdout)
    logs = lamina("logs", "ticker")
    assert logs.stdout.startswith("started\ntick 1\n") and logs.stderr == "oops\n"
    stamped = lamina("logs", "-t", "--tail", "1", "ticker").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick \d+\n", stamped)

    started = time.monotonic()
    stopped = lamina("stop", "-t", "1", "ticker")   # sh as PID 1 ignores SIGTERM: SIGKILL
    assert (stopped.returncode, stopped.stdout) == (0, "ticker\n")
    assert time.monotonic() - started < 8
    assert lamina("ps", "-q").stdout == ""
    status = lamina("ps", "-a", "--format", "{{.Status}}").stdout
    assert re.fullmatch(r"Exited \(137\) .* ago\n", status)
    assert lamina("wait", "ticker").stdout == "137\n"
    assert lamina("stop", "ticker").returncode == 0     # stopping a stopped one is fine

    removed = lamina("rm", container_id[:8])
    assert (removed.returncode, removed.stdout) == (0, f"{container_id[:8]}\n")
    assert not (root / "containers" / container_id).exists()
    gone = lamina("logs", "ticker")
    assert gone.returncode == 1 and "No such container: ticker" in gone.stderr


def test_stop_uses_the_stop_signal_and_wait_prints_the_code(lamina, make_image):
    make_image("trapper", ("STOPSIGNAL SIGUSR1",))
    lamina("run", "-d", "--name", "trap", "trapper", "sh", "-c",
           "trap 'echo bye; exit 7' USR1; while true; do sleep 0.1; done")
    started = time.monotonic()
    assert lamina("stop", "trap").returncode == 0
    assert time.monotonic() - started < 5       # no 10 s wait for SIGKILL
    assert lamina("wait", "trap").stdout == "7\n"
    assert lamina("logs", "trap").stdout == "bye\n"
    assert json.loads(lamina("inspect", "trap").stdout)[0]["State"]["ExitCode"] == 7


def test_detached_container_outlives_the_lamina_that_started_it(lamina, root):
    """`run -d` returns; the container's monitor is in its own session, not our child."""
    container_id = lamina("run", "-d", "busybox", "sleep", "60").stdout.strip()
    time.sleep(0.5)
    record = state(root, container_id)
    assert record["status"] == "running" and record["pid"] > 0
    init = record["pid"]
    monitor = int(Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert os.getsid(monitor) != os.getsid(0)
    with pytest.raises(ChildProcessError):
        os.waitpid(monitor, os.WNOHANG)         # not a child of this test either
    assert lamina("exec", container_id[:12], "true").returncode == 0


@pytest.mark.slow
def test_published_httpd_answers_on_localhost(lamina):
    port = free_port()
    out = lamina("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080", "busybox",
                 "httpd", "-f", "-p", "8080", "-h", "/www")
    assert out.returncode == 0, out.stderr
    assert http_get(f"http://127.0.0.1:{port}/") == INDEX_HTML
    assert lamina("port", "web").stdout == f"8080/tcp -> 127.0.0.1:{port}\n"
    assert lamina("port", "web", "8080").stdout == f"127.0.0.1:{port}\n"
    missing = lamina("port", "web", "9999/udp")
    assert missing.returncode == 1
    assert "No public port '9999/udp' published for web" in missing.stderr
    row = table(lamina("ps").stdout)[1]
    assert f"127.0.0.1:{port}->8080/tcp" in row
    assert lamina("rm", "-f", "web").stdout == "web\n"
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/", timeout=1)


def test_exec_in_a_running_container(lamina):
    lamina("run", "-d", "--name", "box", "busybox", "sleep", "60")
    out = lamina("exec", "-e", "GREETING=hi", "-w", "/tmp", "-u", "app", "box", "sh", "-c",
                 'echo "$GREETING $(pwd) $(id -u) $HOME"; exit 3')
    assert (out.returncode, out.stdout) == (3, "hi /tmp 1000 /home/app\n")
    assert lamina("exec", "box", "hostname").stdout.strip() == \
        lamina("inspect", "--format", "{{.Config.Hostname}}", "box").stdout.strip()
    assert lamina("exec", "-i", "box", "cat", input="piped\n").stdout == "piped\n"
    assert lamina("exec", "box", "nosuchcommand").returncode == 127
    assert lamina("exec", "-d", "box", "touch", "/tmp/from-detached-exec").returncode == 0
    assert eventually(lambda: lamina("exec", "box", "test", "-e",
                                     "/tmp/from-detached-exec").returncode == 0)
    lamina("kill", "box")
    lamina("wait", "box")
    stopped = lamina("exec", "box", "true")
    assert stopped.returncode == 1 and "is not running" in stopped.stderr


def test_restart_keeps_the_containers_files(lamina):
    lamina("create", "--name", "keeper", "--network", "none", "busybox", "sh", "-c",
           "cat /kept 2>/dev/null || echo first; echo again > /kept; rm -f /etc/os-release")
    first = lamina("start", "-a", "keeper")
    assert (first.returncode, first.stdout) == (0, "first\n")
    second = lamina("start", "-a", "keeper")
    assert (second.returncode, second.stdout) == (0, "again\n")
    assert lamina("run", "--rm", "--network", "none", "busybox", "test", "-e",
                  "/etc/os-release").returncode == 0     # the image itself is untouched
    lamina("run", "-d", "--name", "looper", "--network", "none", "busybox", "sleep", "60")
    before = state_of(lamina, "looper")
    assert lamina("restart", "-t", "0", "looper").stdout == "looper\n"
    after = state_of(lamina, "looper")
    assert after["Status"] == "running" and after["StartedAt"] > before["StartedAt"]


def state_of(lamina, name: str) -> dict:
    return json.loads(lamina("inspect", name).stdout)[0]["State"]


def test_kill_with_a_signal_and_errors(lamina):
    lamina("run", "-d", "--name", "killme", "--network", "none", "busybox", "sh", "-c",
           "trap 'exit 12' HUP; while true; do sleep 0.1; done")
    assert lamina("kill", "-s", "HUP", "killme").stdout == "killme\n"
    assert lamina("wait", "killme").stdout == "12\n"
    not_running = lamina("kill", "killme")
    assert not_running.returncode == 1 and "is not running" in not_running.stderr
    assert lamina("kill", "-s", "NOPE", "killme").returncode == 125
    assert lamina("rm", "nosuch").returncode == 1


def test_rm_of_a_running_container_needs_force(lamina, root):
    container_id = lamina("run", "-d", "--network", "none", "busybox", "sleep", "60"
                          ).stdout.strip()
    refused = lamina("rm", container_id)
    assert refused.returncode == 1 and "container is running" in refused.stderr
    assert lamina("rm", "-f", container_id).returncode == 0
    assert not (root / "containers" / container_id).exists()


def test_rmi_refuses_the_image_of_a_container(lamina):
    lamina("create", "--name", "user", "busybox", "true")
    refused = lamina("rmi", "busybox")
    assert refused.returncode == 1 and "must force" in refused.stderr
    lamina("rm", "user")
    assert lamina("rmi", "busybox").returncode == 0


def test_detached_rm_container_removes_itself_and_wait_gets_its_code(lamina, root):
    container_id = lamina("run", "-d", "--rm", "--network", "none", "busybox", "sh", "-c",
                          "sleep 3; exit 6").stdout.strip()   # time for `wait` to start
    assert lamina("wait", container_id).stdout == "6\n"
    assert eventually(lambda: not (root / "containers" / container_id).exists())


def test_detached_start_failure_is_reported_with_dockers_code(lamina):
    out = lamina("run", "-d", "--name", "broken", "--network", "none", "busybox", "nosuch")
    assert out.returncode == 127 and "executable file not found" in out.stderr
    assert lamina("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout == \
        "broken Created\n"


def test_container_prune_and_inspect(lamina):
    lamina("run", "--name", "done", "--network", "none", "busybox", "true")
    lamina("run", "-d", "--name", "alive", "--network", "none", "busybox", "sleep", "60")
    obj = json.loads(lamina("container", "inspect", "done").stdout)[0]
    assert (obj["Name"], obj["Path"], obj["State"]["Status"]) == ("/done", "true", "exited")
    pruned = lamina("container", "prune", "-f")
    assert pruned.stdout.startswith(f"Deleted Containers:\n{obj['Id']}\n\nTotal reclaimed space:")
    assert lamina("ps", "-a", "--format", "{{.Names}}").stdout == "alive\n"


@pytest.mark.slow
def test_killed_foreground_lamina_is_cleaned_up_by_the_next_command(lamina, root):
    """kill -9 of a foreground `lamina run`: the next `lamina ps` kills the orphaned
    container and leaves no mount, namespace, runtime state or iptables rule behind."""
    rules_before = iptables_rules()
    port = free_port()
    proc = subprocess.Popen([str(LAMINA), "run", "--name", "orphan", "-p",
                             f"127.0.0.1:{port}:8080", "busybox", "sh", "-c",
                             "echo up; exec sleep 60"],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "LAMINA_ROOT": str(root)})
    assert proc.stdout.readline() == "up\n"
    record = state_by_name(root, "orphan")
    container_id, ip = record["id"], record["network"]["ip_address"]
    netns = Path(f"/run/netns/lamina-{container_id}")
    assert netns.exists() and os.path.ismount(root / "containers" / container_id / "merged")

    def of_this_container(rule: str) -> bool:
        return container_id in rule or f"{ip}/32" in rule or f"--dport {port} " in rule
    ours = {r for r in iptables_rules() - rules_before if of_this_container(r)}
    assert len(ours) > 3        # its masquerade, DNAT and FORWARD rules and their chains
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()

    out = lamina("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert re.fullmatch(r"orphan Exited \(137\) .*\n", out.stdout), out.stderr
    assert not netns.exists()
    assert not os.path.ismount(root / "containers" / container_id / "merged")
    assert not list((root / "networks").glob("*.json"))
    # Other tests may add rules of their own meanwhile: none may be this container's.
    assert {r for r in iptables_rules() - rules_before if of_this_container(r)} == set()


def state_by_name(root: Path, name: str) -> dict:
    for path in (root / "containers").glob("*/state.json"):
        record = json.loads(path.read_text())
        if record["name"] == name:
            return record
    raise AssertionError(f"no container {name}")


def iptables_rules() -> set[str]:
    """Every iptables and ip6tables line, without its counters."""
    lines = set()
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in subprocess.run([tool], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            if line.startswith("*"):
                table = line
            elif line.startswith((":", "-A ")):
                lines.add(f"{table} {COUNTERS.sub('', line)}")
    return lines
