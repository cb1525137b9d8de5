"""Where an image's bytes went (lamina.api.analyze) on crafted images whose answer is known."""
from __future__ import annotations

import pytest

from lamina import api
from lamina.api.analysis import AnalyzeError
from lamina.store import Store
from tests.helpers_crafted import Layer, tar_of, write_image

MB, KB300 = 1_000_000, 300_000


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "root")


def wasteful(store: Store, tag: str = "waste:1") -> list[Layer]:
    """Layer 0 adds a 1 MB and a 300 kB file, layer 1 deletes the first, layer 2 overwrites
    the second."""
    layers = [Layer(tar_of([("big", b"b" * MB), ("app/", None), ("app/small", b"s" * KB300)]),
                    created_by="ADD files /"),
              Layer(tar_of([(".wh.big", b"")]), created_by="RUN rm /big"),
              Layer(tar_of([("app/", None), ("app/small", b"S" * KB300)]),
                    created_by="RUN regenerate /app/small")]
    write_image(store, layers, tag=tag)
    return layers


def test_deleted_and_overwritten_bytes_are_wasted_with_their_offenders_named(store):
    layers = wasteful(store)
    analysis = api.analyze("waste:1", store=store)
    assert analysis.wasted_bytes == MB + KB300
    assert [(w.path, w.size, w.added_by, w.removed_by, w.how) for w in analysis.offenders()] \
        == [("/big", MB, 0, 1, "deleted"), ("/app/small", KB300, 0, 2, "overwritten")]
    # dive's score: smallest versions (0 for /big, 300 kB for /app/small) over all versions.
    assert analysis.total_bytes == MB + 2 * KB300
    assert analysis.efficiency == pytest.approx(KB300 / (MB + 2 * KB300))
    assert analysis.user_bytes == KB300
    assert analysis.user_wasted_ratio == pytest.approx((MB + KB300) / KB300)
    by_layer = [(u.index, u.created_by, u.file_bytes, u.wasted_bytes, u.removed_bytes)
                for u in analysis.layers]
    assert by_layer == [(0, "ADD files /", MB + KB300, MB + KB300, 0),
                        (1, "RUN rm /big", 0, 0, MB),
                        (2, "RUN regenerate /app/small", KB300, 0, KB300)]
    assert [u.tar_size for u in analysis.layers] == [len(la.tar) for la in layers]


def test_sizes_say_how_each_layer_is_stored(store):
    tar = tar_of([("a", b"a" * 5000)])
    write_image(store, [Layer(tar, "gzip"), Layer(tar_of([("b", b"b" * 10)]), "zstd"),
                                 Layer(tar_of([("c", b"c")]), None)], tag="mixed:1")
    analysis = api.analyze("mixed:1", store=store)
    manifest = store.image("mixed:1").manifest()
    assert [u.compression for u in analysis.layers] == ["gzip", "zstd", None]
    assert [u.stored_size for u in analysis.layers] == [d.size for d in manifest.layers]
    assert analysis.layers[2].stored_size == analysis.layers[2].tar_size  # the tar itself
    assert analysis.layers[0].stored_size < analysis.layers[0].tar_size
    assert analysis.wasted_bytes == 0 and analysis.efficiency == 1.0


def test_opaque_dirs_deleted_dirs_and_replacements(store):
    write_image(store, [
        Layer(tar_of([("d/", None), ("d/a", b"a" * 100), ("d/b", b"b" * 200),
                      ("e/", None), ("e/x", b"x" * 50), ("keep", b"k" * 7)])),
        # The opaque marker comes after this layer's own d/c: it hides only lower content.
        Layer(tar_of([("d/", None), ("d/c", b"c" * 70), ("d/.wh..wh..opq", b""),
                      (".wh.e", b"")])),
        Layer(tar_of([("d/c/", None), ("d/c/y", b"y" * 5)])),
    ], tag="dirs:1")
    analysis = api.analyze("dirs:1", store=store)
    assert sorted((w.path, w.size, w.added_by, w.removed_by, w.how)
                  for w in analysis.wasted) == [
        ("/d/a", 100, 0, 1, "deleted"), ("/d/b", 200, 0, 1, "deleted"),
        ("/d/c", 70, 1, 2, "replaced"), ("/e/x", 50, 0, 1, "deleted")]
    assert analysis.wasted_bytes == 420
    # Every version but /keep and /d/c/y has a smallest version of 0 (it is gone).
    assert analysis.efficiency == pytest.approx(12 / (100 + 200 + 50 + 7 + 70 + 5))


def test_ci_rules_fail_and_pass_with_thresholds(store):
    wasteful(store)
    analysis = api.analyze("waste:1", store=store)
    defaults = {r.name: r.status for r in api.evaluate(analysis)}
    assert defaults == {"lowestEfficiency": "FAIL", "highestWastedBytes": "SKIP",
                        "highestUserWastedPercent": "FAIL"}
    rules = api.evaluate(analysis, lowest_efficiency=0.18, highest_wasted_bytes=MB + KB300,
                         highest_user_wasted_percent=5.0)
    assert [r.status for r in rules] == ["PASS", "PASS", "PASS"]
    rules = api.evaluate(analysis, lowest_efficiency=0.19, highest_wasted_bytes=MB,
                         highest_user_wasted_percent=4.0)
    assert [r.status for r in rules] == ["FAIL", "FAIL", "FAIL"]
    assert "1300000" in rules[1].message and "1000000" in rules[1].message


def test_an_image_without_waste_passes_the_default_rules(store):
    write_image(store, [Layer(tar_of([("a", b"a" * 10)])), Layer(tar_of([("b", b"b" * 10)]))],
                tag="lean:1")
    analysis = api.analyze("lean:1", store=store)
    assert analysis.efficiency == 1.0 and analysis.wasted == ()
    assert all(r.status != "FAIL" for r in api.evaluate(analysis))


def test_a_layer_that_does_not_match_its_diff_id_is_named(store):
    def swap(config):
        config["rootfs"]["diff_ids"].reverse()

    write_image(store, [Layer(tar_of([("a", b"a")])), Layer(tar_of([("b", b"b")]))],
                tag="swapped:1", bend_config=swap)
    with pytest.raises(AnalyzeError, match="not to its diff ID") as err:
        api.analyze("swapped:1", store=store)
    assert "lamina image verify swapped:1" in str(err.value)
