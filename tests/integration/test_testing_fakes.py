"""lamina.testing as a user's tests meet it: a temporary store that leaves nothing behind,
random images with deterministic digests, and an image's files read from its layers."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

import lamina
from lamina.testing import Step, image_files, make_image, random_image, temporary_store

CAN_RUN = os.geteuid() == 0 and shutil.which("crun") and Path("/bin/busybox").exists()


@pytest.fixture(autouse=True)
def outer(tmp_path, monkeypatch):
    """The environment a test runs in; temporary_store must give it back as it was."""
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "outer"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


def _mounts_under(folder: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(folder))]


# -- temporary_store ---------------------------------------------------------------------------

def test_temporary_store_is_empty_and_gives_the_environment_back(tmp_path):
    with temporary_store(parent=tmp_path) as store:
        assert os.environ["LAMINA_ROOT"] == str(store.root)
        assert Path(os.environ["DOCKER_CONFIG"]).is_dir()
        assert lamina.images() == []
        random_image(tag="inside:1")
        assert [i.repo_tags for i in lamina.images()] == [("inside:1",)]
        folder = store.root.parent
    assert os.environ["LAMINA_ROOT"] == str(tmp_path / "outer")
    assert "DOCKER_CONFIG" not in os.environ
    assert not folder.exists()


def test_temporary_store_cleans_up_after_a_failing_test(tmp_path):
    with pytest.raises(RuntimeError):
        with temporary_store(parent=tmp_path, isolate_credentials=False) as store:
            assert "DOCKER_CONFIG" not in os.environ
            random_image()
            raise RuntimeError("the test failed")
    assert not store.root.exists()
    assert os.environ["LAMINA_ROOT"] == str(tmp_path / "outer")


def test_temporary_stores_nest():
    with temporary_store() as first:
        with temporary_store() as second:
            assert os.environ["LAMINA_ROOT"] == str(second.root)
        assert os.environ["LAMINA_ROOT"] == str(first.root)
        assert not second.root.exists()


@pytest.mark.skipif(not CAN_RUN, reason="needs root, crun and busybox-static")
def test_temporary_store_removes_a_container_left_running(tmp_path):
    with temporary_store(parent=tmp_path) as store:
        folder = store.root.parent
        lamina.bootstrap_busybox()
        box = lamina.create_container("busybox", options=lamina.RunOptions(
            command=["sleep", "300"], network_mode="none"))
        lamina.start_container(box.id)
        pid = lamina.get_container(box.id).pid
        assert _mounts_under(folder)                # its root file system is mounted
    assert not folder.exists()
    assert _mounts_under(folder) == []
    assert not Path(f"/proc/{pid}").exists()          # the container's process is gone


# -- random_image and make_image ---------------------------------------------------------------

def test_random_image_is_deterministic_by_seed(tmp_path):
    one = random_image(size=5000, layers=3, seed="a", store=tmp_path / "one")
    two = random_image(size=5000, layers=3, seed="a", store=tmp_path / "two")
    other = random_image(size=5000, layers=3, seed="b", store=tmp_path / "two")
    assert one.digest == two.digest and one.diff_ids == two.diff_ids
    assert other.digest != one.digest
    assert len(set(one.layer_digests)) == 3         # each layer its own bytes
    assert all(size > 5000 for size in one.tar_sizes)


def test_random_image_sizes_make_the_layers(tmp_path):
    with temporary_store(parent=tmp_path):
        image = random_image(sizes=[300_000, 0, 20], tag="sized:1")
        layers = [row for row in lamina.history("sized:1") if not row.empty_layer]
        sizes = [row.size for row in reversed(layers)]      # bottom first
        assert sizes[0] > 300_000 and sizes[1] < 1000 and sizes[2] < 1000
        assert lamina.verify("sized:1").ok
        assert image.image_id == lamina.images()[0].id


@pytest.mark.parametrize("kwargs", [{"sizes": []}, {"layers": 0}, {"size": -1},
                                    {"sizes": [10, "big"]}])
def test_random_image_refuses_bad_sizes(kwargs, tmp_path):
    with pytest.raises(lamina.UsageError, match="random_image: invalid layer sizes"):
        random_image(store=tmp_path / "root", **kwargs)


# -- image_files -------------------------------------------------------------------------------

def test_image_files_stacks_layers_with_whiteouts(tmp_path):
    store = tmp_path / "root"
    make_image(store, [
        Step("base", {"etc/keep": b"keep", "etc/gone": b"x", "d/a": b"1", "d/b": b"2",
                      "swap/inner": b"i"}),
        Step("ENV A=1"),
        Step("change", {"etc/.wh.gone": b"", "d/.wh..wh..opq": b"", "d/c": b"3",
                        "swap": b"a file now", "etc/keep": b"kept, newer"}),
    ], tag="stack:1")
    files = image_files("stack:1", store=store)
    assert {p: f.data for p, f in files.items()} == {
        "/d/c": b"3", "/etc/keep": b"kept, newer", "/swap": b"a file now"}
    assert files["/etc/keep"].kind == "file" and files["/etc/keep"].mode == 0o644


def test_image_files_resolves_hard_links(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode = 4, 0o4755
        tar.addfile(info, io.BytesIO(b"tool"))
        link = tarfile.TarInfo("bin/alias")
        link.type, link.linkname = tarfile.LNKTYPE, "bin/tool"
        tar.addfile(link)
    buffer.seek(0)
    with temporary_store(parent=tmp_path):
        lamina.import_image(buffer, "linked:1")
        files = image_files("linked:1")
    assert files["/bin/alias"].data == b"tool" and files["/bin/alias"].kind == "file"
    assert files["/bin/tool"].mode == 0o4755


def test_image_files_of_a_missing_image_says_so(tmp_path):
    with pytest.raises(lamina.LaminaError, match="nothing:1"):
        image_files("nothing:1", store=tmp_path / "root")
