"""Storage as a user drives it: named and anonymous volumes and the ``volume`` commands, a file
bind-mounted, --dns in resolv.conf, and what a container cannot see of the host (fixtures:
test_run_helpers.py)."""
from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest

from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    INDEX_HTML, busybox_tar, default_network_teardown, lamina, make_image, needs_runtime, root)

pytestmark = needs_runtime
HEX64 = re.compile(r"[0-9a-f]{64}")


def volume_names(lamina) -> list[str]:
    return lamina("volume", "ls", "-q").stdout.split()


def test_a_named_volumes_data_survives_its_container(lamina, root):
    out = lamina("run", "--rm", "--network", "none", "-v", "data:/data", "busybox",
                 "sh", "-c", "echo kept > /data/file")
    assert out.returncode == 0, out.stderr
    again = lamina("run", "--rm", "--network", "none", "-v", "data:/srv:ro", "busybox",
                   "sh", "-c", "cat /srv/file; touch /srv/x 2>/dev/null || echo read-only")
    assert again.stdout == "kept\nread-only\n"
    assert lamina("volume", "ls").stdout.splitlines() == ["DRIVER    VOLUME NAME",
                                                          "local     data"]
    [info] = json.loads(lamina("volume", "inspect", "data").stdout)
    assert info["Name"] == "data" and info["Driver"] == "local" and info["Scope"] == "local"
    assert Path(info["Mountpoint"]) == root / "volumes" / "data" / "_data"
    assert (Path(info["Mountpoint"]) / "file").read_text() == "kept\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])


def test_a_new_volume_is_filled_from_the_image_once(lamina, root):
    """Docker copies the image's files at the mount point into an empty volume."""
    out = lamina("run", "--rm", "--network", "none", "-v", "web:/www", "busybox",
                 "sh", "-c", "cat /www/index.html; echo changed > /www/index.html")
    assert out.stdout == INDEX_HTML
    data = root / "volumes" / "web" / "_data"
    assert oct(os.stat(data / "index.html").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(data).st_mode & 0o777) == oct(0o755)     # the image directory's
    later = lamina("run", "--rm", "--network", "none", "--mount",
                   "type=volume,source=web,target=/www", "busybox", "cat", "/www/index.html")
    assert later.stdout == "changed\n"      # not filled again: the volume is not empty
    nocopy = lamina("run", "--rm", "--network", "none", "-v", "bare:/www:nocopy", "busybox",
                    "ls", "/www")
    assert nocopy.stdout == ""


def test_image_volumes_are_anonymous_volumes_gone_with_rm(lamina, make_image, root):
    make_image("withvol", ("VOLUME /data /www",))
    out = lamina("run", "--rm", "--network", "none", "withvol", "sh", "-c",
                 "echo x > /data/f && grep -c ' /data ' /proc/mounts && cat /www/index.html")
    assert out.stdout == "1\n" + INDEX_HTML, out.stderr      # filled from the image too
    assert volume_names(lamina) == []
    # Without --rm the volume stays with the container; rm -v takes it.
    created = lamina("create", "--network", "none", "withvol", "true").stdout.strip()
    mounts = json.loads(lamina("container", "inspect", created).stdout)[0]["Mounts"]
    assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/data"),
                                                               ("volume", "/www")]
    anonymous = sorted(m["Name"] for m in mounts)
    assert sorted(volume_names(lamina)) == anonymous
    assert all(HEX64.fullmatch(name) for name in anonymous)
    # A mount at a VOLUME path replaces its anonymous volume.
    lamina("create", "--name", "covered", "-v", "named:/data", "--tmpfs", "/www", "withvol",
           "true")
    assert sorted(volume_names(lamina)) == sorted([*anonymous, "named"])
    assert lamina("rm", "-v", created, "covered").returncode == 0
    assert volume_names(lamina) == ["named"]


def test_volume_rm_refuses_a_volume_in_use_and_prune(lamina, make_image):
    make_image("withvol", ("VOLUME /data",))
    lamina("volume", "create", "--label", "app=web", "kept")
    assert lamina("volume", "ls", "--format", "{{.Name}} {{.Labels}}").stdout == \
        "kept app=web\n"
    box = lamina("create", "--network", "none", "-v", "kept:/kept", "withvol", "true")
    user = box.stdout.strip()
    refused = lamina("volume", "rm", "kept")
    assert refused.returncode == 1
    assert f"volume is in use - [{user}]" in refused.stderr
    assert lamina("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    lamina("rm", user)                      # without -v: its anonymous volume stays
    anonymous = [n for n in volume_names(lamina) if n != "kept"]
    assert len(anonymous) == 1
    pruned = lamina("volume", "prune", "-f")
    assert pruned.stdout.startswith(f"Deleted Volumes:\n{anonymous[0]}\n")
    assert volume_names(lamina) == ["kept"]     # named: only prune -a takes it
    assert lamina("volume", "prune", "-a", "-f").stdout.startswith("Deleted Volumes:\nkept\n")
    missing = lamina("volume", "rm", "kept")
    assert missing.returncode == 1 and "no such volume" in missing.stderr
    assert lamina("volume", "rm", "-f", "kept").returncode == 0


def test_bad_volume_names_are_refused(lamina):
    out = lamina("run", "--rm", "-v", "bad*name:/x", "busybox", "true")
    assert out.returncode == 125 and "invalid characters" in out.stderr
    assert lamina("volume", "ls", "-q").stdout == ""


def test_a_host_file_is_bind_mounted_as_a_file(lamina, tmp_path):
    motd = tmp_path / "motd"
    motd.write_text("welcome\n")
    missing = tmp_path / "made" / "dir"
    out = lamina("run", "--rm", "--network", "none", "-v", f"{motd}:/etc/motd:ro",
                 "-v", f"{missing}:/made", "busybox", "sh", "-c",
                 "cat /etc/motd; echo no > /etc/motd 2>/dev/null || echo ro; ls -d /made")
    assert out.stdout == "welcome\nro\n/made\n", out.stderr
    assert missing.is_dir()                 # a missing source becomes a directory


def test_dns_options_make_resolv_conf(lamina):
    out = lamina("run", "--rm", "--network", "none", "--dns", "127.0.0.1", "--dns", "::1",
                 "--dns-search", "example.com", "--dns-option", "ndots:2", "busybox",
                 "cat", "/etc/resolv.conf")
    assert out.stdout == ("nameserver 127.0.0.1\nnameserver ::1\nsearch example.com\n"
                          "options ndots:2\n")
    bad = lamina("run", "--rm", "--dns", "not-an-ip", "busybox", "true")
    assert bad.returncode == 125 and "not-an-ip is not an ip address" in bad.stderr


def test_a_container_sees_neither_host_files_nor_host_processes(lamina):
    sentinel = Path("/tmp") / f"lamina-sentinel-{secrets.token_hex(4)}"
    sentinel.write_text("host secret\n")
    try:
        out = lamina("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                     f"cat {sentinel} 2>&1; echo made > /tmp/inside; ps -o pid,comm; true")
    finally:
        sentinel.unlink()
    lines = out.stdout.splitlines()
    assert "No such file or directory" in lines[0]
    assert lines[1].split() == ["PID", "COMMAND"]
    assert [line.split()[1] for line in lines[2:]] == ["sh", "ps"]
    assert lines[2].split()[0] == "1"       # its own PID namespace: sh is init
    assert not Path("/tmp/inside").exists()


@pytest.mark.parametrize("mount, volume", [
    ("type=volume,target=/data", "/data"),
    ("type=volume,source=named,target=/data,readonly,volume-nocopy", "named:/data:ro,nocopy"),
])
def test_mount_type_volume_means_what_v_means(mount, volume):
    from lamina.cli.run import parse_mount
    from lamina.runtime.volumes import parse_volume_spec

    kind, value = parse_mount(mount)
    assert kind == "volume"
    assert parse_volume_spec(value) == parse_volume_spec(volume)
