"""``cp``, ``export`` and ``commit`` as a user drives them, on running and stopped containers;
cp kept inside the container whatever symlinks or names it meets (fixtures:
test_run_helpers.py)."""
from __future__ import annotations

import io
import json
import os
import pty
import secrets
import subprocess
import tarfile
from pathlib import Path

from tests.e2e.test_run_helpers import (  # noqa: F401  (fixtures)
    LAMINA, OS_RELEASE, PASSWD, busybox_tar, default_network_teardown, eventually, lamina,
    make_image, needs_runtime, root)

pytestmark = needs_runtime


def lamina_bytes(root: Path, *args: str, input: bytes | None = None, stdout=subprocess.PIPE
                 ) -> subprocess.CompletedProcess:
    """``lamina`` with binary standard input and output (tar streams)."""
    return subprocess.run([str(LAMINA), *args], input=input, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=60,
                          env={**os.environ, "LAMINA_ROOT": str(root), "TZ": "UTC"})


def tar_bytes(*entries: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    """A tar of (name, content) files and ready-made entries."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size, info.uid, info.gid = len(entry[1]), 1000, 1000
                tar.addfile(info, io.BytesIO(entry[1]))
    return out.getvalue()


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_cp_in_and_out_of_a_running_container(lamina, tmp_path):
    assert lamina("run", "-d", "--name", "box", "--network", "none", "busybox",
                  "sleep", "60").returncode == 0
    hello = tmp_path / "hello.txt"
    hello.write_text("hi\n")
    os.chown(hello, 1000, 1000)
    site = tmp_path / "site"
    (site / "a").mkdir(parents=True)
    (site / "a" / "b.txt").write_text("bee\n")
    (site / "link").symlink_to("a/b.txt")

    def in_box(script: str) -> str:
        return lamina("exec", "box", "sh", "-c", script).stdout

    assert lamina("cp", str(hello), "box:/tmp/").returncode == 0
    assert lamina("cp", "-a", str(hello), "box:/tmp/kept.txt").returncode == 0
    assert in_box("cat /tmp/hello.txt; stat -c %u:%g /tmp/hello.txt /tmp/kept.txt") == \
        "hi\n0:0\n1000:1000\n"
    lamina("cp", str(site), "box:/srv")             # missing: becomes /srv
    lamina("cp", str(site), "box:/srv")             # existing directory: goes into it
    lamina("cp", f"{site}/.", "box:/www")           # the contents, into the directory
    assert in_box("cat /srv/a/b.txt /srv/site/a/b.txt; readlink /srv/link; ls /www") == \
        "bee\nbee\na/b.txt\na\nindex.html\nlink\n"

    out = tmp_path / "out"
    out.mkdir()
    assert lamina("cp", "box:/etc/os-release", f"{out}/").returncode == 0
    assert lamina("cp", "box:/etc/os-release", str(out / "renamed")).returncode == 0
    assert lamina("cp", "box:/srv", str(out / "srv")).returncode == 0
    assert (out / "os-release").read_text() == (out / "renamed").read_text() == OS_RELEASE
    assert (out / "srv" / "site" / "a" / "b.txt").read_text() == "bee\n"
    assert os.readlink(out / "srv" / "link") == "a/b.txt"

    missing = lamina("cp", "box:/nonesuch", str(out))
    assert missing.returncode == 1 and "Could not find the file /nonesuch" in missing.stderr
    no_parent = lamina("cp", str(hello), "box:/no/such/place")
    assert no_parent.returncode == 125 and "no such directory" in no_parent.stderr
    to_file = lamina("cp", str(site), "box:/etc/os-release")
    assert "cannot copy a directory to the file" in to_file.stderr
    over_dir = lamina("cp", str(hello), "box:/tmp/hello.txt/")
    assert over_dir.returncode == 125


def test_cp_with_a_stopped_container_and_tar_streams(lamina, root, tmp_path):
    made = lamina("create", "--name", "ctr", "--network", "none", "busybox", "sh", "-c",
                  "cat /in/greeting; echo made > /made")
    assert made.returncode == 0
    upload = tar_bytes(("in/greeting", b"hello\n"))
    assert lamina_bytes(root, "cp", "-", "ctr:/", input=upload).returncode == 0
    assert lamina("start", "-a", "ctr").stdout == "hello\n"

    down = lamina_bytes(root, "cp", "ctr:/made", "-")
    assert down.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(down.stdout)) as tar:
        [member] = tar.getmembers()
        assert (member.name, tar.extractfile(member).read()) == ("made", b"made\n")
    assert tar_names(lamina_bytes(root, "cp", "ctr:/in", "-").stdout) == ["in", "in/greeting"]
    with tarfile.open(fileobj=io.BytesIO(lamina_bytes(root, "cp", "ctr:/in/.", "-").stdout)) \
            as tar:
        assert [(m.name, m.uid) for m in tar.getmembers()] == [("greeting", 0)]
    lamina_bytes(root, "cp", "-a", "-", "ctr:/tmp", input=upload)
    lamina("cp", "ctr:/tmp/in", str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "greeting").read_text() == "hello\n"
    assert os.stat(tmp_path / "kept" / "greeting").st_uid == os.getuid()   # the caller's
    not_a_dir = lamina_bytes(root, "cp", "-", "ctr:/made", input=upload)
    assert b"must be a directory" in not_a_dir.stderr


def test_cp_never_leaves_the_container(lamina, root, tmp_path):
    host_secret = tmp_path / "secret.txt"
    host_secret.write_text("host only\n")
    lamina("run", "--name", "ctr", "--network", "none", "busybox", "sh", "-c",
           "ln -s /etc /evil; ln -s ../../../../../../.. /up; ln -s /etc/passwd /pw")

    # Out: symlinks resolve in the container's root, never the host's.
    out = tmp_path / "out"
    out.mkdir()
    assert lamina("cp", "ctr:/evil/passwd", str(out / "passwd")).returncode == 0
    assert (out / "passwd").read_text() == PASSWD
    assert lamina("cp", "-L", "ctr:/pw", str(out / "pw")).returncode == 0
    assert (out / "pw").read_text() == PASSWD
    assert lamina("cp", "ctr:/pw", str(out / "link")).returncode == 0
    assert os.readlink(out / "link") == "/etc/passwd"       # copied as the link it is
    for escape in (f"ctr:/up{host_secret}", f"ctr:../../../../../..{host_secret}",
                   f"ctr:/evil/../../../..{host_secret}"):
        refused = lamina("cp", escape, str(out / "escaped"))
        assert refused.returncode == 1 and "Could not find the file" in refused.stderr
    assert not (out / "escaped").exists()

    # In: a destination through a symlink lands inside the container.
    name = f"lamina-cp-{secrets.token_hex(4)}"
    dropped = tmp_path / name
    dropped.write_text("dropped\n")
    assert lamina("cp", str(dropped), "ctr:/evil/").returncode == 0
    assert lamina("cp", str(dropped), "ctr:/up/tmp/").returncode == 0
    assert not Path("/etc", name).exists() and not Path("/tmp", name).exists()
    check = lamina_bytes(root, "cp", "ctr:/etc/" + name, "-")
    assert tar_names(check.stdout) == [name]

    # A tar climbing out, or writing through a symlink it makes, is refused.
    bad_name = name + "-bad"
    link = tarfile.TarInfo("hop")
    link.type, link.linkname = tarfile.SYMTYPE, "/"
    for bad in (tar_bytes((f"../../../../../../tmp/{bad_name}", b"x")),
                tar_bytes(link, (f"hop/tmp/{bad_name}", b"x"))):
        refused = lamina_bytes(root, "cp", "-", "ctr:/tmp", input=bad)
        assert refused.returncode == 125, refused.stderr
    assert not Path("/tmp", bad_name).exists()
    everything = tar_names(lamina_bytes(root, "export", "ctr").stdout)
    assert not any(n.endswith(bad_name) for n in everything)


def test_export_gives_the_merged_tree(lamina, root, tmp_path):
    lamina("run", "--name", "ctr", "--network", "none", "busybox", "sh", "-c",
           "echo hi > /new; rm /etc/os-release; mkdir -p /d/e")
    target = tmp_path / "c.tar"
    assert lamina("export", "-o", str(target), "ctr").returncode == 0
    with tarfile.open(target) as tar:
        names = tar.getnames()
        assert tar.extractfile("new").read() == b"hi\n"
    assert {"new", "bin/busybox", "bin/sh", "etc/passwd", "d/e"} <= set(names)
    assert "etc/os-release" not in names
    assert not any(".wh." in n for n in names)
    streamed = lamina_bytes(root, "export", "ctr")
    assert tar_names(streamed.stdout) == names

    primary, secondary = pty.openpty()
    try:
        refused = lamina_bytes(root, "export", "ctr", stdout=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    assert refused.returncode == 125 and b"cowardly refusing" in refused.stderr


def test_commit_makes_an_image_that_runs_with_the_change(lamina):
    lamina("run", "--name", "ctr", "--network", "none", "-e", "FROM_RUN=1", "busybox", "sh",
           "-c", "echo committed > /x; rm /etc/os-release")
    out = lamina("commit", "--change", 'CMD ["cat","/x"]', "-m", "my message", "-a", "Jane",
                 "ctr", "mine:1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sha256:") and len(out.stdout.strip()) == 71
    assert lamina("run", "--rm", "--network", "none", "mine:1").stdout == "committed\n"
    gone = lamina("run", "--rm", "--network", "none", "mine:1", "ls", "/etc/os-release")
    assert gone.returncode != 0
    [info] = json.loads(lamina("inspect", "mine:1").stdout)
    assert (info["Author"], info["Comment"]) == ("Jane", "my message")
    assert info["Config"]["Cmd"] == ["cat", "/x"]
    assert "FROM_RUN=1" in info["Config"]["Env"]        # the container's config, as Docker's
    assert len(info["RootFS"]["Layers"]) == 2
    history = lamina("history", "--no-trunc", "mine:1").stdout
    assert "sh -c echo committed > /x; rm /etc/os-release" in history


def test_commit_pauses_a_running_container(lamina):
    lamina("run", "-d", "--name", "live", "--network", "none", "busybox", "sh", "-c",
           "echo live > /live; exec sleep 60")
    assert eventually(lambda: lamina("exec", "live", "cat", "/live").stdout == "live\n")
    out = lamina("commit", "live")
    assert out.returncode == 0, out.stderr
    image_id = out.stdout.strip()
    assert lamina("run", "--rm", "--network", "none", image_id, "cat", "/live").stdout == \
        "live\n"
    assert json.loads(lamina("container", "inspect", "live").stdout)[0]["State"]["Status"] \
        == "running"
