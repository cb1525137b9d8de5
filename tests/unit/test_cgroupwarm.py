"""runtime.cgroupwarm: lamina takes the kernel's cgroup-migration lock ahead of the runtime,
without ever moving itself to another cgroup."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lamina.runtime.cgroupwarm import own_procs_file

HYBRID = """\
9:name=systemd:/
8:pids:/user.slice
4:memory:/process_api/62e7
0::/
"""


def test_the_first_v1_hierarchy_and_the_process_s_own_path_are_chosen():
    assert own_procs_file(HYBRID) == "/sys/fs/cgroup/systemd/cgroup.procs"
    assert own_procs_file("8:pids:/user.slice/\n", root="/r") == \
        "/r/pids/user.slice/cgroup.procs"
    assert own_procs_file("3:cpu,cpuacct:/a\n") == "/sys/fs/cgroup/cpu,cpuacct/a/cgroup.procs"


@pytest.mark.parametrize("text", ["0::/\n", "0::/user.slice/x.scope\n", "", "garbage\n",
                                  "5::/\n"])
def test_no_v1_hierarchy_means_nothing_to_warm(text):
    assert own_procs_file(text) is None


@pytest.mark.skipif(own_procs_file(Path("/proc/self/cgroup").read_text()) is None
                    or os.geteuid() != 0, reason="needs root on a host with cgroup v1")
def test_warming_leaves_the_process_where_it_was_and_ends_by_itself():
    # In a child: the warmer runs a thread and writes to a cgroup file for a while.
    code = textwrap.dedent("""
        import time
        from lamina.runtime import cgroupwarm
        before = open("/proc/self/cgroup").read()
        cgroupwarm.start(seconds=0.3)
        time.sleep(0.05)
        assert cgroupwarm._state["running"], "the warmer did not start"
        cgroupwarm.start(seconds=0.3)       # extends the running one
        deadline = time.monotonic() + 3
        while cgroupwarm._state["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cgroupwarm._state["running"], "the warmer did not end"
        assert open("/proc/self/cgroup").read() == before
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert (out.returncode, out.stdout) == (0, "ok\n"), out.stderr
