"""Reproducible builds: with SOURCE_DATE_EPOCH, the same context built in two empty stores, at
different times, gives the same manifest digest; the new layers' file times are clamped to
it, the base layer is untouched, and the config's and history's times are that time."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lamina.errors import UsageError
from lamina.store import Store

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina
LAMINA = Path(sys.executable).with_name("lamina")

EPOCH = 1_700_000_000
EPOCH_TEXT = "2023-11-14T22:13:20Z"
DOCKERFILE = """\
FROM busybox
COPY app.txt /app/
RUN mkdir -p /out/sub && echo made > /out/sub/file && rm /etc/removeme
ENV MODE=release
WORKDIR /work
"""


@pytest.fixture
def ctx(tmp_path) -> Path:
    return make_context(tmp_path / "ctx", DOCKERFILE, {"app.txt": "app\n"})


@pytest.fixture
def base_archive(store, tmp_path) -> Path:
    """busybox as a saved archive: the same base image for every empty store."""
    from lamina.api.archive import save

    path = tmp_path / "busybox.tar"
    save(["busybox:latest"], path, store=store)
    return path


def build_in_new_store(root: Path, base: Path, ctx: Path, *args: str,
                       env: dict[str, str] | None = None) -> Store:
    """``lamina build`` in an empty store that holds only the base image."""
    run_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    run_env.update(LAMINA_ROOT=str(root), **(env or {}))
    for command in (["load", "-i", str(base)], ["build", "-q", "-t", "app", *args, str(ctx)]):
        done = subprocess.run([str(LAMINA), *command], env=run_env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert not list((root / "builds").iterdir())
    return Store.open(root)


def touch_context(ctx: Path) -> None:
    """New file times, as a fresh checkout on another machine has (an hour later: set, not
    waited for)."""
    for path in ctx.iterdir():
        later = path.stat().st_mtime + 3600
        os.utime(path, (later, later))


def test_same_context_same_epoch_same_digest_in_two_empty_stores(ctx, base_archive, tmp_path):
    first = build_in_new_store(tmp_path / "one", base_archive, ctx,
                               env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    touch_context(ctx)
    second = build_in_new_store(tmp_path / "two", base_archive, ctx,
                                "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}")
    digest = first.image("app").digest()
    assert second.image("app").digest() == digest

    config = first.image("app").config()
    assert config.created == EPOCH_TEXT
    base_entries = len(first.image("busybox").config().history)
    assert [h.created for h in config.history[base_entries:]] == [EPOCH_TEXT] * 4
    assert config.history[:base_entries] == first.image("busybox").config().history
    # The base layer is the base image's own; the new layers' times are clamped.
    from tests.conftest_build import members_of   # here: the plugin module is loaded first

    layers = first.image("app").layers()
    assert layers[0] == first.image("busybox").layers()[0]
    for index in range(1, len(layers)):
        members = members_of(first, "app", index)
        assert members and all(m.mtime <= EPOCH for m in members.values())
    run_layer = members_of(first, "app", 2)
    assert {"out", "out/sub", "out/sub/file", "etc/.wh.removeme"} <= set(run_layer)


def test_another_epoch_gives_another_digest_and_is_not_taken_from_the_cache(
        ctx, base_archive, tmp_path):
    root = tmp_path / "one"
    store = build_in_new_store(root, base_archive, ctx, env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    digest = store.image("app").digest()
    later = subprocess.run([str(LAMINA), "build", "--progress", "plain", "-t", "app", str(ctx)],
                           env={**os.environ, "LAMINA_ROOT": str(root),
                                "SOURCE_DATE_EPOCH": str(EPOCH + 60)},
                           capture_output=True, text=True, timeout=120)
    assert later.returncode == 0, later.stderr
    assert "CACHED" not in later.stderr
    assert f"with SOURCE_DATE_EPOCH={EPOCH + 60} yet" in later.stderr
    assert store.image("app").digest() != digest
    assert store.image("app").config().created == "2023-11-14T22:14:20Z"


def test_without_an_epoch_layers_differ_only_in_their_times(ctx, base_archive, tmp_path):
    first = build_in_new_store(tmp_path / "one", base_archive, ctx)
    touch_context(ctx)
    second = build_in_new_store(tmp_path / "two", base_archive, ctx)

    def contents(store: Store) -> list[list[tuple]]:
        image = store.image("app")
        out = []
        for desc in image.layers()[1:]:
            with image.open_blob(desc) as blob, tarfile.open(fileobj=blob, mode="r|") as tar:
                out.append([(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                             tar.extractfile(m).read() if m.isreg() else b"") for m in tar])
        return out
    assert contents(first) == contents(second)


def test_a_bad_epoch_is_a_clear_error(lamina, build, ctx):
    done = lamina("build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday", str(ctx), check=False)
    assert done.returncode == 125
    assert "SOURCE_DATE_EPOCH='yesterday' is not a time in seconds since 1970" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(UsageError, match="not a time in seconds"):
        build(ctx, source_date_epoch=-1)
