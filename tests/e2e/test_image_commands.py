"""The image commands as a user drives them: the ``lamina`` script on a store at $LAMINA_ROOT,
with images made by hand (tests/helpers_images.py)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.cli.format import human_size
from lamina.store import Roots, Store
from tests.helpers_images import Step, make_image, make_snapshots

LAMINA = Path(sys.executable).with_name("lamina")


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root) -> Store:
    return Store.open(root)


@pytest.fixture
def lamina(root):
    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LAMINA_ROOT": str(root), "TZ": "UTC"}
        return subprocess.run([str(LAMINA), *args], input=stdin.decode(), capture_output=True,
                              text=True, env=env, timeout=60)
    return run


def table(text: str) -> list[list[str]]:
    """Rows of a docker-style table: cells are padded with 3 spaces at least."""
    return [re.split(r" {3,}", line.rstrip()) for line in text.splitlines()]


def test_images_table_ids_and_format(store, lamina):
    built = make_image(store, layers=2, tag="app:1")
    out = lamina("images")
    assert out.returncode == 0, out.stderr
    header, row = table(out.stdout)
    assert header == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    size = sum(d.size for d in built.manifest.layers)
    assert row[:3] == ["app", "1", built.config_digest[7:19]]
    assert row[3].endswith(" ago") and row[4] == human_size(size)
    assert lamina("images", "-q").stdout == built.config_digest[7:19] + "\n"
    assert lamina("images", "-q", "--no-trunc").stdout == built.config_digest + "\n"
    fmt = lamina("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}")
    # Docker's DIGEST is the registry's (RepoDigests): none for an image never pushed or pulled
    assert fmt.stdout == f"app:1 {built.config_digest[7:19]} <none>\n"
    (obj,) = [json.loads(line) for line in lamina("images", "--format", "json").stdout.splitlines()]
    assert obj["Repository"] == "app" and obj["Size"] == human_size(size)
    digests = table(lamina("images", "--digests").stdout)
    assert digests[0][2] == "DIGEST" and digests[1][2] == "<none>"


def test_tag_then_images_shows_both_names_with_one_id(store, lamina):
    built = make_image(store, tag="app:1")
    assert lamina("tag", "app:1", "localhost:5000/team/app:2").returncode == 0
    rows = table(lamina("images").stdout)[1:]
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        ("app", "1", built.config_digest[7:19]),
        ("localhost:5000/team/app", "2", built.config_digest[7:19])]
    bad = lamina("tag", "app:1", "App:3")
    assert bad.returncode != 0 and "must be lowercase" in bad.stderr and "use app:3" in bad.stderr


def test_untagged_images_show_with_all(store, lamina):
    make_image(store, tag="app", seed="t")
    untagged = make_image(store, seed="u")
    assert "<none>" not in lamina("images").stdout
    rows = table(lamina("images", "-a").stdout)
    assert ["<none>", "<none>", untagged.config_digest[7:19]] in [r[:3] for r in rows]
    assert lamina("images", "-q", "--filter", "dangling=true").stdout.split() == \
        [untagged.config_digest[7:19]]


def test_rmi_of_one_tag_untags_and_of_the_last_deletes(store, lamina):
    built = make_image(store, tag="app:1", unpack=True)
    lamina("tag", "app:1", "app:2")
    out = lamina("rmi", "app:1")
    assert (out.returncode, out.stdout) == (0, "Untagged: app:1\n")
    assert built.blobs <= set(store.content.digests())
    out = lamina("rmi", "app:2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["Untagged: app:2", f"Deleted: {built.config_digest}"]
    assert set(out.stdout.splitlines()[2:]) == {f"Deleted: {c}" for c in built.chain_ids}
    assert not set(store.content.digests()) & built.blobs  # collected
    assert store.snapshots.list() == []


def test_rmi_of_an_id_with_two_names_needs_force(store, lamina):
    built = make_image(store, tag="app:1")
    lamina("tag", "app:1", "other:1")
    short = built.config_digest[7:19]
    out = lamina("rmi", short)
    assert out.returncode == 1
    assert f"unable to delete {short} (must be forced) - image is referenced in multiple " \
           "repositories" in out.stderr
    out = lamina("rmi", "-f", short)
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["Untagged: app:1", "Untagged: other:1",
                                       f"Deleted: {built.config_digest}"]


def test_rmi_refuses_an_image_a_container_uses(store, lamina):
    built = make_image(store, tag="app")
    store.roots.put("container-" + "1234abcd" * 8, Roots(images=frozenset({built.digest})))
    out = lamina("rmi", "app", "ghost")
    assert out.returncode == 1 and out.stdout == ""
    assert "container 1234abcd1234 is using its referenced image" in out.stderr
    assert "No such image: ghost" in out.stderr
    assert lamina("images", "-q").stdout.strip() == built.config_digest[7:19]


def test_inspect_json_and_format(store, lamina):
    built = make_image(store, layers=2, tag="app")
    out = lamina("inspect", "app")
    assert out.returncode == 0, out.stderr
    (obj,) = json.loads(out.stdout)
    assert obj["Id"] == built.config_digest and obj["RepoTags"] == ["app:latest"]
    assert obj["RootFS"]["Layers"] == list(built.diff_ids)
    assert obj["Config"]["Cmd"] == ["/bin/sh"]
    fmt = lamina("inspect", "--format", "{{.Config.Env}}|{{json .RootFS}}", "app")
    env, rootfs = fmt.stdout.rstrip("\n").split("|")
    assert env == "[PATH=/usr/bin:/bin SEED=]"
    assert json.loads(rootfs) == {"Type": "layers", "Layers": list(built.diff_ids)}
    missing = lamina("inspect", "nope")
    assert missing.returncode == 1 and "No such image: nope" in missing.stderr
    assert json.loads(missing.stdout) == []


@pytest.mark.skipif(not shutil.which("skopeo"), reason="needs skopeo")
def test_skopeo_agrees_with_inspect_on_the_layers(store, lamina, root):
    built = make_image(store, layers=3, tag="app:1")
    ours = json.loads(lamina("inspect", "app:1").stdout)[0]
    where = f"oci:{root}:docker.io/library/app:1"
    theirs = json.loads(subprocess.run(["skopeo", "inspect", where], capture_output=True,
                                       text=True, check=True).stdout)
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", where],
                                       capture_output=True, text=True, check=True).stdout)
    assert theirs["Digest"] == ours["Descriptor"]["digest"] == built.digest
    assert theirs["Layers"] == built.layer_digests
    assert config["rootfs"]["diff_ids"] == ours["RootFS"]["Layers"]


def test_history_newest_first_with_sizes(store, lamina):
    built = make_image(store, layers=2, tag="app")
    make_snapshots(store, built)
    out = lamina("history", "app")
    assert out.returncode == 0, out.stderr
    header, *rows = table(out.stdout)
    assert header == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert [r[0] for r in rows] == [built.config_digest[7:19]] + ["<missing>"] * 3
    assert [r[2] for r in rows] == [s.created_by for s in reversed(built.steps)]
    unpacked = [0, built.tar_sizes[1], 0, built.tar_sizes[0]]
    assert [r[3] for r in rows] == [human_size(n) for n in unpacked]
    assert rows[1][3] != "0B"
    raw = table(lamina("history", "-H=false", "app").stdout)[1:]
    assert [r[3] for r in raw] == [str(n) for n in unpacked]
    assert raw[0][1] == "2024-01-02T03:04:05Z"
    assert lamina("history", "-q", "app").stdout.split() == \
        [built.config_digest[7:19]] + ["<missing>"] * 3
    sizes = lamina("history", "--format", "{{.Size}}", "app").stdout.split()
    assert sizes == [human_size(n) for n in unpacked]


def test_history_truncates_created_by_unless_no_trunc(store, lamina):
    long = "/bin/sh -c apt-get update && apt-get install -y python3 curl ca-certificates"
    make_image(store, [Step(long, {"f": b"x"})], tag="app")
    cut = table(lamina("history", "app").stdout)[1][2]
    assert cut == long[:44] + "…"
    assert table(lamina("history", "--no-trunc", "app").stdout)[1][2] == long


def test_image_group_reuses_the_commands(store, lamina):
    built = make_image(store, tag="app")
    assert lamina("image", "ls", "-q").stdout.strip() == built.config_digest[7:19]
    assert lamina("image", "tag", "app", "two").returncode == 0
    assert lamina("image", "rm", "two").stdout == "Untagged: two:latest\n"
    assert json.loads(lamina("image", "inspect", "app").stdout)[0]["Id"] == built.config_digest
    assert lamina("image", "history", "-q", "app").stdout.split()[0] == built.config_digest[7:19]


def test_prune_removes_dangling_only_then_all_with_a(store, lamina):
    tagged = make_image(store, tag="app", seed="t")
    dangling = make_image(store, seed="d")
    refused = lamina("image", "prune")  # stdin is no terminal: no one to ask
    assert refused.returncode != 0 and "-f" in refused.stderr
    out = lamina("image", "prune", "-f")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["Deleted Images:", f"deleted: {dangling.config_digest}"]
    assert re.fullmatch(r"Total reclaimed space: [\d.]+k?B", lines[-1])
    assert set(store.content.digests()) == tagged.blobs
    out = lamina("image", "prune", "-a", "-f")
    assert out.stdout.splitlines()[:3] == ["Deleted Images:", "untagged: app:latest",
                                           f"deleted: {tagged.config_digest}"]
    assert lamina("image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    assert list(store.content.digests()) == []


def test_system_df_rows(store, lamina):
    make_image(store, tag="app")
    out = lamina("system", "df")
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [r[0] for r in rows[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert rows[1][1:3] == ["1", "0"] and rows[1][4].endswith("(100%)")


def test_system_check_finds_a_damaged_blob_and_repair_says_what_it_did(store, lamina, root):
    built = make_image(store, tag="app")
    stray = store.content.put_bytes(b"nothing references me")
    out = lamina("system", "check")
    assert out.returncode == 0 and out.stdout.startswith("No problems found")
    for digest in (built.layer_digests[0], stray.digest):
        path = root / "blobs" / "sha256" / digest[7:]
        path.chmod(0o644)
        with open(path, "r+b") as blob:
            blob.write(b"X")
    out = lamina("system", "check")
    assert out.returncode == 1
    assert f"{built.layer_digests[0]}: damaged" in out.stdout
    assert "lamina rmi app:latest" in out.stdout
    assert f"{stray.digest}: damaged" in out.stdout
    out = lamina("system", "check", "--repair")
    assert out.returncode == 1  # the image's layer remains: it needs a re-pull
    assert "repaired: removed the damaged blob" in out.stdout
    assert "2 problem(s) found, 1 repaired" in out.stdout
    assert not (root / "blobs" / "sha256" / stray.digest[7:]).exists()
    assert (root / "blobs" / "sha256" / built.layer_digests[0][7:]).exists()
    assert lamina("rmi", "app").returncode == 0
    assert lamina("system", "check").returncode == 0
