"""`run_container(one_call=True)`: one `crun run` instead of create, start and delete (what
``lamina run`` does in the foreground without -t). What a user sees must be what the three
calls give: the container's status and output, Docker's 125/126/127 with the error said once,
signals passed on, the pid reported, nothing left in the runtime or mounted
(fixtures: test_runtime_run.py)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamina.runtime import RunOptions, run_container
from lamina.runtime.crun import Runtime
from lamina.runtime.errors import CommandNotFoundError, CommandNotInvokableError
from lamina.runtime.rootfs import unmount
from tests.integration.test_runtime_run import (  # noqa: F401  (fixtures)
    _leftovers, busybox, layer, nothing_left_behind, pytestmark)


@pytest.fixture
def run(tmp_path, busybox, capfd):
    """Run a container with one runtime call; (exit status, stdout, stderr, started pids)."""
    def go(*command: str, lowers=None, **options):
        options.setdefault("remove", True)
        started: list[int] = []
        status = run_container(state_dir=tmp_path / "state", lowers=lowers or [busybox],
                               image_config={}, options=RunOptions(command=list(command),
                                                                   **options),
                               on_started=started.append, one_call=True)
        out, err = capfd.readouterr()
        return status, out, err, started
    return go


def test_status_output_and_the_pid(run):
    status, out, err, started = run("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (status, out, err) == (3, "out\n", "err\n")
    assert len(started) == 1 and started[0] > 1


def test_missing_command_is_127_and_reported_once(run, capfd):
    with pytest.raises(CommandNotFoundError) as err:
        run("no-such-command")
    assert err.value.exit_code == 127 and "no-such-command" in str(err.value)
    assert capfd.readouterr() == ("", "")       # the runtime's own copy of the error is not shown


def test_not_executable_is_126_and_never_started(run, layer):
    lowers, top = layer
    (top / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (top / "script.sh").chmod(0o644)
    started: list[int] = []
    with pytest.raises(CommandNotInvokableError) as err:
        run_container(state_dir=top.parent / "s", lowers=lowers, image_config={},
                      options=RunOptions(command=["/script.sh"], remove=True),
                      on_started=started.append, one_call=True)
    assert err.value.exit_code == 126 and started == []


def test_script_with_a_missing_interpreter_is_127(run, layer, capfd):
    lowers, top = layer
    (top / "script.sh").write_text("#!/bin/bash\necho hi\n")
    (top / "script.sh").chmod(0o755)
    with pytest.raises(CommandNotFoundError):
        run("/script.sh", lowers=lowers)
    assert capfd.readouterr() == ("", "")


def test_a_kept_container_keeps_its_changes(run, tmp_path):
    assert run("sh", "-c", "echo kept > /file", remove=False)[0] == 0
    uppers = list((tmp_path / "state").glob("*/upper/file"))
    assert [p.read_text() for p in uppers] == ["kept\n"]


CHILD = """
import json, sys
from pathlib import Path
from lamina.runtime import RunOptions, run_container
spec = json.loads(sys.argv[1])
sys.exit(run_container(state_dir=Path(spec["state"]), lowers=[Path(spec["rootfs"])],
                       image_config={}, options=RunOptions(command=spec["command"], remove=True),
                       one_call=True))
"""


def _child(tmp_path: Path, busybox: Path, command: list[str]) -> subprocess.Popen:
    spec = {"state": str(tmp_path / "state"), "rootfs": str(busybox), "command": command}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigint_reaches_the_container(tmp_path, busybox):
    script = "trap 'echo interrupted; exit 130' INT; echo ready; while :; do sleep 0.1; done"
    child = _child(tmp_path, busybox, ["sh", "-c", script])
    try:
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (child.returncode, out, err) == (130, b"interrupted\n", b"")


def test_a_container_killed_by_a_signal_exits_128_plus_the_signal(tmp_path, busybox):
    child = _child(tmp_path, busybox, ["sh", "-c", "echo ready; sleep 30"])
    try:
        assert child.stdout.readline() == b"ready\n"
        mine = [c for c in _leftovers(tmp_path)[1] if c.get("status") == "running"]
        Runtime().kill(mine[0]["id"], signal.SIGKILL)          # as `docker kill` does
        assert child.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_container_goes_when_its_lamina_is_killed(tmp_path, busybox):
    """crun dies with its lamina (SIGKILL: no clean-up of ours runs); the container is then
    an orphan whose runtime state remains, for the next command's sweep."""
    child = _child(tmp_path, busybox, ["sh", "-c", "echo ready; sleep 30"])
    assert child.stdout.readline() == b"ready\n"
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while (crun := [p for p in Path("/proc").glob("[0-9]*") if _is_our_crun(p, tmp_path)]) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert crun == []
    for c in _leftovers(tmp_path)[1]:       # what the sweep does (runtime/containers.py)
        Runtime().delete(c["id"], force=True)
    for merged in (tmp_path / "state").glob("*/merged"):
        unmount(merged)


def _is_our_crun(proc: Path, tmp_path: Path) -> bool:
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"crun") and any(str(tmp_path).encode() in a
                                                             for a in argv)
