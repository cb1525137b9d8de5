"""`lamina bootstrap busybox`: a busybox image from the host's busybox-static, run for real."""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from lamina.api import history
from lamina.api.bootstrap import BootstrapError, bootstrap_busybox
from lamina.bootstrap.busybox import find_busybox
from lamina.cli.main import main
from lamina.runtime import RunOptions, run_container
from lamina.store import Store
from lamina.store.layout import ImageNotFoundError
from lamina.store.unpack import unpack_image

BUSYBOX = Path("/bin/busybox")

pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static")
needs_crun = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("crun"),
                                reason="needs root and crun")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    """An empty store at $LAMINA_ROOT, where the API and the CLI open it by default."""
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return Store.open()


@pytest.fixture
def run(store, tmp_path, capfd):
    """Run a command in a stored image; (exit status, stdout)."""
    def go(name: str, *command: str) -> tuple[int, str]:
        image = store.image(name)
        status = run_container(state_dir=tmp_path / "state", lowers=unpack_image(store, image),
                               image_config=image.config().to_dict()["config"],
                               options=RunOptions(command=command, remove=True,
                                                  network_mode="none"))
        return status, capfd.readouterr().out
    return go


def test_one_layer_image_like_the_official_one(store):
    made = bootstrap_busybox()
    assert made.tags == ("busybox:latest",)
    image = store.image("busybox")
    assert len(image.layers()) == 1
    config = image.config()
    assert config.config.cmd == ("sh",)
    assert config.config.env == (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    steps = [row.created_by for row in history("busybox")]
    assert steps[0] == 'CMD ["sh"]'
    assert steps[1].startswith("BUSYBOX v") and "applets" in steps[1]
    assert made.image_id == image.manifest().config.digest


def test_layer_holds_busybox_its_applets_and_the_account_files(store):
    made = bootstrap_busybox()
    image = store.image(made.image_id)
    with image.open_blob(image.layers()[0]) as blob:
        with tarfile.open(fileobj=blob, mode="r|gz") as tar:
            members = {m.name: m for m in tar}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/busybox"].size == BUSYBOX.stat().st_size
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    applets = find_busybox().applets
    assert {f"bin/{a}" for a in applets} <= set(members)
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert {"proc", "sys", "dev", "home", "etc/passwd", "etc/group"} <= set(members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}
    names = list(members)
    assert names == sorted(names, key=lambda n: n.split("/"))   # deterministic order


def test_a_second_bootstrap_gives_the_same_image(store):
    first = bootstrap_busybox()
    second = bootstrap_busybox()
    assert (first.image_id, first.digest) == (second.image_id, second.digest)


def test_source_date_epoch_sets_the_creation_time(store, monkeypatch):
    default = bootstrap_busybox()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pinned = bootstrap_busybox(tags=["busybox:pinned"])
    assert pinned.image_id != default.image_id
    assert store.image("busybox:pinned").config().created == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BootstrapError, match="SOURCE_DATE_EPOCH"):
        bootstrap_busybox()


@needs_crun
def test_the_image_runs(store, run):
    bootstrap_busybox()
    assert run("busybox", "busybox", "echo", "hi") == (0, "hi\n")
    status, passwd = run("busybox", "cat", "/etc/passwd")
    assert status == 0
    assert passwd.splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "nobody:x:65534:65534:nobody:/home:/bin/false" in passwd.splitlines()
    assert run("busybox", "sh", "-c", "id -un; stat -c %A /tmp") == (0, "root\ndrwxrwxrwt\n")


@needs_crun
def test_cli_tag(store, run, capfd):
    assert main(["bootstrap", "busybox", "--tag", "mybox:1", "-t", "tools"]) == 0
    out, err = capfd.readouterr()
    assert out.strip() == store.image("mybox:1").manifest().config.digest
    assert "mybox:1, tools:latest" in err
    assert store.image("mybox:1").digest() == store.image("tools").digest()
    with pytest.raises(ImageNotFoundError):
        store.image("busybox")            # --tag replaces the default name
    assert run("mybox:1", "echo", "tagged") == (0, "tagged\n")


def test_cli_refuses_what_it_cannot_make(store, capsys):
    assert main(["bootstrap", "alpine"]) == 125
    assert "cannot bootstrap 'alpine'" in capsys.readouterr().err
    assert main(["bootstrap", "busybox", "--variant", "buildd"]) == 125
    assert "for debian only" in capsys.readouterr().err


def test_missing_or_dynamic_busybox_names_the_package(store, tmp_path):
    with pytest.raises(BootstrapError) as missing:
        bootstrap_busybox(busybox_path=tmp_path / "nowhere")
    assert "apt-get install busybox-static" in str(missing.value)
    dynamic = shutil.which("ls")    # a dynamically linked binary: would not run in the image
    with pytest.raises(BootstrapError, match="not a statically linked busybox") as info:
        bootstrap_busybox(busybox_path=dynamic)
    assert "apt-get install busybox-static" in str(info.value)
    assert store.index.list() == []
