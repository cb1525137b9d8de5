"""The runtime driver's pure parts: the hybrid-cgroup detection and the error mapping."""
from __future__ import annotations

from pathlib import Path

import pytest

from lamina.runtime.crun import Runtime, log_messages, needs_hybrid_workaround, start_error
from lamina.runtime.errors import (CommandNotFoundError, CommandNotInvokableError,
                                   ContainerError)

# The shape of this machine's /proc/self/mountinfo (PLATFORM.md section 0).
HYBRID = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
PURE_V1 = "\n".join(HYBRID.splitlines()[:4]) + "\n"


def controllers(text):
    return lambda path: text


@pytest.mark.parametrize("mountinfo, ctrl, needed", [
    (HYBRID, "hugetlb\n", True),
    (HYBRID, "\n", False),              # an empty cgroup2 (systemd's hybrid): crun accepts it
    (PURE_V2, "cpu memory pids\n", False),
    (PURE_V1, "", False),
])
def test_hybrid_detection(mountinfo, ctrl, needed):
    assert needs_hybrid_workaround(mountinfo, controllers(ctrl)) is needed


def test_hybrid_detection_looks_at_the_topmost_mount():
    covered = HYBRID + "50 23 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert needs_hybrid_workaround(covered, controllers("hugetlb")) is False


def test_hybrid_detection_survives_an_unreadable_controllers_file():
    def unreadable(path):
        raise PermissionError(path)
    assert needs_hybrid_workaround(HYBRID, unreadable) is False


def test_mount_points_with_spaces_are_unescaped():
    info = HYBRID.replace("/sys/fs/cgroup/unified", "/sys/fs/cgroup/uni\\040fied")
    assert needs_hybrid_workaround(info, controllers("hugetlb")) is False


@pytest.mark.parametrize("message, kind", [
    ("executable file `nonexist` not found in $PATH: No such file or directory",
     CommandNotFoundError),
    ("open executable: Permission denied", CommandNotInvokableError),
    ("open executable: Operation not permitted", CommandNotInvokableError),
    ("exec container process `/garbage`: Exec format error", CommandNotInvokableError),
    ("exec container process (missing dynamic library?) `/s.sh`: No such file or directory",
     CommandNotFoundError),
    ('runc create failed: unable to start container process: exec: "x": '
     "executable file not found in $PATH", CommandNotFoundError),
    ("runc create failed: unable to start container process: exec /etc: permission denied",
     CommandNotInvokableError),
    ("mount `/x` to `/y`: No such file or directory", ContainerError),
    ("setrlimit `RLIMIT_NOFILE`: Operation not permitted", ContainerError),
])
def test_start_errors_get_dockers_exit_codes(message, kind):
    err = start_error(message, "/etc" if "/etc" in message else "x")
    assert type(err) is kind
    assert err.exit_code == {CommandNotFoundError: 127, CommandNotInvokableError: 126,
                             ContainerError: 125}[kind]


def test_not_found_message_is_dockers():
    err = start_error("executable file `nonexist` not found in $PATH: No such file or directory",
                      "nonexist")
    assert str(err) == 'exec: "nonexist": executable file not found in $PATH'


def test_log_messages(tmp_path):
    log = tmp_path / "log"
    log.write_text('{"msg":"a warning","level":"warning","time":"t"}\nnot json\n'
                   '{"msg":"open executable: Permission denied","level":"error","time":"t"}\n')
    assert log_messages(log) == ["open executable: Permission denied"]
    assert log_messages(tmp_path / "missing") == []


def test_argv_uses_lamina_state_root_and_the_log_syntax_of_each_runtime():
    crun = Runtime(Path("/usr/bin/crun"), workaround=False)
    assert crun.argv("state", "x") == ["/usr/bin/crun", "--root", "/run/lamina/crun", "state", "x"]
    assert crun.argv("create", log=Path("/l"))[3:5] == ["--log=file:/l", "--log-format=json"]
    runc = Runtime(Path("/usr/sbin/runc"), workaround=False)
    assert runc.argv("create", log=Path("/l"))[1:5] == ["--root", "/run/lamina/runc",
                                                        "--log=/l", "--log-format=json"]


def test_mount_points_are_unescaped_in_order():
    from lamina.runtime.mountinfo import mount_points

    text = ("22 1 8:1 / / rw - ext4 /dev/vda rw\n"
            "40 22 0:5 / /tmp/a\\040b\\134c\\011d rw - tmpfs tmpfs rw\n"
            "41 40 0:6 / /tmp/café rw - tmpfs tmpfs rw\n")   # the kernel writes UTF-8 as it is
    assert mount_points(text) == ["/", "/tmp/a b\\c\td", "/tmp/café"]
