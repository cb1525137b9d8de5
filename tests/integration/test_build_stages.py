"""Multi-stage builds, build arguments and ONBUILD: what the built image holds."""
from __future__ import annotations

from pathlib import Path

import pytest

from lamina.errors import DockerfileError

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files

MULTI = """\
FROM busybox AS builder
RUN echo built > /artifact
FROM busybox AS unused
RUN echo never > /never && exit 1
FROM busybox AS tester
RUN echo tested > /tested
FROM busybox
COPY --from=builder /artifact /app/artifact
COPY --from=0 /artifact /app/by-index
"""


def test_only_needed_stages_run_and_copy_from_works(build, tmp_path, image_files):
    built = build(tmp_path, MULTI, tags=["multi"])
    files = image_files("multi")
    assert files["app/artifact"][4] == b"built\n" and files["app/by-index"][4] == b"built\n"
    assert "tested" not in files and "artifact" not in files
    assert [s.stage for s in built.result.steps] == ["builder", "3", "3"]
    assert "[builder 2/2] RUN echo built > /artifact" in built.log
    assert "[stage-3 2/3] COPY --from=builder /artifact /app/artifact" in built.log


def test_target_stops_at_a_stage(build, tmp_path, image_files):
    built = build(tmp_path, MULTI, target="tester", tags=["t"])
    files = image_files("t")
    assert "tested" in files and "artifact" not in files
    assert [s.stage for s in built.result.steps] == ["tester"]
    with pytest.raises(DockerfileError, match="stage 'nope' not found"):
        build(tmp_path, MULTI, target="nope")


def test_from_an_earlier_stage_inherits_its_files_and_args(build, tmp_path, image_files):
    build(tmp_path, "FROM busybox AS base\nARG V=1\nRUN echo $V > /v\n"
                    "FROM base\nRUN cat /v > /copy && echo $V >> /copy\n", tags=["t"])
    assert image_files("t")["copy"][4] == b"1\n1\n"


def test_build_args_defaults_and_scoping(store, build, tmp_path, image_files):
    dockerfile = ("ARG BASE=busybox\nARG GLOBAL=g\nFROM $BASE\n"
                  "RUN echo \"global=[$GLOBAL]\" > /scope\n"
                  "ARG GLOBAL\nARG NAME=default\n"
                  "RUN echo \"global=[$GLOBAL] name=[$NAME]\" >> /scope\n")
    first = build(tmp_path, dockerfile, tags=["t"], build_args={"NAME": "given", "EXTRA": "x"})
    assert image_files("t")["scope"][4] == b"global=[]\nglobal=[g] name=[given]\n"
    assert first.result.warnings == (
        "[Warning] One or more build-args [EXTRA] were not consumed",)
    # The history shows the ARGs a RUN saw, as Docker does.
    history = [h.created_by for h in store.image("t").config().history]
    assert "RUN |2 GLOBAL=g NAME=given /bin/sh -c echo \"global=[$GLOBAL] name=[$NAME]\" " \
           ">> /scope # buildkit" in history
    # A changed build arg misses the cache from the first step that sees it.
    again = build(tmp_path, dockerfile, build_args={"NAME": "other"})
    assert again.cached() == [True, False]
    assert "cache miss: build args changed: NAME" in again.log


def test_onbuild_triggers_run_in_the_child_build(store, build, tmp_path, image_files):
    parent = tmp_path / "parent"
    child = tmp_path / "child"
    parent.mkdir()
    child.mkdir()
    (child / "src.txt").write_text("child source\n")
    build(parent, "FROM busybox\nONBUILD COPY src.txt /from-trigger.txt\n"
                  "ONBUILD RUN echo triggered > /triggered\n", tags=["parent"])
    assert store.image("parent").config().config.on_build == (
        "COPY src.txt /from-trigger.txt", "RUN echo triggered > /triggered")
    built = build(child, "FROM parent\nRUN cat /triggered\n", tags=["child"])
    files = image_files("child")
    assert files["from-trigger.txt"][4] == b"child source\n" and "triggered" in files
    assert store.image("child").config().config.on_build is None
    assert len(built.cached()) == 3


def test_copy_from_a_later_stage_is_refused(build, tmp_path):
    with pytest.raises(DockerfileError, match="needs to be defined before"):
        build(tmp_path, "FROM busybox\nCOPY --from=later /x /x\nFROM busybox AS later\n")


def test_from_scratch(store, build, tmp_path: Path, image_files):
    (tmp_path / "hello").write_text("hi\n")
    build(tmp_path, "FROM scratch\nCOPY hello /\nCMD [\"/hello\"]\n", tags=["scratchy"])
    config = store.image("scratchy").config()
    assert config.config.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                 "/sbin:/bin",)
    assert set(image_files("scratchy")) == {"hello"}


def test_a_run_in_a_bare_image_leaves_no_mount_points(build, tmp_path, image_files,
                                                      layer_members):
    build(tmp_path, "FROM busybox AS bb\nFROM scratch\n"
                    "COPY --from=bb /bin/busybox /bin/busybox\n"
                    "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox echo hi > /hi\"]\n",
          tags=["bare"])
    assert set(layer_members("bare")) == {"hi"}
    assert set(image_files("bare")) == {"bin", "bin/busybox", "hi"}
