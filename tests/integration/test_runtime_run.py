"""`run_container` for real: crun, an overlay over a busybox root file system, real signals.

Every test checks afterwards that nothing is left behind: no mount under its directory and no
container in the runtime's state (and cleans up and fails if there is).
"""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from lamina.runtime import RunOptions, parse_bytes, run_container
from lamina.runtime.crun import Runtime
from lamina.runtime.errors import (CommandNotFoundError, CommandNotInvokableError,
                                   ContainerError)
from lamina.runtime.rootfs import unmount

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("crun") or not Path("/bin/busybox").exists(),
    reason="needs root, crun and busybox-static")

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n"


@pytest.fixture(scope="session")
def busybox(tmp_path_factory) -> Path:
    """A busybox root file system (PLATFORM.md section 4), built once per session."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture
def layer(tmp_path, busybox):
    """A second layer over busybox, for tests that need extra files: returns (lowers, dir)."""
    top = tmp_path / "layer"
    top.mkdir()
    return [top, busybox], top


def _leftovers(path: Path) -> tuple[list[str], list[dict]]:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(path))]
    containers = [c for c in Runtime().list() if str(c.get("bundle", "")).startswith(str(path))]
    return mounts, containers


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    mounts, containers = _leftovers(tmp_path)
    for c in containers:
        Runtime().delete(c["id"], force=True)
    for point in reversed(mounts):
        unmount(Path(point))
    assert (mounts, containers) == ([], [])


@pytest.fixture
def run(tmp_path, busybox, capfd):
    """Run a container; (exit status, stdout, stderr)."""
    def go(*command: str, image: dict | None = None, lowers=None, network=None, **options):
        options.setdefault("remove", True)
        status = run_container(state_dir=tmp_path / "state", lowers=lowers or [busybox],
                               image_config=image or {}, network=network,
                               options=RunOptions(command=list(command), **options))
        out, err = capfd.readouterr()
        return status, out, err
    return go


# --- running and exit codes -------------------------------------------------------------------

def test_echo_hello(run, tmp_path):
    assert run("echo", "hello") == (0, "hello\n", "")
    assert list((tmp_path / "state").iterdir()) == []      # --rm removed the container's dir


def test_exit_status_is_the_containers(run):
    assert run("sh", "-c", "exit 3")[0] == 3


def test_stderr_is_passed_through(run):
    assert run("sh", "-c", "echo out; echo err >&2; exit 1") == (1, "out\n", "err\n")


def test_image_entrypoint_and_cmd(run):
    image = {"Entrypoint": ["echo", "entry"], "Cmd": ["default"]}
    assert run(image=image)[1] == "entry default\n"
    assert run("given", image=image)[1] == "entry given\n"
    assert run("x", image=image, entrypoint="/bin/echo")[1] == "x\n"   # CMD dropped
    assert run(image={"Cmd": ["sh", "-c", "echo $0"]})[1] == "sh\n"


def test_missing_command_is_127_and_reported_once(run, capfd):
    with pytest.raises(CommandNotFoundError) as err:
        run("no-such-command")
    assert err.value.exit_code == 127
    assert "no-such-command" in str(err.value)
    assert capfd.readouterr() == ("", "")       # the runtime's own copy of the error is not shown


def test_file_that_is_not_executable_is_126(run, layer):
    lowers, top = layer
    (top / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (top / "script.sh").chmod(0o644)
    with pytest.raises(CommandNotInvokableError) as err:
        run("/script.sh", lowers=lowers)
    assert err.value.exit_code == 126
    with pytest.raises(CommandNotInvokableError):
        run("/etc", lowers=lowers)                     # a directory


def test_script_with_a_missing_interpreter_is_127(run, layer, capfd):
    lowers, top = layer
    (top / "script.sh").write_text("#!/bin/bash\necho hi\n")
    (top / "script.sh").chmod(0o755)
    with pytest.raises(CommandNotFoundError):
        run("/script.sh", lowers=lowers)
    assert capfd.readouterr() == ("", "")


def test_no_command_fails_before_anything_is_made(run, tmp_path):
    with pytest.raises(ContainerError, match="no command specified") as err:
        run()
    assert err.value.exit_code == 125
    assert not (tmp_path / "state").exists()


# --- the process: env, working dir, user, hostname -------------------------------------------

def test_env_and_workdir(run):
    image = {"Env": ["FROM_IMAGE=1", "OVERRIDDEN=image"], "WorkingDir": "/srv"}
    status, out, _ = run("sh", "-c", 'echo "$FROM_IMAGE $OVERRIDDEN $ADDED $HOME"; pwd',
                         image=image, env=["OVERRIDDEN=run", "ADDED=yes"])
    assert (status, out) == (0, "1 run yes /root\n/srv\n")
    assert run("pwd", workdir="/a/new/dir")[1] == "/a/new/dir\n"   # created, as Docker does


def test_user_nobody(run):
    status, out, _ = run("id", user="nobody")
    assert (status, out) == (0, "uid=65534(nobody) gid=65534(nogroup)\n")
    assert run("id", "-G", user="app")[1] == "1000 10\n"             # supplementary groups
    assert run("sh", "-c", "id -u; id -g", user="4242:4343")[1] == "4242\n4343\n"


def test_unknown_user_is_125(run):
    with pytest.raises(ContainerError) as err:
        run("id", user="foo")
    assert str(err.value) == "unable to find user foo: no matching entries in passwd file"
    assert err.value.exit_code == 125


def test_hostname(run):
    out = run("sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME", hostname="web1")[1]
    assert out == "web1\nweb1\nweb1\n"
    default = run("hostname")[1].strip()
    assert len(default) == 12 and all(c in "0123456789abcdef" for c in default)


def test_etc_hosts_and_resolv_conf(run):
    out = run("sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf", hostname="web1")[1]
    hosts, resolv = out.split("---\n")
    assert "127.0.0.1\tlocalhost\n" in hosts and "::1\tlocalhost" in hosts
    assert "\tweb1\n" in hosts
    host_servers = [l for l in Path("/etc/resolv.conf").read_text().splitlines()
                    if l.startswith("nameserver") and not l.split()[1].startswith("127.")]
    assert all(s in resolv for s in host_servers) and "nameserver" in resolv


# --- file systems ----------------------------------------------------------------------------

def test_read_only_root(run):
    status, _, err = run("touch", "/x", read_only=True)
    assert status == 1 and "Read-only file system" in err
    assert run("sh", "-c", "touch /dev/shm/ok && echo ok", read_only=True)[1] == "ok\n"
    assert run("sh", "-c", "touch /tmp/ok && echo ok", read_only=True, tmpfs=["/tmp"])[1] == "ok\n"


def test_bind_mounts(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    assert run("cat", "/data/hello.txt", binds=[f"{data}:/data"])[1] == "from the host\n"
    run("sh", "-c", "echo back > /data/new.txt", binds=[f"{data}:/data"])
    assert (data / "new.txt").read_text() == "back\n"
    status, _, err = run("touch", "/data/x", binds=[f"{data}:/data:ro"])
    assert status == 1 and "Read-only" in err
    made = tmp_path / "made-by-v"
    assert run("true", binds=[f"{made}:/m"])[0] == 0 and made.is_dir()   # -v creates it


def test_changes_land_in_the_upper_dir_only(run, layer, tmp_path):
    lowers, top = layer
    (top / "kept.txt").write_text("lower\n")
    script = "echo new > /new.txt; echo changed > /kept.txt; rm /etc/group; mkdir -p /var/x"
    assert run("sh", "-c", script, lowers=lowers, remove=False)[0] == 0
    [cdir] = (tmp_path / "state").iterdir()
    upper = cdir / "upper"
    assert (upper / "new.txt").read_text() == "new\n"
    assert (upper / "kept.txt").read_text() == "changed\n"
    assert (upper / "var" / "x").is_dir()
    assert os.stat(upper / "etc" / "group").st_rdev == 0            # a whiteout
    assert (top / "kept.txt").read_text() == "lower\n"
    assert (lowers[1] / "etc" / "group").read_text() == GROUP
    assert not (top / "new.txt").exists() and not (lowers[1] / "new.txt").exists()
    assert not os.path.ismount(cdir / "merged")                    # unmounted after the exit


def test_the_hosts_files_are_invisible(run):
    sentinel = Path("/tmp") / f"lamina-sentinel-{uuid.uuid4().hex}"
    sentinel.write_text("host only")
    try:
        status, _, _ = run("ls", str(sentinel))
        assert status != 0
        assert run("ls", "/")[1].split() == sorted(
            ["bin", "dev", "etc", "home", "proc", "root", "sys", "tmp"])
    finally:
        sentinel.unlink()


def test_seccomp_and_capabilities_are_dockers(run):
    out = run("grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status")[1]
    assert out.split() == ["CapEff:", "00000000a80425fb", "Seccomp:", "2"]
    status, _, err = run("hostname", "other")                      # sethostname: EPERM
    assert status == 1


def test_crun_gets_the_filter_compiled(run, tmp_path):
    assert run("true", remove=False)[0] == 0
    [cdir] = (tmp_path / "state").iterdir()
    config = json.loads((cdir / "bundle" / "config.json").read_text())
    assert "run.oci.seccomp_bpf_data" in config["annotations"]
    assert config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_network_modes(run):
    def links(mode):
        return sorted(run("ls", "/sys/class/net", network_mode=mode)[1].split())
    assert links("none") == ["lo"]
    assert links("bridge") == ["lo"]          # until the CNI attachment lands
    # host: the host's own network namespace (its interface list would race with the veths
    # other test workers' containers add and remove meanwhile)
    host_netns = run("readlink", "/proc/self/ns/net", network_mode="host")[1].strip()
    assert host_netns == os.readlink("/proc/self/ns/net")
    assert "lo" in links("host")
    assert run("hostname", network_mode="host")[1].strip() == os.uname().nodename


def test_resource_limits_reach_the_cgroup(run):
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
              "2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    out = run("sh", "-c", script, memory=parse_bytes("64m"), pids_limit=50)[1]
    assert out.split() == [str(64 << 20), "50"]


@pytest.mark.slow
def test_memory_limit_kills_with_137(run):
    # busybox tail keeps the whole (newline-free) input in memory
    status, _, _ = run("sh", "-c", "head -c 200m /dev/zero | tail", memory=parse_bytes("32m"))
    assert status == 137


# --- terminals, stdin and signals -------------------------------------------------------------

def test_tty(run):
    status, out, _ = run("sh", "-c", "tty; echo $TERM", tty=True)
    assert (status, out) == (0, "/dev/pts/0\r\nxterm\r\n")


CHILD = """
import json, sys
from pathlib import Path
from lamina.runtime import RunOptions, run_container
from lamina.runtime.errors import ContainerError
spec = json.loads(sys.argv[1])
try:
    sys.exit(run_container(state_dir=Path(spec["state"]), lowers=[Path(spec["rootfs"])],
                           image_config={}, options=RunOptions(**spec["options"])))
except ContainerError as e:
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
"""


def _lamina(tmp_path, busybox, **options) -> list[str]:
    """argv of a separate lamina-like process running one container."""
    spec = {"state": str(tmp_path / "state"), "rootfs": str(busybox),
            "options": {"remove": True, **options}}
    return [sys.executable, "-c", CHILD, json.dumps(spec)]


def test_interactive_stdin(tmp_path, busybox):
    done = subprocess.run(_lamina(tmp_path, busybox, command=["sh", "-c", "cat; exit 4"],
                                  interactive=True),
                          input=b"piped in\n", capture_output=True, timeout=30)
    assert (done.returncode, done.stdout) == (4, b"piped in\n")
    done = subprocess.run(_lamina(tmp_path, busybox, command=["cat"]),
                          input=b"ignored\n", capture_output=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, b"")             # no -i: stdin is empty


def _read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    data, end = b"", time.monotonic() + timeout
    while marker not in data and time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.slow
def test_interactive_tty_through_a_real_terminal(tmp_path, busybox):
    script = "tty; stty size; read line; stty size; echo got:$line; exit 5"
    pid, fd = pty.fork()
    if pid == 0:                                   # the child: lamina on a terminal
        try:
            os.execv(sys.executable, _lamina(tmp_path, busybox, command=["sh", "-c", script],
                                             tty=True, interactive=True))
        finally:
            os._exit(127)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        seen = _read_until(fd, b"120")
        # A resize of our terminal (SIGWINCH to lamina) reaches the container's.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
        time.sleep(0.3)
        os.write(fd, b"hello\r")
        seen += _read_until(fd, b"got:hello")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"/dev/pts/0\r\n40 120\r\n" in seen and b"50 100\r\ngot:hello" in seen
    assert os.waitstatus_to_exitcode(status) == 5


@pytest.mark.slow
def test_sigint_stops_the_foreground_container(tmp_path, busybox):
    script = "trap 'echo interrupted; exit 130' INT; echo ready; while :; do sleep 0.1; done"
    child = subprocess.Popen(_lamina(tmp_path, busybox, command=["sh", "-c", script]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130 and out == b"interrupted\n"


@pytest.mark.slow
def test_a_container_killed_by_a_signal_exits_128_plus_the_signal(tmp_path, busybox):
    child = subprocess.Popen(_lamina(tmp_path, busybox, command=["sleep", "30"]))
    try:
        deadline = time.monotonic() + 10
        # once it runs: a container killed between crun's create and start never started (125)
        while not (mine := [c for c in _leftovers(tmp_path)[1] if c.get("status") == "running"]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        Runtime().kill(mine[0]["id"], signal.SIGKILL)          # as `docker kill` does
        assert child.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_network_attachment_is_joined(run, tmp_path):
    """The hook for network.attach(): its id, namespace and /etc/hosts lines are used."""
    name = f"lamina-test-{uuid.uuid4().hex[:12]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        attachment = SimpleNamespace(
            container_id=uuid.uuid4().hex, mode="bridge", netns_path=f"/run/netns/{name}",
            hosts_entries=("127.0.0.1\tlocalhost", "10.1.2.3\tweb1"))
        status, out, _ = run("sh", "-c", "stat -L -c %i /proc/self/ns/net; cat /etc/hosts",
                             hostname="web1", network=attachment)
        inode, hosts = out.split("\n", 1)
        assert status == 0 and int(inode) == os.stat(attachment.netns_path).st_ino
        assert hosts == "127.0.0.1\tlocalhost\n10.1.2.3\tweb1\n"
        with pytest.raises(ContainerError, match="attachment"):
            run("true", network=attachment, network_mode="none")
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
