"""``lamina history --wasted``, ``lamina image analyze [--ci]`` and ``lamina image verify`` as a
user drives them, on crafted images in a store at $LAMINA_ROOT."""
from __future__ import annotations

import json

import pytest

from tests.e2e.test_image_commands import lamina, root, store  # noqa: F401 (fixtures)
from tests.helpers_crafted import Layer, tar_of, write_image

MB, KB300 = 1_000_000, 300_000


@pytest.fixture
def wasteful(store) -> str:
    write_image(store, [
        Layer(tar_of([("big", b"b" * MB), ("small", b"s" * KB300)]), created_by="ADD files /"),
        Layer(tar_of([(".wh.big", b"")]), "zstd", created_by="RUN rm /big"),
        Layer(tar_of([("small", b"S" * KB300)]), None, created_by="RUN regenerate /small"),
    ], tag="waste:1")
    return "waste:1"


def test_history_wasted_shows_layers_and_offenders(wasteful, lamina):
    out = lamina("history", "--wasted", wasteful)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Wasted: 1.3MB of 1.6MB") and "efficiency 18.75%" in lines[0]
    header = lines[2].split()
    assert header[:2] == ["LAYER", "CREATED"] and header[-2:] == ["WASTED", "HIDES"]
    # newest first, as history; the uncompressed layer is marked as such
    assert lines[3].startswith("2") and "RUN regenerate /small" in lines[3]
    assert "(stored uncompressed)" in lines[3] and "(zstd)" in lines[4]
    assert "(gzip)" in lines[5]
    offenders = out.stdout.split("Biggest offenders:\n")[1].splitlines()
    assert offenders[1].split() == ["1MB", "/big", "layer", "0", "layer", "1", "(deleted)"]
    assert offenders[2].split() == ["300kB", "/small", "layer", "0", "layer", "2",
                                    "(overwritten)"]


def test_analyze_ci_fails_with_dive_defaults_and_passes_with_looser_thresholds(wasteful,
                                                                                lamina):
    out = lamina("image", "analyze", "--ci", wasteful)
    assert out.returncode == 1
    assert "FAIL  lowestEfficiency" in out.stdout
    assert "SKIP  highestWastedBytes" in out.stdout
    assert "FAIL  highestUserWastedPercent" in out.stdout
    assert "Result: FAIL" in out.stdout
    out = lamina("image", "analyze", wasteful, "--lowest-efficiency", "0.15",
                 "--highest-wasted-bytes", "2MB", "--highest-user-wasted-percent", "500%")
    assert out.returncode == 0, out.stdout
    assert "Result: PASS (3 passed, 0 failed, 0 skipped)" in out.stdout
    out = lamina("image", "analyze", wasteful, "--lowest-efficiency", "0",
                 "--highest-wasted-bytes", "1MiB", "--highest-user-wasted-percent", "5")
    assert out.returncode == 1 and "FAIL  highestWastedBytes" in out.stdout
    # "disabled" skips a rule; --top 0 leaves the offenders out
    out = lamina("image", "analyze", wasteful, "--lowest-efficiency", "0.1",
                 "--highest-wasted-bytes", "disabled", "--highest-user-wasted-percent", "5",
                 "--top", "0")
    assert out.returncode == 0 and "SKIP  highestWastedBytes: rule disabled" in out.stdout
    assert "Biggest offenders" not in out.stdout


def test_analyze_json_has_the_exact_figures(wasteful, lamina):
    out = lamina("image", "analyze", wasteful, "--format", "json", "--ci")
    assert out.returncode == 1
    obj = json.loads(out.stdout)
    assert (obj["wastedBytes"], obj["totalBytes"], obj["userBytes"]) \
        == (MB + KB300, MB + 2 * KB300, KB300)
    assert obj["efficiency"] == pytest.approx(0.1875)
    assert [la["compression"] for la in obj["layers"]] == ["gzip", "zstd", "none"]
    assert [(w["path"], w["size"], w["addedBy"], w["removedBy"]) for w in obj["wasted"]] \
        == [("/big", MB, 0, 1), ("/small", KB300, 0, 2)]
    assert obj["pass"] is False
    assert {r["name"]: r["status"] for r in obj["rules"]}["lowestEfficiency"] == "FAIL"


def test_analyze_bad_input_is_a_clear_error(wasteful, lamina):
    out = lamina("image", "analyze", wasteful, "--highest-wasted-bytes", "lots")
    assert out.returncode == 2 and "invalid size 'lots'" in out.stderr
    out = lamina("image", "analyze", "nope:1")
    assert out.returncode == 1 and "No such image: nope:1" in out.stderr
    assert "Traceback" not in out.stderr
    out = lamina("history", "--wasted", "-q", wasteful)
    assert out.returncode != 0 and "--wasted" in out.stderr


def test_image_verify_names_a_damaged_blob_and_exits_1(store, lamina, root):
    write_image(store, [Layer(tar_of([("a", b"a" * 100)]))], tag="good:1")
    write_image(store, [Layer(tar_of([("b", b"b" * 100)]))], tag="bad:1")
    out = lamina("image", "verify", "good:1", "bad:1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("good:1: OK (3 blob(s) hashed, 1 layer(s) decompressed")
    config = store.image("bad:1").manifest().config.digest
    path = root / "blobs" / "sha256" / config[7:]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"os"', b'"OS"'))
    out = lamina("image", "verify", "good:1", "bad:1", "missing:1")
    assert out.returncode == 1
    assert "good:1: OK" in out.stdout
    assert "bad:1: " in out.stdout and f"its config {config}: damaged" in out.stdout
    assert "fix: remove the image (`lamina rmi bad:1`)" in out.stdout
    assert "No such image: missing:1" in out.stderr
