"""save, load and import on temp stores; the config changes of import; commit_image.

Archives are made by lamina itself, or by hand in the forms other tools write (Docker before
25 with per-layer folders, an OCI layout alone), then damaged in the ways a user meets.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import tarfile

import pytest
import zstandard

from lamina.api.archive import load, save
from lamina.api.importer import import_image
from lamina.cli.main import main
from lamina.errors import DockerfileError, LaminaError, UsageError
from lamina.image import mediatypes as mt
from lamina.image.archive import ArchiveError
from lamina.image.config import ConfigError, ContainerConfig, History, ImageConfig
from lamina.image.descriptor import Descriptor
from lamina.image.mutate import append_layer, apply_changes, assemble
from lamina.image.platform import host_platform
from lamina.layer import LayerError
from lamina.store import Store
from lamina.store.commit import commit_image

from ..helpers_images import layer_tar, make_image


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(entries: dict[str, bytes | tarfile.TarInfo]) -> bytes:
    """A tar with these entries in this order: bytes are files, a TarInfo is written as is."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, item in entries.items():
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(item)
                tar.addfile(info, io.BytesIO(item))
    return buf.getvalue()


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def saved(store: Store, *names: str) -> bytes:
    out = io.BytesIO()
    save(list(names), out, store=store)
    return out.getvalue()


def names_in(store: Store) -> dict[str, str]:
    return {e.name: e.descriptor.digest for e in store.index.list() if e.name}


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like standard input fed by a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 1000))  # short reads, as a pipe gives
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


@pytest.fixture
def other(tmp_path) -> Store:
    return Store.open(tmp_path / "other")


# --------------------------------------------------------------------------- mutate


def base_config(**container) -> ImageConfig:
    return ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(**container))


def test_append_layer_adds_a_diff_id_and_its_history_entry():
    config = append_layer(base_config(), sha(b"a"), History(created_by="ADD a /"))
    config = append_layer(config, sha(b"b"), History(comment="b"))
    assert config.rootfs.diff_ids == (sha(b"a"), sha(b"b"))
    assert [h.created_by for h in config.history] == ["ADD a /", None]
    with pytest.raises(ValueError):
        append_layer(config, sha(b"c"), History(empty_layer=True))


def test_changes_set_the_config_as_docker_does():
    config = apply_changes(base_config(), [
        "CMD echo hello", 'ENTRYPOINT ["/init"]', "ENV A=1 B=2", "ENV A=3",
        "EXPOSE 80 53/udp", "LABEL version=1.0 'team name'=core", "USER app:app",
        "VOLUME /data /cache", "WORKDIR /srv", "WORKDIR app/../web", "STOPSIGNAL SIGQUIT",
        "ONBUILD RUN make", "HEALTHCHECK --interval=5s --retries=2 CMD curl -f localhost"]).config
    assert config.cmd == ("/bin/sh", "-c", "echo hello")  # CMD came first: ENTRYPOINT keeps it
    assert config.entrypoint == ("/init",)
    assert config.env == ("A=3", "B=2")
    assert config.exposed_ports == ("53/udp", "80/tcp")
    assert dict(config.labels) == {"version": "1.0", "team name": "core"}
    assert (config.user, config.volumes) == ("app:app", ("/cache", "/data"))
    assert (config.working_dir, config.stop_signal) == ("/srv/web", "SIGQUIT")
    assert config.on_build == ("RUN make",)
    assert config.healthcheck.test == ("CMD-SHELL", "curl -f localhost")
    assert (config.healthcheck.interval, config.healthcheck.retries) == (5_000_000_000, 2)
    assert config.healthcheck.timeout is None  # not given: Docker leaves it out


def test_entrypoint_clears_a_cmd_the_changes_did_not_set():
    inherited = base_config(cmd=("/bin/sh",))
    assert apply_changes(inherited, ["ENTRYPOINT /app"]).config.cmd is None
    after = apply_changes(inherited, ["ENTRYPOINT /app", 'CMD ["--help"]']).config
    assert (after.entrypoint, after.cmd) == (("/bin/sh", "-c", "/app"), ("--help",))
    shell = apply_changes(base_config(shell=("/bin/bash", "-xc")), ["CMD ls"]).config
    assert shell.cmd == ("/bin/bash", "-xc", "ls")


def test_changes_expand_variables_from_the_config_environment():
    config = apply_changes(base_config(env=("HOME=/home/app",)), [
        "ENV DATA=$HOME/data", "WORKDIR ${DATA}", "LABEL where=$DATA", "VOLUME $DATA",
        "CMD echo $HOME"]).config  # CMD is not expanded: the shell does it when it runs
    assert config.env == ("HOME=/home/app", "DATA=/home/app/data")
    assert config.working_dir == "/home/app/data"
    assert config.labels["where"] == "/home/app/data"
    assert config.volumes == ("/home/app/data",)
    assert config.cmd == ("/bin/sh", "-c", "echo $HOME")


@pytest.mark.parametrize("change, message", [
    ("RUN make", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
    ("EXPOSE 80/xyz", "invalid protocol"),
    ("ENV", "ENV"),
])
def test_a_change_docker_refuses_is_an_error_naming_it(change, message):
    with pytest.raises(DockerfileError, match=message) as err:
        apply_changes(base_config(), ["USER a", change])
    assert str(err.value).startswith("--change:2")


def test_assemble_writes_canonical_bytes_and_checks_the_layer_count():
    config = append_layer(base_config(), sha(b"t"), History())
    layer = Descriptor(mt.OCI_LAYER_GZIP, sha(b"z"), 1)
    raw, manifest = assemble(config, [layer])
    assert raw == config.to_json() and manifest.config.digest == sha(raw)
    assert assemble(raw, [layer])[1].raw == manifest.raw  # raw bytes are kept as they are
    with pytest.raises(ConfigError, match="1 layers .* has 0"):
        assemble(config, [])


# --------------------------------------------------------------------------- commit_image


def test_commit_image_writes_config_and_manifest_then_names_it(store):
    blob = store.content.put_bytes(gzip.compress(layer_tar({"f": b"1"}), mtime=0))
    layer = Descriptor(mt.OCI_LAYER_GZIP, blob.digest, blob.size)
    config = append_layer(base_config(), sha(layer_tar({"f": b"1"})), History())
    with store.roots.lease() as lease:
        desc = commit_image(store, config, [layer], tags=["app:1", "app:2"], lease=lease)
        untagged = commit_image(store, config.to_json() + b" ", [layer], lease=lease)
    assert names_in(store) == {"docker.io/library/app:1": desc.digest,
                               "docker.io/library/app:2": desc.digest}
    assert store.image("app:1").config_bytes() == config.to_json()
    assert any(e.name is None and e.descriptor.digest == untagged.digest
               for e in store.index.list())


# --------------------------------------------------------------------------- save and load


def test_save_then_load_keeps_digests_ids_and_names(store, other):
    a = make_image(store, layers=2, tag="app:1", seed="a")
    store.tag("localhost:5000/team/app:stable", a.digest)
    b = make_image(store, layers=3, tag="tool", seed="b")
    c = make_image(store, layers=1, seed="c")  # untagged
    archive = saved(store, "app:1", "localhost:5000/team/app:stable", "tool", c.config_digest)
    loaded = load(io.BytesIO(archive), store=other)
    assert [(x.name, x.image_id) for x in loaded] == [
        ("app:1", a.config_digest), ("localhost:5000/team/app:stable", a.config_digest),
        ("tool:latest", b.config_digest), (None, c.config_digest)]
    assert names_in(other) == {"docker.io/library/app:1": a.digest,
                               "localhost:5000/team/app:stable": a.digest,
                               "docker.io/library/tool:latest": b.digest}
    assert {e.descriptor.digest for e in other.index.list()} == {a.digest, b.digest, c.digest}
    for digest in a.blobs | b.blobs | c.blobs:
        other.content.verify(digest)
    assert not list(other.content.ingest_dir.iterdir())
    assert not list(other.roots.leases_dir.iterdir())  # the lease ended with the load


def test_the_archive_is_a_docker_archive_and_an_oci_layout(store):
    a = make_image(store, layers=2, tag="app:1")
    files = members(saved(store, "app"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["manifest.json"])
    assert entry == {"Config": f"blobs/sha256/{a.config_digest[7:]}", "RepoTags": ["app:1"],
                     "Layers": [f"blobs/sha256/{d.digest[7:]}" for d in a.manifest.layers]}
    (desc,) = json.loads(files["index.json"])["manifests"]
    assert desc["digest"] == a.digest and desc["annotations"] == {
        "io.containerd.image.name": "docker.io/library/app:1",
        "org.opencontainers.image.ref.name": "1"}
    assert files[f"blobs/sha256/{a.digest[7:]}"] == a.manifest.raw  # manifests copied raw
    assert json.loads(files["repositories"]) == {"app": {"1": a.manifest.layers[-1].digest[7:]}}


def test_save_is_deterministic(store, tmp_path):
    make_image(store, layers=1, tag="x:1", seed="x")
    make_image(store, layers=2, tag="y:1", seed="y")
    first = saved(store, "x:1", "y:1")
    assert saved(store, "x:1", "y:1") == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos[2:]] == sorted(i.name for i in infos[2:])
    assert {(i.mtime, i.uid, i.gid, i.uname) for i in infos} == {(0, 0, 0, "")}
    save(["x:1", "y:1"], tmp_path / "out.tar", store=store)
    assert (tmp_path / "out.tar").read_bytes() == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_name_without_a_tag_saves_every_tag_and_an_id_saves_no_name(store):
    one = make_image(store, layers=1, tag="app:1", seed="1")
    two = make_image(store, layers=1, tag="app:2", seed="2")
    make_image(store, layers=1, tag="other", seed="3")
    by_repo = json.loads(members(saved(store, "app"))["manifest.json"])
    assert sorted(tag for e in by_repo for tag in e["RepoTags"]) == ["app:1", "app:2"]
    (by_id,) = json.loads(members(saved(store, two.config_digest[7:19]))["manifest.json"])
    assert by_id["RepoTags"] is None
    (both,) = json.loads(members(saved(store, "app:1", one.config_digest))["manifest.json"])
    assert both["RepoTags"] == ["app:1"]  # one image, once
    with pytest.raises(LaminaError, match="no such image"):
        saved(store, "absent")


def test_load_reads_pipes_and_compressed_archives(store, tmp_path):
    a = make_image(store, layers=2, tag="app:1")
    archive = saved(store, "app:1")
    compressed = {"gzip": gzip.compress(archive, mtime=0), "bzip2": bz2.compress(archive),
                  "xz": lzma.compress(archive),
                  "zstd": zstandard.ZstdCompressor().compress(archive)}
    for kind, data in [("plain", archive), *compressed.items()]:
        target = Store.open(tmp_path / kind)
        assert [x.name for x in load(io.BufferedReader(Pipe(data)), store=target)] == ["app:1"]
        assert names_in(target) == {"docker.io/library/app:1": a.digest}, kind
        assert not list(target.content.ingest_dir.iterdir())  # the spool file had no name
    (tmp_path / "a.tar.gz").write_bytes(compressed["gzip"])
    assert load(tmp_path / "a.tar.gz", store=Store.open(tmp_path / "file"))[0].name == "app:1"


def legacy_archive(layers: list[bytes], *, tags=("old:1",), diff_ids=None) -> tuple[bytes, bytes]:
    """A docker save archive as Docker before 25 wrote it; return it and its config."""
    diff_ids = diff_ids or [sha(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    entries: dict[str, bytes | tarfile.TarInfo] = {}
    paths = []
    for n, layer in enumerate(layers):
        folder = f"{n:064x}"
        if layer in layers[:n]:  # Docker links a layer it already wrote
            link = tarfile.TarInfo(f"{folder}/layer.tar")
            link.type, link.linkname = tarfile.SYMTYPE, f"../{layers.index(layer):064x}/layer.tar"
            entries[f"{folder}/layer.tar"] = link
        else:
            entries[f"{folder}/layer.tar"] = layer
        entries[f"{folder}/json"] = b'{"id": "%s"}' % folder.encode()
        entries[f"{folder}/VERSION"] = b"1.0"
        paths.append(f"{folder}/layer.tar")
    entries[f"{sha(config)[7:]}.json"] = config
    entries["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json",
                                            "RepoTags": list(tags), "Layers": paths}]).encode()
    return tar_of(entries), config


def test_load_reads_the_legacy_per_layer_folders(store):
    base, app = layer_tar({"bin/sh": b"#!"}), layer_tar({"app": b"x"})
    archive, config = legacy_archive([base, app, base])
    (loaded,) = load(io.BytesIO(archive), store=store)
    assert (loaded.name, loaded.image_id) == ("old:1", sha(config))  # the image ID survives
    image = store.image("old:1")
    assert image.config_bytes() == config
    assert [(d.media_type, d.digest) for d in image.layers()] == [
        (mt.OCI_LAYER, sha(base)), (mt.OCI_LAYER, sha(app)), (mt.OCI_LAYER, sha(base))]
    with image.open_blob(image.layers()[1]) as blob:
        assert blob.read() == app  # stored as it came: a plain tar is its own blob


def test_load_keeps_the_manifest_of_an_archive_with_plain_layers(store, other):
    """Docker 25+ writes plain layers into blobs/ and lists them in manifest.json too."""
    tar = layer_tar({"a": b"1"})
    blob = store.content.put_bytes(tar)
    config = append_layer(base_config(), sha(tar), History(created_by="ADD a /"))
    with store.roots.lease() as lease:
        desc = commit_image(store, config, [Descriptor(mt.OCI_LAYER, blob.digest, blob.size)],
                            tags=["plain:1"], lease=lease)
    load(io.BytesIO(saved(store, "plain:1")), store=other)
    assert other.index.get("plain:1").digest == desc.digest  # the index.json manifest, raw


def test_files_that_cannot_be_read_or_written_are_usage_errors(store, tmp_path):
    make_image(store, layers=1, tag="app")
    with pytest.raises(UsageError, match="absent.tar: no such file"):
        load(tmp_path / "absent.tar", store=store)
    with pytest.raises(UsageError, match="is a folder"):
        load(tmp_path, store=store)
    with pytest.raises(UsageError, match="cannot write .*no/such/out.tar"):
        save(["app"], tmp_path / "no" / "such" / "out.tar", store=store)


def test_load_reads_an_oci_layout_alone(store, other):
    a = make_image(store, layers=1, tag="app:1", seed="a")
    b = make_image(store, layers=1, tag="b", seed="b")
    files = members(saved(store, "app:1", "b"))
    del files["manifest.json"], files["repositories"]
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "local/x:2"}
    index["manifests"][1]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    files["index.json"] = json.dumps(index).encode()
    loaded = load(io.BytesIO(tar_of(files)), store=other)
    assert [(x.name, x.image_id) for x in loaded] == [("local/x:2", a.config_digest),
                                                      (None, b.config_digest)]


def test_load_moves_a_name_and_says_from_which_image(store, other):
    make_image(store, layers=1, tag="app", seed="old")
    new = make_image(other, layers=1, tag="app", seed="new")
    old = make_image(other, layers=1, seed="old")  # the same image, untagged there
    (loaded,) = load(io.BytesIO(saved(store, "app")), store=other)
    assert loaded.replaced_id == new.config_digest and loaded.image_id == old.config_digest
    (again,) = load(io.BytesIO(saved(store, "app")), store=other)
    assert again.replaced_id is None


def damaged(archive: bytes, path: str, change) -> bytes:
    files = members(archive)
    files[path] = change(files[path])
    return tar_of(files)


def broken_archive(store: Store, case: str) -> tuple[bytes, str]:
    """An archive damaged one way, and the entry the error must name."""
    if case == "diff_id":  # the config says another tar than the layer holds
        archive, _ = legacy_archive([layer_tar({"a": b"1"})], diff_ids=[sha(b"other")])
        return archive, f"{0:064x}/layer.tar"
    a = make_image(store, layers=2, tag="app:1")
    entry = {"layer": f"blobs/sha256/{a.manifest.layers[1].digest[7:]}",
             "config": f"blobs/sha256/{a.config_digest[7:]}",
             "manifest": f"blobs/sha256/{a.digest[7:]}", "index": "index.json"}[case]
    change = {"layer": lambda d: gzip.compress(b"evil" * 300),
              "config": lambda d: d.replace(b"amd64", b"arm64"),
              "manifest": lambda d: d + b" ", "index": lambda d: b"{"}[case]
    return damaged(saved(store, "app:1"), entry, change), entry


@pytest.mark.parametrize("case", ["layer", "config", "manifest", "index", "diff_id"])
def test_damaged_content_is_refused_naming_the_entry_and_nothing_is_named(store, other, case):
    archive, entry = broken_archive(store, case)
    with pytest.raises(ArchiveError, match=entry.replace(".", r"\.")) as err:
        load(io.BytesIO(archive), store=other)
    assert case != "diff_id" or "the image config gives it diff ID" in str(err.value)
    assert other.index.list() == []
    assert not list(other.content.ingest_dir.iterdir())
    assert not list(other.roots.leases_dir.iterdir())


def test_a_failed_load_names_none_of_the_images_it_copied(store, other):
    good = make_image(store, layers=1, tag="good", seed="good")
    bad = make_image(store, layers=1, tag="bad", seed="bad")
    path = f"blobs/sha256/{bad.manifest.layers[0].digest[7:]}"
    archive = damaged(saved(store, "good", "bad"), path, lambda d: d[:-3])
    with pytest.raises(ArchiveError, match=path):
        load(io.BytesIO(archive), store=other)
    assert other.index.list() == []
    assert other.content.has(good.digest)  # copied, unnamed: the next GC removes it
    assert good.digest in other.gc().removed_blobs


def escaping_link() -> bytes:
    link = tarfile.TarInfo("blobs/sha256/x")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    return tar_of({"manifest.json": b"[]", "blobs/sha256/x": link})


BAD_ARCHIVES = {
    "not a tar": (b"this is not a tar at all" * 100, "not a tar archive"),
    "no image list": (tar_of({"hello.txt": b"hi"}), "neither manifest.json .* nor index.json"),
    "pre-1.10": (tar_of({"repositories": b"{}", "abc/layer.tar": b""}), "before Docker 1.10"),
    "dot-dot entry": (tar_of({"../evil": b"x", "manifest.json": b"[]"}),
                      "'../evil' leads outside"),
    "absolute entry": (tar_of({"/etc/evil": b"x", "manifest.json": b"[]"}),
                       "'/etc/evil' leads outside"),
    "escaping link": (escaping_link(), "blobs/sha256/x: .* outside the archive"),
    "escaping config path": (
        tar_of({"manifest.json": json.dumps([{"Config": "../c.json", "Layers": []}]).encode()}),
        "manifest.json image 1: the path '../c.json' leads outside"),
    "missing config": (
        tar_of({"manifest.json": json.dumps([{"Config": "c.json", "Layers": []}]).encode()}),
        "c.json: no such entry"),
    "empty list": (tar_of({"manifest.json": b"[]"}), "holds no image"),
    "cut gzip": (gzip.compress(b"x" * 1000, mtime=0)[:-20],
                 "gzip archive cannot be decompressed"),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_bad_archives_are_refused_with_a_clear_error(other, case):
    archive, message = BAD_ARCHIVES[case]
    with pytest.raises(ArchiveError, match=message):
        load(io.BytesIO(archive), store=other)
    assert other.index.list() == []


# --------------------------------------------------------------------------- import


ROOTFS = layer_tar({"etc/hostname": b"lamina\n", "bin/hello": b"#!/bin/sh\necho hi\n"})
COMPRESSED = {
    "plain": (ROOTFS, mt.OCI_LAYER_GZIP),
    "gzip": (gzip.compress(ROOTFS, mtime=0), mt.OCI_LAYER_GZIP),
    "bzip2": (bz2.compress(ROOTFS), mt.OCI_LAYER_GZIP),
    "xz": (lzma.compress(ROOTFS), mt.OCI_LAYER_GZIP),
    "zstd": (zstandard.ZstdCompressor().compress(ROOTFS), mt.OCI_LAYER_ZSTD),
}


@pytest.mark.parametrize("kind", COMPRESSED)
def test_import_makes_a_one_layer_image_of_any_tarball(store, kind):
    data, media_type = COMPRESSED[kind]
    imported = import_image(io.BufferedReader(Pipe(data)), "imported:1", store=store)
    image = store.image("imported:1")
    assert imported.image_id == image.manifest().config.digest == sha(image.config_bytes())
    (layer,) = image.layers()
    assert layer.media_type == media_type
    assert image.config().rootfs.diff_ids == (sha(ROOTFS),)
    with image.open_blob(layer) as blob:
        stored = blob.read()
    if kind in ("gzip", "zstd"):
        assert stored == data  # kept byte for byte, as Docker does
    else:
        assert gzip.decompress(stored) == ROOTFS


def test_import_writes_the_config_docker_writes(store, tmp_path):
    (tmp_path / "rootfs.tar").write_bytes(ROOTFS)
    plain = import_image(tmp_path / "rootfs.tar", store=store).image_id
    config = ImageConfig.parse(store.content.read_bytes(plain))
    host = host_platform()
    assert (config.os, config.architecture) == (host.os, host.architecture)
    (entry,) = config.history
    assert (entry.comment, entry.created_by, entry.created) == (
        "Imported from -", None, config.created)
    assert config.extra["comment"] == "Imported from -"
    assert config.config == ContainerConfig()
    assert [e.name for e in store.index.list()] == [None]

    changed = import_image(tmp_path / "rootfs.tar", "app", message="first cut",
                           platform="linux/arm64", changes=["CMD /bin/hello", "ENV A=1"],
                           store=store)
    config = store.image("app").config()
    assert changed.name == "app:latest"
    assert (config.architecture, config.history[0].comment) == ("arm64", "first cut")
    assert (config.config.cmd, config.config.env) == (("/bin/sh", "-c", "/bin/hello"), ("A=1",))


def test_import_refuses_what_is_not_a_tarball(store, tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"just some text, long enough to be no tar" * 20)
    for source in [tmp_path / "notes.txt", io.BytesIO(gzip.compress(b"not a tar" * 100)),
                   io.BytesIO(b"")]:
        with pytest.raises(LayerError, match="not a tar archive"):
            import_image(source, "x", store=store)
    with pytest.raises(LayerError, match="cannot be decompressed"):
        import_image(io.BytesIO(gzip.compress(ROOTFS)[:-30]), "x", store=store)
    with pytest.raises(UsageError, match="no such file"):
        import_image(tmp_path / "absent.tar", store=store)
    with pytest.raises(UsageError, match="files and standard input only"):
        import_image("https://example.com/rootfs.tar", store=store)
    with pytest.raises(UsageError, match="digest"):
        import_image(io.BytesIO(ROOTFS), "x@sha256:" + "a" * 64, store=store)
    with pytest.raises(DockerfileError, match="run is not a valid change command"):
        import_image(io.BytesIO(ROOTFS), changes=["RUN true"], store=store)
    assert store.index.list() == []
    assert list(store.content.digests()) == []  # refused before or while writing: no blob
    assert not list(store.content.ingest_dir.iterdir())


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "cli"))
    return tmp_path


class FakeStdio:
    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        self.buffer = io.BytesIO(data)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def flush(self) -> None:
        pass


def test_cli_import_save_load(cli_root, monkeypatch, capsys):
    (cli_root / "rootfs.tar").write_bytes(ROOTFS)
    assert main(["import", "-c", "CMD [\"/bin/hello\"]", str(cli_root / "rootfs.tar"),
                 "hello:1"]) == 0
    image_id = capsys.readouterr().out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    monkeypatch.setattr("sys.stdin", FakeStdio(ROOTFS))
    assert main(["import", "-", "-m", "from stdin"]) == 0
    capsys.readouterr()

    assert main(["save", "-o", str(cli_root / "hello.tar"), "hello"]) == 0
    out = FakeStdio()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["save", "hello:1"]) == 0
    assert out.buffer.getvalue() == (cli_root / "hello.tar").read_bytes()
    monkeypatch.undo()

    monkeypatch.setenv("LAMINA_ROOT", str(cli_root / "elsewhere"))
    assert main(["load", "-i", str(cli_root / "hello.tar")]) == 0
    assert capsys.readouterr().out == "Loaded image: hello:1\n"
    monkeypatch.setattr("sys.stdin", FakeStdio(out.buffer.getvalue()))
    assert main(["load"]) == 0
    assert capsys.readouterr().out == "Loaded image: hello:1\n"


def test_cli_save_refuses_a_terminal_and_load_an_empty_one(cli_root, monkeypatch, capsys):
    make_image(Store.open(), layers=1, tag="app")
    monkeypatch.setattr("sys.stdout", FakeStdio(tty=True))
    assert main(["save", "app"]) == 125
    monkeypatch.undo()
    assert "cowardly refusing to save to a terminal. Use the -o flag or redirect" in \
        capsys.readouterr().err
    monkeypatch.setenv("LAMINA_ROOT", str(cli_root / "cli"))
    monkeypatch.setattr("sys.stdin", FakeStdio(tty=True))
    assert main(["load"]) == 125
    assert "requested load from stdin, but stdin is empty" in capsys.readouterr().err
    assert main(["import", "http://example.com/x.tar"]) == 125
    assert "files and standard input only" in capsys.readouterr().err
