"""config.json as Docker would have it: capabilities, paths, mounts, env, limits, seccomp."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.runtime import seccomp
from lamina.runtime.errors import ContainerError
from lamina.runtime.options import RunOptions, parse_bytes
from lamina.runtime.spec import (ALL_CAPS, DEFAULT_CAPS, DEFAULT_PATH, build_spec, capabilities,
                                 caps_from_mask, environment, parse_bind)
from lamina.runtime.users import ExecUser

ETC = {"/etc/hosts": Path("/c/hosts"), "/etc/hostname": Path("/c/hostname"),
       "/etc/resolv.conf": Path("/c/resolv.conf")}


def spec(options: RunOptions = RunOptions(), image: dict | None = None, **kw) -> dict:
    args = dict(args=["sh"], user=ExecUser(0, 0, (), "/root"), hostname="0123456789ab",
                rootfs=Path("/c/merged"), network="none", etc_files=ETC,
                cgroups_path="/lamina/x", seccomp_profile=seccomp.load_profile())
    args.update(kw)
    return build_spec(image or {}, options, **args)


def mount(config: dict, destination: str) -> dict:
    [m] = [m for m in config["mounts"] if m["destination"] == destination]
    return m


# --- capabilities -----------------------------------------------------------------------------

def test_dockers_fourteen_capabilities_match_its_effective_mask():
    caps = spec()["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPS)
    assert len(DEFAULT_CAPS) == 14
    assert caps_from_mask(0xA80425FB) == sorted(DEFAULT_CAPS, key=ALL_CAPS.index)
    assert "inheritable" not in caps and "ambient" not in caps


def test_cap_add_and_drop_accept_docker_spellings():
    caps = capabilities(add=["sys_admin", "CAP_NET_ADMIN"], drop=["chown", "CAP_KILL"])
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_ADMIN" in caps
    assert "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert len(caps) == 14


def test_all_means_what_lamina_has():
    mine = [c for c in ALL_CAPS if c != "CAP_SYS_RESOURCE"]
    assert capabilities(add=["ALL"], drop=["NET_RAW"], available=mine) == \
        [c for c in mine if c != "CAP_NET_RAW"]
    assert capabilities(drop=["ALL"], add=["CHOWN"]) == ["CAP_CHOWN"]
    assert capabilities(privileged=True, available=mine) == mine


def test_unknown_capability():
    with pytest.raises(ContainerError, match="unknown capability: 'CAP_FLY'"):
        capabilities(add=["CAP_FLY"])


# --- security ---------------------------------------------------------------------------------

def test_masked_and_readonly_paths_and_no_new_privileges_default():
    config = spec()
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "/sys/firmware" in config["linux"]["maskedPaths"]
    assert config["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq",
                                                "/proc/sys", "/proc/sysrq-trigger"]
    assert config["process"]["noNewPrivileges"] is False


@pytest.mark.parametrize("opt", ["no-new-privileges", "no-new-privileges:true",
                                 "no-new-privileges=true"])
def test_no_new_privileges_option(opt):
    assert spec(RunOptions(security_opt=[opt]))["process"]["noNewPrivileges"] is True


def test_seccomp_unconfined_and_unknown_security_options():
    assert "seccomp" not in spec(RunOptions(security_opt=["seccomp=unconfined"]))["linux"]
    with pytest.raises(ContainerError, match="unsupported --security-opt"):
        spec(RunOptions(security_opt=["label=disable:now"]))


def test_privileged_gets_all_caps_no_seccomp_no_masks_and_writable_sys():
    dev = {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}
    config = spec(RunOptions(privileged=True), host_devices=[dev])
    assert config["process"]["capabilities"]["bounding"] == list(ALL_CAPS)
    assert "seccomp" not in config["linux"] and "maskedPaths" not in config["linux"]
    assert "ro" not in mount(config, "/sys")["options"]
    assert config["linux"]["devices"] == [dev]
    assert config["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


# --- mounts -----------------------------------------------------------------------------------

def test_default_mounts():
    config = spec()
    assert [m["destination"] for m in config["mounts"][:7]] == [
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert "size=65536k" in mount(config, "/dev/shm")["options"]
    assert "ro" in mount(config, "/sys")["options"]
    assert "ro" in mount(config, "/sys/fs/cgroup")["options"]
    assert "gid=5" in mount(config, "/dev/pts")["options"]
    hosts = mount(config, "/etc/hosts")
    assert hosts["type"] == "bind" and hosts["source"] == "/c/hosts"
    assert "rw" in hosts["options"]


def test_read_only_root_and_etc_files():
    config = spec(RunOptions(read_only=True))
    assert config["root"] == {"path": "/c/merged", "readonly": True}
    assert "ro" in mount(config, "/etc/resolv.conf")["options"]
    assert spec()["root"]["readonly"] is False


def test_binds():
    config = spec(RunOptions(binds=["/srv/data:/data", "/etc/ssl:/ssl:ro",
                                    "/a:/data/deeper/:rw,rshared"]))
    assert mount(config, "/data") == {"destination": "/data", "type": "bind",
                                      "source": "/srv/data", "options": ["rbind", "rprivate", "rw"]}
    assert mount(config, "/ssl")["options"] == ["rbind", "rprivate", "ro"]
    assert mount(config, "/data/deeper")["options"] == ["rbind", "rshared", "rw"]
    dests = [m["destination"] for m in config["mounts"]]
    assert dests.index("/data") < dests.index("/data/deeper")


@pytest.mark.parametrize("bad", ["/only", "relative:/x", "/a:rel", "/a:/", "/a:/b:bogus",
                                 "/a:/b:ro:x"])
def test_bad_binds(bad):
    with pytest.raises(ContainerError):
        parse_bind(bad)


def test_tmpfs_options_over_dockers_defaults():
    config = spec(RunOptions(tmpfs=["/run", "/tmp:exec,size=64m,mode=1777"]))
    assert mount(config, "/run") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                     "options": ["nosuid", "noexec", "nodev"]}
    assert mount(config, "/tmp")["options"] == ["nosuid", "nodev", "exec", "size=64m",
                                                "mode=1777"]


def test_a_user_mount_replaces_a_default_one():
    config = spec(RunOptions(tmpfs=["/dev/shm:size=1g"], binds=["/mine:/etc/hosts:ro"]))
    assert "size=1g" in mount(config, "/dev/shm")["options"]
    assert mount(config, "/etc/hosts")["source"] == "/mine"


# --- process ----------------------------------------------------------------------------------

def test_environment_order_and_overrides():
    env = environment(["PATH=/opt/bin:/usr/bin", "LANG=C.UTF-8", "A=image"],
                      ["A=run", "B=run", "LANG"], hostname="h", tty=True, home="/root")
    assert env == ["PATH=/opt/bin:/usr/bin", "HOSTNAME=h", "TERM=xterm", "A=run", "B=run",
                   "HOME=/root"]


def test_environment_defaults():
    assert environment([], [], hostname="abc", tty=False, home="/home/app") == [
        f"PATH={DEFAULT_PATH}", "HOSTNAME=abc", "HOME=/home/app"]
    assert environment([], ["HOME=/x", "HOSTNAME=y"], hostname="abc", tty=False, home="/") == [
        f"PATH={DEFAULT_PATH}", "HOSTNAME=y", "HOME=/x"]


def test_process_fields():
    image = {"Env": ["X=1"], "WorkingDir": "/app"}
    user = ExecUser(1000, 1000, (10, 29), "/home/app")
    config = spec(RunOptions(tty=True, env=["Y=2"]), image, user=user, console_size=(40, 120))
    proc = config["process"]
    assert proc["terminal"] is True
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert proc["cwd"] == "/app"
    assert proc["consoleSize"] == {"height": 40, "width": 120}
    assert "X=1" in proc["env"] and "Y=2" in proc["env"] and "TERM=xterm" in proc["env"]
    assert spec(RunOptions(workdir="/w"), image)["process"]["cwd"] == "/w"
    assert config["hostname"] == "0123456789ab"


# --- namespaces -------------------------------------------------------------------------------

def _namespaces(config):
    return {n["type"]: n.get("path") for n in config["linux"]["namespaces"]}


def test_network_namespaces():
    assert _namespaces(spec()) == {"pid": None, "ipc": None, "uts": None, "mount": None,
                                   "network": None}
    assert "network" not in _namespaces(spec(network="host"))
    assert _namespaces(spec(network=Path("/run/netns/x")))["network"] == "/run/netns/x"


# --- resources --------------------------------------------------------------------------------

def test_resources():
    res = spec(RunOptions(memory=parse_bytes("32m"), cpus=1.5, pids_limit=100))["linux"]
    assert res["cgroupsPath"] == "/lamina/x"
    r = res["resources"]
    assert r["memory"] == {"limit": 32 << 20, "swap": 64 << 20}
    assert r["cpu"] == {"quota": 150000, "period": 100000}
    assert r["pids"] == {"limit": 100}
    assert r["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "access": "rwm", "major": 1, "minor": 3} in r["devices"]
    assert set(spec()["linux"]["resources"]) == {"devices"}
    assert "pids" not in spec(RunOptions(pids_limit=-1))["linux"]["resources"]


@pytest.mark.parametrize("text, value", [("32m", 32 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
                                         ("1024", 1024), ("1.5G", 3 << 29), ("64MB", 64 << 20)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


def test_option_validation():
    with pytest.raises(ContainerError, match="6MB"):
        RunOptions(memory=1 << 20)
    with pytest.raises(ContainerError, match="network"):
        RunOptions(network_mode="overlay")
    with pytest.raises(ContainerError, match="invalid container name"):
        RunOptions(name="-bad name")
    assert RunOptions(command=["a", "b"]).command == ("a", "b")


def test_ulimits():
    limits = spec(RunOptions(ulimits=["nofile=1024:4096", "nproc=-1", "core=0"]))
    assert limits["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
        {"type": "RLIMIT_NPROC", "soft": 2**64 - 1, "hard": 2**64 - 1},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    assert "rlimits" not in spec()["process"]      # inherited, as Docker's from dockerd
    for bad in ("nofile", "files=1", "nofile=9:1", "nofile=a"):
        with pytest.raises(ContainerError, match="ulimit"):
            spec(RunOptions(ulimits=[bad]))


# --- seccomp ----------------------------------------------------------------------------------

def test_the_shipped_profile_for_dockers_caps_on_amd64():
    oci = seccomp.to_oci(seccomp.load_profile(), DEFAULT_CAPS, arch="amd64")
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = {n for rule in oci["syscalls"] for n in rule["names"]}
    assert {"read", "clone", "arch_prctl", "chroot"} <= names
    allowed = {n for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "sethostname" not in allowed and "chroot" in allowed
    assert all(set(r) <= {"names", "action", "errnoRet", "args"} for r in oci["syscalls"])
    json.dumps(oci)


def test_the_shipped_profile_is_the_moby_format_source():
    shipped = json.loads(seccomp.PROFILE_PATHS[-1].read_text())
    assert "archMap" in shipped and any("includes" in r for r in shipped["syscalls"])


PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
    "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [], "comment": "",
         "includes": {}, "excludes": {}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["not_on_arm"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "errno": "EPERM",
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["two"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.9"}},
    ],
}


def _rules(caps, arch="amd64", kernel="6.8.0-1-amd64"):
    return [(r["names"][0], r["action"]) for r in
            seccomp.to_oci(PROFILE, caps, arch=arch, kernel=kernel)["syscalls"]]


def test_conversion_by_arch_caps_and_kernel():
    assert _rules([]) == [("read", "SCMP_ACT_ALLOW"), ("arch_prctl", "SCMP_ACT_ALLOW"),
                          ("not_on_arm", "SCMP_ACT_ALLOW"), ("mount", "SCMP_ACT_ERRNO"),
                          ("personality", "SCMP_ACT_ALLOW")]
    assert ("mount", "SCMP_ACT_ALLOW") in _rules(["CAP_SYS_ADMIN"])
    assert ("mount", "SCMP_ACT_ERRNO") not in _rules(["CAP_SYS_ADMIN"])
    assert ("two", "SCMP_ACT_ALLOW") not in _rules(["CAP_SYS_ADMIN"])
    assert ("two", "SCMP_ACT_ALLOW") in _rules(["CAP_SYS_ADMIN", "CAP_BPF"])
    arm = _rules([], arch="arm64")
    assert ("arch_prctl", "SCMP_ACT_ALLOW") not in arm
    assert ("not_on_arm", "SCMP_ACT_ALLOW") not in arm
    assert ("new", "SCMP_ACT_ALLOW") in _rules([], kernel="6.18.44-fc")


def test_conversion_output_fields():
    oci = seccomp.to_oci(PROFILE, [], arch="arm64", kernel="6.1")
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert oci["defaultErrnoRet"] == 1
    mount_rule = next(r for r in oci["syscalls"] if r["names"] == ["mount"])
    assert mount_rule == {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    pers = next(r for r in oci["syscalls"] if r["names"] == ["personality"])
    assert pers["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]


def test_seccomp_follows_the_container_caps():
    config = spec(RunOptions(cap_add=["SYS_ADMIN"]))
    allowed = {n for r in config["linux"]["seccomp"]["syscalls"]
               if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "sethostname" in allowed and "setns" in allowed


def test_compiled_filters_are_cached(tmp_path):
    oci = seccomp.to_oci(PROFILE, ["CAP_SYS_ADMIN"], arch="amd64", kernel="6.8")
    try:
        data = seccomp.cached_bpf(oci, tmp_path / "cache")
    except OSError:
        pytest.skip("libseccomp is not installed")
    assert data and len(data) % 8 == 0                      # struct sock_filter is 8 bytes
    [cached] = (tmp_path / "cache").iterdir()
    assert cached.read_bytes() == data
    cached.write_bytes(b"x" * 8)                             # the file is what is served
    assert seccomp.cached_bpf(oci, tmp_path / "cache") == b"x" * 8
    other = seccomp.to_oci(PROFILE, [], arch="amd64", kernel="6.8")
    assert seccomp.cached_bpf(other, tmp_path / "cache") != b"x" * 8


def test_filters_lamina_does_not_compile_are_left_to_the_runtime():
    with pytest.raises(ValueError):
        seccomp.compile_bpf({"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []})
