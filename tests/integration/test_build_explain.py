"""Explained cache misses: every step that ran says why, in the plain progress
(``#5 cache miss: ...``), in the API's step reports, and in ``lamina build --explain``; the
reason is found against the closest cached step."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina

DOCKERFILE = """\
FROM busybox
ARG V=1
COPY src/ /src/
RUN echo $V > /v
ENV A=1
RUN echo $A > /a
"""


@pytest.fixture
def ctx(tmp_path) -> Path:
    return make_context(tmp_path / "ctx", DOCKERFILE,
                        {f"src/f{n}.txt": f"file {n}\n" for n in range(8)})


def reasons(built) -> dict[str, str | None]:
    """Each step as written -> why it ran (None: cached)."""
    return {s.instruction: s.reason for s in built.result.steps}


def test_a_first_build_names_the_new_base_and_a_rebuild_has_no_reasons(build, ctx):
    first = build(ctx)
    new_base = ("nothing cached on the base image docker.io/library/busybox:latest yet "
                "(a new or changed base)")
    assert reasons(first) == {
        "ARG V=1": new_base,
        "COPY src/ /src/": f"{new_base} (at the earlier step ARG V=1)",
        "RUN echo $V > /v": f"{new_base} (at the earlier step ARG V=1)",
        "ENV A=1": f"{new_base} (at the earlier step ARG V=1)",
        "RUN echo $A > /a": f"{new_base} (at the earlier step ARG V=1)"}
    again = build(ctx)
    assert all(s.reason is None and s.cached for s in again.result.steps)
    assert "cache miss" not in again.log


def test_a_changed_instruction_names_the_old_one(build, ctx):
    build(ctx)
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("RUN echo $A > /a", "RUN echo $A >> /a"))
    again = build(ctx)
    assert again.cached() == [True, True, False]
    assert "cache miss: the instruction changed (was: RUN echo $A > /a)" in again.log


def test_a_changed_build_arg_is_named_and_later_steps_name_it_too(build, ctx):
    build(ctx, build_args={"V": "1"})
    again = build(ctx, build_args={"V": "2"})
    assert again.cached() == [False, False, False]
    why = reasons(again)
    assert why["ARG V=1"] == "build args changed: V"
    # The steps after it ran because their parent changed: they name the first miss.
    assert why["COPY src/ /src/"] == "build args changed: V (at the earlier step ARG V=1)"
    assert why["RUN echo $A > /a"] == "build args changed: V (at the earlier step ARG V=1)"
    assert "cache miss: build args changed: V (at the earlier step ARG V=1)" in again.log


def test_one_changed_file_and_the_steps_after_it(build, ctx):
    build(ctx)
    (ctx / "src" / "f3.txt").write_text("changed\n")
    again = build(ctx)
    assert again.cached() == [False, False, False]
    why = reasons(again)
    assert why["COPY src/ /src/"] == "1 file changed: src/f3.txt (of 8 files)"
    parent = "1 file changed: src/f3.txt (of 8 files) (at the earlier step [2/4] COPY src/ /src/)"
    assert why["RUN echo $V > /v"] == parent and why["ENV A=1"] == parent
    # Every miss has its line in the plain progress.
    assert again.log.count("cache miss: ") == 3


def test_many_changed_files_show_a_few_names_and_the_count(build, ctx):
    build(ctx)
    for n in (1, 2, 4, 6, 7):
        (ctx / "src" / f"f{n}.txt").write_text("changed\n")
    again = build(ctx)
    changed = "5 files changed: src/f1.txt, src/f2.txt, src/f4.txt (+2 more) (of 8 files)"
    assert reasons(again)["COPY src/ /src/"] == changed
    assert f"cache miss: {changed}\n" in again.log


def test_added_and_removed_files(build, ctx):
    build(ctx)
    (ctx / "src" / "f0.txt").unlink()
    (ctx / "src" / "new.txt").write_text("new\n")
    (ctx / "src" / "newer.txt").write_text("newer\n")
    again = build(ctx)
    assert reasons(again)["COPY src/ /src/"] == (
        "2 files added: src/new.txt, src/newer.txt; 1 file removed: src/f0.txt (of 9 files)")


def test_the_reason_is_found_against_the_closest_cached_step(build, ctx):
    build(ctx)                                          # version A
    (ctx / "src" / "f0.txt").write_text("B\n")
    build(ctx)                                          # version B: f0 changed, newest
    (ctx / "src" / "f0.txt").write_text("file 0\n")
    (ctx / "src" / "f5.txt").write_text("C\n")
    again = build(ctx)                                  # A with f5 changed
    assert reasons(again)["COPY src/ /src/"] == "1 file changed: src/f5.txt (of 8 files)"


def test_a_changed_base_image_is_named(build, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    build(base, "FROM busybox\nRUN echo one > /base\n", tags=["base:1"])
    child = tmp_path / "child"
    child.mkdir()
    build(child, "FROM base:1\nRUN cat /base > /copy\n")
    build(base, "FROM busybox\nRUN echo two > /base\n", tags=["base:1"])
    again = build(child, "FROM base:1\nRUN cat /base > /copy\n")
    assert reasons(again)["RUN cat /base > /copy"] == (
        "nothing cached on the base image docker.io/library/base:1 yet (a new or changed base)")


def test_a_changed_stage_names_the_step_that_changed_in_it(build, tmp_path):
    (tmp_path / "x.txt").write_text("1\n")
    dockerfile = ("FROM busybox AS build\nCOPY x.txt /x.txt\n"
                  "FROM build\nRUN cat /x.txt > /y\n")
    build(tmp_path, dockerfile)
    (tmp_path / "x.txt").write_text("2\n")
    again = build(tmp_path, dockerfile)
    assert reasons(again)["RUN cat /x.txt > /y"] == (
        "1 file changed: x.txt (at the earlier step [build 2/2] COPY x.txt /x.txt)")


def test_no_cache_is_the_reason_with_no_cache(build, ctx):
    build(ctx)
    again = build(ctx, no_cache=True)
    assert set(reasons(again).values()) == {"--no-cache"}


def test_explain_lists_every_step(lamina, ctx):
    lamina("build", "-q", str(ctx))
    (ctx / "src" / "f3.txt").write_text("changed\n")
    out = lamina("build", "--explain", "--progress", "plain", str(ctx)).stdout
    assert out == (
        "explain: 4 of 5 steps ran\n"
        "  CACHED ARG V=1\n"
        "  RAN    [2/4] COPY src/ /src/\n"
        "         1 file changed: src/f3.txt (of 8 files)\n"
        "  RAN    [3/4] RUN echo $V > /v\n"
        "         1 file changed: src/f3.txt (of 8 files) (at the earlier step [2/4] COPY "
        "src/ /src/)\n"
        "  RAN    ENV A=1\n"
        "         1 file changed: src/f3.txt (of 8 files) (at the earlier step [2/4] COPY "
        "src/ /src/)\n"
        "  RAN    [4/4] RUN echo $A > /a\n"
        "         1 file changed: src/f3.txt (of 8 files) (at the earlier step [2/4] COPY "
        "src/ /src/)\n")


def test_a_step_added_at_the_end_is_a_new_step(build, ctx):
    build(ctx)
    (ctx / "Dockerfile").write_text(DOCKERFILE + "RUN echo more > /more\n")
    again = build(ctx)
    assert again.cached() == [True, True, True, False]
    assert reasons(again)["RUN echo more > /more"] == (
        "nothing cached after the previous step yet (a new step)")


def test_a_changed_metadata_step_is_named_on_the_next_step_shown(build, ctx):
    build(ctx)
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("ENV A=1", "ENV A=2"))
    again = build(ctx)
    assert reasons(again)["ENV A=2"] == "the instruction changed (was: ENV A=1)"
    assert "cache miss: the instruction changed (was: ENV A=1) (at the earlier step ENV A=2)" \
        in again.log


def test_reasons_can_be_skipped_and_change_nothing_else(build, ctx):
    build(ctx)
    (ctx / "src" / "f3.txt").write_text("changed\n")
    quiet = build(ctx, reasons=False)
    assert [s.cached for s in quiet.result.steps] == [True, False, False, False, False]
    assert set(reasons(quiet).values()) == {None}
    assert build(ctx).result.image_id == quiet.result.image_id   # all cached now


def test_quiet_and_explain_still_explain(lamina, ctx):
    lamina("build", "-q", str(ctx))
    (ctx / "src" / "f3.txt").write_text("changed again\n")
    out = lamina("build", "-q", "--explain", str(ctx)).stdout
    assert "1 file changed: src/f3.txt (of 8 files)" in out
