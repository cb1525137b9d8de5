"""The image API (lamina.api) over images made by hand in a temporary store."""
from __future__ import annotations

import json
import os

import pytest

from lamina import api
from lamina.api.images import split_repo_tag
from lamina.image.manifest import build_index
from lamina.image.platform import Platform, host_platform
from lamina.image.reference import ReferenceError
from lamina.store import Roots, Store
from tests.helpers_images import Step, make_image, make_snapshots


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "root"))
    return Store.open()


def use_in_container(store: Store, digest: str, container_id: str = "c0ffee" * 4) -> None:
    """What the runtime does for a container made from the image."""
    store.roots.put(f"container-{container_id}", Roots(images=frozenset({digest})))


def ids(found: list[api.ImageSummary]) -> set[str]:
    return {image.id for image in found}


def corrupt(store: Store, digest: str) -> None:
    path = store.content.path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as blob:
        blob.seek(5)
        byte = blob.read(1)
        blob.seek(5)
        blob.write(bytes([byte[0] ^ 0xFF]))


def test_the_api_package_exports_its_functions_whatever_was_imported_first():
    import lamina.api.check  # noqa: F401  (each sets the package attribute to the module)
    import lamina.api.images  # noqa: F401

    assert callable(api.images) and callable(api.check)
    assert all(getattr(api, name) is not None for name in api.__all__)


# images


def test_images_lists_tagged_images_newest_first(store):
    old = make_image(store, tag="old:1", created="2023-01-01T00:00:00Z", seed="o")
    new = make_image(store, tag="new:1", created="2024-06-01T00:00:00.123456789Z", seed="n")
    found = api.images()  # the store at $LAMINA_ROOT
    assert [(i.repo_tags, i.id, i.digest) for i in found] == [
        (("new:1",), new.config_digest, new.digest), (("old:1",), old.config_digest, old.digest)]
    assert found[0].created == "2024-06-01T00:00:00.123456789Z"


def test_untagged_images_show_only_with_all_or_dangling(store):
    tagged = make_image(store, tag="app", seed="t")
    untagged = make_image(store, seed="u")
    assert ids(api.images(store)) == {tagged.config_digest}
    assert ids(api.images(store, all=True)) == {tagged.config_digest, untagged.config_digest}
    assert ids(api.images(store, dangling=True)) == {untagged.config_digest}
    assert ids(api.images(store, all=True, dangling=False)) == {tagged.config_digest}
    (summary,) = api.images(store, dangling=True)
    assert summary.dangling and summary.repo_tags == ()


def test_size_is_uncompressed_once_unpacked_else_compressed(store):
    built = make_image(store, layers=3, tag="app")
    compressed = sum(d.size for d in built.manifest.layers)
    assert api.images(store)[0].size == compressed
    make_snapshots(store, built)
    assert api.images(store)[0].size == sum(built.tar_sizes) > compressed


@pytest.mark.parametrize("pattern, expected", [
    ("app", {"app:1", "app:2"}), ("app:1", {"app:1"}), ("ap*", {"app:1", "app:2"}),
    ("app:?", {"app:1", "app:2"}), ("localhost:5000/*/web", {"localhost:5000/team/web:v1"}),
    ("localhost:5000/*", set()),  # * does not cross a /
    ("[a-b]pp:[2]", {"app:2"}), ("nothing", set()),
])
def test_reference_patterns_match_as_docker_filters_do(store, pattern, expected):
    make_image(store, tag="app:1", seed="1")
    make_image(store, tag="app:2", seed="2")
    make_image(store, tag="localhost:5000/team/web:v1", seed="3")
    found = api.images(store, reference=pattern)
    assert {t for i in found for t in i.repo_tags} == expected


def test_split_repo_tag_keeps_a_registry_port():
    assert split_repo_tag("localhost:5000/app:v1") == ("localhost:5000/app", "v1")
    assert split_repo_tag("busybox:latest") == ("busybox", "latest")


# tag


def test_tag_gives_one_image_a_second_name(store):
    built = make_image(store, tag="app:1")
    api.tag("app:1", "registry.example.com/team/app:2", store=store)
    api.tag(built.config_digest[7:15], "short", store=store)  # by ID prefix
    (summary,) = api.images(store)
    assert summary.repo_tags == ("app:1", "registry.example.com/team/app:2", "short:latest")


def test_tag_refuses_uppercase_with_the_fix_and_unknown_sources(store):
    make_image(store, tag="app")
    with pytest.raises(ReferenceError) as err:
        api.tag("app", "MyApp:1", store=store)
    assert "must be lowercase" in str(err.value) and err.value.hint == "use myapp:1"
    with pytest.raises(api.NoSuchImageError, match="No such image: ghost") as err:
        api.tag("ghost", "x", store=store)
    assert err.value.exit_code == 1


# remove


def test_removing_one_of_two_tags_only_untags(store):
    built = make_image(store, tag="app:1")
    api.tag("app:1", "app:2", store=store)
    events = api.remove(["app:1"], store=store)
    assert events == [api.RemovalEvent("untagged", "app:1")]
    assert api.images(store)[0].repo_tags == ("app:2",)
    assert built.blobs <= set(store.content.digests())


def test_removing_the_last_tag_deletes_the_image_and_collects_its_content(store):
    keep = make_image(store, tag="keep", seed="k", unpack=True)
    built = make_image(store, layers=2, tag="app", unpack=True)
    events = api.remove("app", store=store)
    # Docker's order: names, image ID, then the layers released, the top one first.
    assert events == [api.RemovalEvent("untagged", "app:latest"),
                      api.RemovalEvent("deleted", built.config_digest),
                      *(api.RemovalEvent("deleted", c) for c in reversed(built.chain_ids))]
    assert set(store.content.digests()) == keep.blobs
    assert {i.chain_id for i in store.snapshots.list()} == set(keep.chain_ids)


def test_removing_by_id_needs_force_when_several_names_point_at_it(store):
    built = make_image(store, tag="app:1")
    api.tag("app:1", "other:1", store=store)
    with pytest.raises(api.ImageConflictError) as err:
        api.remove([built.config_digest[7:19]], store=store)
    assert str(err.value).startswith(
        f"conflict: unable to delete {built.config_digest[7:19]} (must be forced) - "
        "image is referenced in multiple repositories")
    events = api.remove([built.config_digest[7:19]], force=True, store=store)
    assert [e.kind for e in events] == ["untagged", "untagged", "deleted"]
    assert store.index.list() == [] and not set(store.content.digests()) & built.blobs


def test_an_image_a_container_uses_needs_force_and_keeps_its_content(store):
    built = make_image(store, tag="app")
    use_in_container(store, built.digest, "ab" * 32)
    with pytest.raises(api.ImageConflictError, match="container abababababab is using its "
                                                     "referenced image"):
        api.remove(["app"], store=store)
    with pytest.raises(api.ImageConflictError, match="being used by container abababababab"):
        api.remove([built.config_digest], store=store)
    events = api.remove(["app"], force=True, store=store)
    assert events[-1] == api.RemovalEvent("deleted", built.config_digest)
    assert api.images(store, all=True) == []
    assert built.blobs <= set(store.content.digests())  # the container's root keeps them


def test_removing_continues_in_order_until_a_name_fails(store):
    make_image(store, tag="a", seed="a")
    make_image(store, tag="b", seed="b")
    with pytest.raises(api.NoSuchImageError, match="No such image: ghost"):
        api.remove(["a", "ghost", "b"], store=store)
    assert [i.repo_tags for i in api.images(store)] == [("b:latest",)]


# inspect


def test_inspect_has_dockers_fields(store):
    steps = [Step("ADD rootfs.tar /", {"f": b"data"}, comment="buildkit.dockerfile.v0"),
             Step('CMD ["/bin/sh"]', comment="buildkit.dockerfile.v0")]
    built = make_image(store, steps, tag="app:1")
    api.tag("app:1", "app:2", store=store)
    obj = api.inspect("app:1", store=store)
    assert obj["Id"] == built.config_digest
    assert obj["RepoTags"] == ["app:1", "app:2"] and obj["RepoDigests"] == []
    assert obj["Comment"] == "buildkit.dockerfile.v0"
    assert obj["Created"] == "2024-01-02T03:04:05Z"
    assert obj["Config"] == {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin", "SEED="]}
    assert (obj["Os"], obj["Architecture"]) == (host_platform().os, host_platform().architecture)
    assert obj["RootFS"] == {"Type": "layers", "Layers": list(built.diff_ids)}
    assert obj["Size"] == built.manifest.layers[0].size
    assert obj["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    assert obj["Descriptor"]["digest"] == built.digest
    json.dumps(obj)  # JSON values only


def test_inspect_of_an_unknown_image(store):
    with pytest.raises(api.NoSuchImageError, match="No such image: nope:1"):
        api.inspect("nope:1", store=store)


# history


def test_history_is_newest_first_with_empty_layers_at_zero(store):
    built = make_image(store, layers=2, tag="app")
    rows = api.history("app", store=store)
    assert [r.created_by for r in rows] == [s.created_by for s in reversed(built.steps)]
    assert [r.id for r in rows] == [built.config_digest, None, None, None]
    assert [r.empty_layer for r in rows] == [True, False, True, False]
    layer_sizes = [d.size for d in built.manifest.layers]
    assert [r.size for r in rows] == [0, layer_sizes[1], 0, layer_sizes[0]]
    make_snapshots(store, built)
    assert [r.size for r in api.history("app", store=store)] == \
        [0, built.tar_sizes[1], 0, built.tar_sizes[0]]


# prune


def test_prune_removes_dangling_images_only(store):
    tagged = make_image(store, tag="app", seed="t")
    dangling = make_image(store, seed="d")
    report = api.prune(store=store)
    assert report.events == (api.RemovalEvent("deleted", dangling.config_digest),)
    assert report.reclaimed == _blob_bytes(dangling)
    assert set(store.content.digests()) == tagged.blobs


def _blob_bytes(built) -> int:
    return built.manifest.config.size + len(built.manifest.raw) + sum(
        d.size for d in built.manifest.layers)


def test_prune_all_keeps_only_what_containers_use(store):
    used = make_image(store, tag="used", seed="u")
    make_image(store, tag="unused", seed="x")
    make_image(store, seed="d")
    use_in_container(store, used.digest)
    report = api.prune(all=True, store=store)
    assert [e for e in report.events if e.kind == "untagged"] == \
        [api.RemovalEvent("untagged", "unused:latest")]
    assert [i.repo_tags for i in api.images(store, all=True)] == [("used:latest",)]


def test_a_container_using_a_platform_manifest_keeps_its_multi_platform_image(store):
    host = make_image(store, seed="h")
    other = make_image(store, seed="o")
    index = build_index([host.manifest.descriptor(platform=host_platform()),
                         other.manifest.descriptor(platform=Platform("linux", "s390x"))])
    store.content.put_bytes(index.raw)
    store.tag("multi", index.digest)
    store.index.remove_image(host.digest)
    store.index.remove_image(other.digest)
    (summary,) = api.images(store)
    assert summary.id == index.digest and summary.digest == index.digest
    assert api.inspect("multi", store=store)["RootFS"]["Layers"] == list(host.diff_ids)
    use_in_container(store, host.digest)
    assert api.prune(all=True, store=store).events == ()


# disk usage


def test_disk_usage_counts_images_and_what_prune_all_would_free(store):
    used = make_image(store, tag="used", seed="u", unpack=True)
    other = make_image(store, tag="other", seed="o")
    use_in_container(store, used.digest)
    usage = api.disk_usage(store=store)
    total = sum(store.content.size(d) for d in store.content.digests()) + sum(used.tar_sizes)
    assert usage.images == api.UsageRow("Images", 2, 1, total, _blob_bytes(other))
    assert [r.type for r in usage.rows] == ["Images", "Containers", "Local Volumes",
                                            "Build Cache"]


# system check


def test_check_of_a_good_store_finds_nothing(store):
    make_image(store, layers=2, tag="app", unpack=True)
    report = api.check(store=store)
    assert report.ok and report.problems == ()
    assert (report.blobs, report.images, report.snapshots) == (4, 1, 2)


def test_check_names_a_damaged_blob_and_who_uses_it_and_repair_keeps_it(store):
    built = make_image(store, tag="app")
    layer = built.layer_digests[0]
    corrupt(store, layer)
    report = api.check(repair=True, store=store)
    (problem,) = report.problems
    assert problem.subject == layer and "damaged" in problem.message
    assert "used by app:latest" in problem.action and "lamina rmi app:latest" in problem.action
    assert problem.repaired is None and not report.ok
    assert store.content.has(layer)  # never deleted while an image needs it


def test_repair_removes_unreferenced_damaged_blobs_and_names_without_manifest(store):
    make_image(store, tag="good", seed="g")
    stray = store.content.put_bytes(b"a blob nothing references")
    corrupt(store, stray.digest)
    gone = make_image(store, tag="gone", seed="x")
    store.content.delete(gone.digest)
    report = api.check(store=store)
    assert {p.subject for p in report.problems} == {stray.digest, "gone:latest"}
    assert not report.ok and all(p.repaired is None for p in report.problems)
    repaired = api.check(repair=True, store=store)
    assert repaired.ok and len(repaired.problems) == 2
    assert not store.content.has(stray.digest)
    assert [i.repo_tags for i in api.images(store)] == [("good:latest",)]
    assert api.check(store=store).problems == ()


def test_check_finds_missing_blobs_and_inconsistent_snapshots(store):
    built = make_image(store, layers=2, tag="app", unpack=True)
    store.content.delete(built.layer_digests[1])
    meta = store.snapshots.dir / built.chain_ids[1][7:] / "metadata.json"
    obj = json.loads(meta.read_bytes())
    obj["diff_id"] = built.diff_ids[0]
    meta.write_text(json.dumps(obj))
    (store.roots.roots_dir / "broken.json").write_text("{not json")
    problems = {p.subject: p for p in api.check(store=store).problems}
    assert f"its layer {built.layer_digests[1]} is missing" in problems["app:latest"].message
    assert "does not follow from parent" in problems[built.chain_ids[1]].message
    assert "broken.json" in problems["GC roots"].message
