"""``lamina build --squash``: one layer over the base image, the history kept, the per-step
build cache kept."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files, layer_members

DOCKERFILE = """\
FROM busybox
RUN echo one > /one && mkdir /tmp/scratch && echo big > /tmp/scratch/big && rm /etc/removeme
RUN rm -r /tmp/scratch && echo two > /two && ln /two /two-link
ENV WHO=squash
COPY app.txt /app/
RUN echo three > /two
CMD ["sh", "-c", "cat /one /two /two-link /app/app.txt; echo $WHO"]
"""


@pytest.fixture
def ctx(tmp_path) -> Path:
    return make_context(tmp_path / "ctx", DOCKERFILE, {"app.txt": "app\n"})


def test_squashed_image_has_one_layer_over_its_base_and_runs(lamina, store, ctx, image_files,
                                                             layer_members):
    out = lamina("build", "--squash", "--progress", "plain", "-t", "sq", str(ctx))
    assert "squashing 4 layers into one" in out.stderr
    image = store.image("sq")
    base = store.image("busybox")
    assert len(image.layers()) == len(base.layers()) + 1
    assert image.layers()[0] == base.layers()[0]
    # Every step keeps its history entry; one of them stands for the merged layer.
    config = image.config()
    created_by = [h.created_by for h in config.history]
    assert len(created_by) == len(base.config().history) + 6
    assert [h.empty_layer for h in config.history[len(base.config().history):]] == \
        [True, True, True, True, False, True]
    config.layer_history()   # history and layers agree

    files = image_files("sq")
    assert files["one"][4] == b"one\n" and files["two"][4] == b"three\n"
    assert "tmp/scratch" not in files and "etc/removeme" not in files
    top = layer_members("sq")
    # The base file removed is whited out; what the build made and deleted leaves nothing.
    assert "etc/.wh.removeme" in top
    assert not any(name.startswith("tmp/scratch") or name == "tmp/.wh.scratch"
                   for name in top)
    # /two-link was a hardlink of /two, which a later step replaced: now a file of its own.
    assert top["two-link"].isreg() and files["two-link"][4] == b"two\n"

    ran = lamina("run", "--rm", "--network", "none", "sq")
    assert ran.stdout == "one\nthree\ntwo\napp\nsquash\n"


def test_the_step_cache_is_kept_with_and_without_squash(lamina, store, build, ctx):
    first = build(ctx, tags=["sq"], squash=True)
    assert first.cached() == [False, False, False, False]
    again = build(ctx, tags=["sq"], squash=True)
    assert again.cached() == [True, True, True, True]
    assert again.result.digest == first.result.digest
    plain = build(ctx, tags=["layered"])
    assert plain.cached() == [True, True, True, True]
    assert len(store.image("layered").layers()) == len(store.image("busybox").layers()) + 4
    assert plain.result.digest != first.result.digest


def test_squash_with_a_single_new_layer_changes_nothing(build, ctx, store):
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo one > /one\nCMD [\"cat\", \"/one\"]\n")
    squashed = build(ctx, tags=["one"], squash=True)
    layered = build(ctx, tags=["one-layered"])
    assert squashed.result.digest == layered.result.digest


def test_squash_from_scratch_and_over_a_stage(build, tmp_path, store, image_files):
    (tmp_path / "a.txt").write_text("a\n")
    build(tmp_path, "FROM scratch\nCOPY a.txt /a.txt\nCOPY a.txt /b.txt\n", tags=["s"],
          squash=True)
    assert len(store.image("s").layers()) == 1
    assert set(image_files("s")) == {"a.txt", "b.txt"}
    # A stage built FROM another one: the layers over busybox, where the chain starts.
    build(tmp_path, "FROM busybox AS base\nCOPY a.txt /a.txt\n"
                    "FROM base\nCOPY a.txt /b.txt\n", tags=["t"], squash=True)
    assert len(store.image("t").layers()) == 2
    assert {"a.txt", "b.txt"} <= set(image_files("t"))
