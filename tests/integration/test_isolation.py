"""Isolation (issue 9, item 4): what a default container (``lamina run`` with no options)
cannot do, and what symlinks in a build context cannot make COPY and ADD read.

Real containers through the ``lamina`` command (fixtures of tests/e2e/test_run_helpers.py),
mostly with ``--network none``. Nothing here that would harm the host if it succeeded: the
writes to /proc/sys write back the value already there (or a value the kernel refuses), no
module is really loaded (the "module" is junk) and the device read is one byte.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from lamina.errors import LaminaError
from tests.conftest_build import busybox_layer, build, image_files, store  # noqa: F401
from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    busybox_tar, default_network_teardown, lamina, make_image, needs_runtime, root)

pytestmark = needs_runtime

DOCKER_DEFAULT_CAPS = "00000000a80425fb"   # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
#   SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP


def sh(lamina, script: str, *options: str) -> subprocess.CompletedProcess:
    return lamina("run", "--rm", "--network", "none", *options, "busybox", "sh", "-c", script)


def test_capabilities_are_dockers_defaults_and_no_more(lamina):
    out = sh(lamina, "grep ^Cap /proc/self/status")
    assert out.returncode == 0, out.stderr
    caps = dict(line.split(":\t") for line in out.stdout.splitlines())
    assert caps == {"CapInh": "0000000000000000", "CapPrm": DOCKER_DEFAULT_CAPS,
                    "CapEff": DOCKER_DEFAULT_CAPS, "CapBnd": DOCKER_DEFAULT_CAPS,
                    "CapAmb": "0000000000000000"}
    # a non-root user has none at all
    out = sh(lamina, "grep ^CapEff /proc/self/status", "--user", "1000")
    assert out.stdout.split() == ["CapEff:", "0000000000000000"]


@pytest.mark.parametrize("script", [
    "mount -t tmpfs none /mnt",
    "mount -o remount,rw /proc/sys",
    "mount -o remount,rw /",
    "mount --bind /bin /mnt",
    "unshare -m sh -c 'mount -t tmpfs none /mnt'",
    "umount /proc/sys",
])
def test_cannot_mount(lamina, script):
    out = sh(lamina, f"mkdir -p /mnt; {script} && echo MOUNTED")
    assert "MOUNTED" not in out.stdout
    assert out.returncode != 0


def test_cannot_load_kernel_modules(lamina):
    out = sh(lamina, "head -c 4096 /bin/busybox > /tmp/junk.ko; insmod /tmp/junk.ko")
    assert out.returncode != 0
    assert "not permitted" in out.stderr.lower() or "operation" in out.stderr.lower(), out.stderr
    assert sh(lamina, "modprobe dummy").returncode != 0
    if not Path("/proc/sys/kernel/modules_disabled").exists():
        return   # a kernel built without modules: nothing more to check
    out = sh(lamina, "test -w /proc/sys/kernel/modules_disabled && echo WRITABLE;"
                     "echo 0 > /proc/sys/kernel/modules_disabled")   # 0: the kernel refuses it
    assert "WRITABLE" not in out.stdout
    assert "Read-only file system" in out.stderr


def test_cannot_write_proc_sys(lamina):
    for knob in ("kernel/printk_ratelimit", "vm/overcommit_ratio", "net/core/somaxconn"):
        out = sh(lamina, f"v=$(cat /proc/sys/{knob}) && echo $v > /proc/sys/{knob} "
                         "&& echo WROTE")
        assert "WROTE" not in out.stdout, knob
        assert "Read-only file system" in out.stderr, (knob, out.stderr)
    # (busybox's ``test -w`` says yes to root whatever the mount: ask the mount table)
    out = sh(lamina, "cat /proc/mounts; echo KCORE $(head -c 64 /proc/kcore | wc -c)")
    mounts = {line.split()[1]: line.split()[3].split(",") for line in out.stdout.splitlines()
              if not line.startswith("KCORE")}
    # every cgroup file system read-only (on cgroup v1 crun puts them on a small tmpfs of
    # the container's own, writable but private; runc remounts that one read-only too)
    cgroups = [line.split() for line in out.stdout.splitlines()
               if line.split()[2:3] in (["cgroup"], ["cgroup2"])]
    assert cgroups and all("ro" in c[3].split(",") for c in cgroups), cgroups
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/sys", "/proc/bus",
                 "/proc/fs", "/proc/irq"):
        if not Path(path).exists():
            continue     # not in this kernel (/proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ)
        assert "ro" in mounts.get(path, []), (path, mounts.get(path))
    assert "KCORE 0" in out.stdout      # masked


def test_cannot_see_host_processes(lamina):
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    host = subprocess.Popen(["sleep", marker])
    try:
        out = sh(lamina, "ps -o pid,args")
    finally:
        host.kill()
        host.wait()
    assert out.returncode == 0, out.stderr
    assert marker not in out.stdout
    lines = out.stdout.splitlines()[1:]
    assert lines[0].split()[0] == "1" and "sh -c" in lines[0]   # its own PID namespace
    assert len(lines) <= 3


def test_cannot_read_host_files(lamina, tmp_path):
    secret = tmp_path / f"sentinel-{secrets.token_hex(4)}"
    secret.write_text("HOST-SECRET\n")
    for script in (f"cat {secret}", f"cat /proc/1/root{secret}",
                   f"nsenter -t 1 -m cat {secret}", f"chroot /proc/1/root cat {secret}",
                   f"find / -xdev -name {secret.name}",
                   "mknod /tmp/hostdisk b 8 0 && head -c 1 /tmp/hostdisk | od"):
        out = sh(lamina, script)
        assert "HOST-SECRET" not in out.stdout, script
        assert secret.name not in out.stdout, script
        if script.startswith("mknod"):   # MKNOD is a default capability; opening is not
            assert "not permitted" in out.stderr.lower(), out.stderr


# -- COPY and ADD with hostile symlinks in the context ---------------------------------------

@pytest.fixture
def hostile_context(tmp_path) -> tuple[Path, Path]:
    """A context whose symlinks point at a secret outside it, absolutely and by climbing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("HOST-SECRET\n")
    ctx = tmp_path / "ctx"
    (ctx / "dir").mkdir(parents=True)
    (ctx / "ok.txt").write_text("fine\n")
    (ctx / "abs-secret").symlink_to(secret)
    (ctx / "abs-dir").symlink_to(outside)
    (ctx / "etc").symlink_to("/etc")
    (ctx / "up").symlink_to("..")
    (ctx / "dir" / "climb").symlink_to("../../outside")
    (ctx / "chain1").symlink_to("chain2")
    (ctx / "chain2").symlink_to("dir/climb/secret")
    return ctx, secret


SOURCES = ["abs-secret", "abs-dir/secret", "abs-dir", "etc/shadow", "up/outside/secret",
           "dir/climb/secret", "dir/climb", "chain1", "up/../outside/secret", "."]


@pytest.mark.parametrize("instruction", ["COPY", "ADD"])
def test_copy_and_add_cannot_read_outside_the_context(build, image_files, hostile_context,
                                                      instruction, record_property):
    ctx, _ = hostile_context
    held = 0
    for i, source in enumerate(SOURCES):
        try:
            build(ctx, f"FROM busybox\n{instruction} {source} /in/\n", tags=[f"t{i}"])
        except LaminaError as err:   # refused: the source resolves to nothing in the context
            assert "HOST-SECRET" not in str(err)
            held += 1
            continue
        files = image_files(f"t{i}")
        leaked = [p for p, (_, _, _, _, data) in files.items() if b"HOST-SECRET" in data]
        shadow = [p for p, (_, _, _, _, data) in files.items()
                  if p.startswith("in/") and data.startswith(b"root:")]
        assert (leaked, shadow) == ([], []), source
        held += 1
    print(f"\n{instruction}: {len(SOURCES)} hostile sources, {held} held")
    record_property("lamina_figure", ("isolation: hostile COPY/ADD sources", "held", held))


def test_cp_cannot_be_tricked_by_symlinks_in_the_container(lamina, tmp_path, record_property):
    """Symlinks made in the container point at host paths (absolutely, by climbing, through
    /proc): ``cp`` resolves them inside the container's root, in and out."""
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    (host_dir / "secret").write_text("HOST-SECRET\n")
    payload = tmp_path / "payload"
    payload.write_text("from the host\n")
    links = (f"ln -s {host_dir} /abs; ln -s ../../../../../../..{host_dir} /climb; "
             f"ln -s /proc/1/root{host_dir} /viaproc; mkdir -p {host_dir}; ")
    run = lamina("run", "-d", "--network", "none", "--name", "cptarget", "busybox", "sh", "-c",
                 links + "sleep 60")
    assert run.returncode == 0, run.stderr
    held = 0
    try:
        for link in ("abs", "climb", "viaproc"):
            copied = lamina("cp", str(payload), f"cptarget:/{link}/dropped")
            assert not (host_dir / "dropped").exists(), link       # never on the host
            if copied.returncode == 0:   # then it is in the container, where the link leads
                inside = lamina("exec", "cptarget", "cat", f"{host_dir}/dropped")
                assert inside.stdout == "from the host\n", (link, inside.stderr)
                lamina("exec", "cptarget", "rm", f"{host_dir}/dropped")
            out_dir = tmp_path / f"out-{link}"
            out_dir.mkdir()
            lamina("cp", "-L", f"cptarget:/{link}/secret", str(out_dir / "got"))
            got = out_dir / "got"
            assert not (got.exists() and "HOST-SECRET" in got.read_text()), link
            held += 1
    finally:
        lamina("rm", "-f", "cptarget")
    record_property("lamina_figure", ("isolation: hostile cp symlinks", "held", held))
