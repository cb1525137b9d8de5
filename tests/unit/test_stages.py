"""Stages and build arguments: Docker's rules as a user of ``docker build`` notices them.

References: the Dockerfile reference, sections "Scope", "Using ARG variables", "Predefined ARGs",
"Automatic platform ARGs in the global scope", "Environment replacement" and "Here-Documents".
"""
from __future__ import annotations

import dataclasses

import pytest

from lamina.dockerfile.instructions import (Add, Arg, Copy, Env, Expose, Label, Onbuild, Run,
                                            StopSignal, User, Volume, Workdir)
from lamina.dockerfile.stages import (Dockerfile, StageScope, Step, global_args, load_dockerfile,
                                      platform_args, resolve_from, walk_stage)
from lamina.dockerfile.shell import ShellLex
from lamina.errors import DockerfileError
from lamina.image.platform import Platform

# A cross build, so that TARGET* and BUILD* differ and a test can tell them apart.
TARGET = Platform("linux", "arm64")
BUILD = Platform("linux", "amd64")
PLATFORM = platform_args(TARGET, BUILD)


def load(text: str) -> Dockerfile:
    return load_dockerfile(text)


def steps(text: str, stage: str | int = -1, build_args: dict[str, str] | None = None,
          image_env: dict[str, str] | None = None) -> list[Step]:
    df = load(text)
    build_args = build_args or {}
    target = df.stages[stage] if isinstance(stage, int) else df.stage(stage)
    scope = global_args(df, build_args, PLATFORM)
    return list(walk_stage(df, target, build_args=build_args, scope=scope, image_env=image_env))


def last(text: str, **kw) -> Step:
    return steps(text, **kw)[-1]


def variables(step: Step) -> dict[str, str]:
    """What the instruction after ``step`` sees: the stage's ARGs, overridden by ENV."""
    out = dict(step.args)
    out.update(step.env)
    return out


def base_of(text: str, build_args: dict[str, str] | None = None, stage: int = 0) -> str:
    df = load(text)
    scope = global_args(df, build_args, PLATFORM)
    resolved, _ = resolve_from(df, df.stages[stage], scope)
    return resolved.base_name


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        load(text)
    return info.value


# -- stages ---------------------------------------------------------------------------------------

MULTI = """\
FROM golang:1.22 AS Build
RUN go build
FROM alpine AS test
RUN true
FROM scratch
COPY --from=build /app /app
"""


def test_stages_are_numbered_and_named_in_order():
    df = load(MULTI)
    assert [(s.index, s.name) for s in df.stages] == [(0, "build"), (1, "test"), (2, None)]
    assert [s.display_name for s in df.stages] == ["build", "test", "2"]
    assert [type(i) for i in df.stages[0].instructions] == [Run]


def test_stage_by_name_is_case_insensitive():
    df = load(MULTI)
    assert df.stage("build") is df.stages[0]
    assert df.stage("BUILD") is df.stages[0]
    assert df.stage("Test") is df.stages[1]


def test_stage_by_index_as_number_or_digits():
    df = load(MULTI)
    assert df.stage(2) is df.stages[2]
    assert df.stage("1") is df.stages[1]
    assert df.stage(0) is df.stages[0]


def test_unknown_stage_name_lists_the_named_stages():
    df = load(MULTI)
    with pytest.raises(DockerfileError) as info:
        df.stage("tset")
    assert "tset" in info.value.message
    assert "build" in info.value.hint and "test" in info.value.hint


def test_unknown_stage_name_when_no_stage_is_named():
    with pytest.raises(DockerfileError) as info:
        load("FROM alpine\n").stage("build")
    assert "none" in info.value.hint


@pytest.mark.parametrize("ref", [3, -1, "3", 99])
def test_stage_index_out_of_range(ref):
    with pytest.raises(DockerfileError) as info:
        load(MULTI).stage(ref)
    assert "out of range" in info.value.message
    assert "3 stage(s)" in info.value.message


def test_duplicate_stage_name_is_an_error_at_the_second_from():
    err = error("FROM alpine AS app\nRUN true\nFROM debian AS APP\n")
    assert "duplicate stage name 'app'" in err.message
    assert (err.file, err.line) == ("Dockerfile", 3)


def test_instruction_before_first_from_is_an_error():
    err = error("ARG V=1\nRUN echo hi\nFROM alpine\n")
    assert err.line == 2
    assert "RUN before the first FROM" in err.message


def test_only_args_before_from_are_global():
    df = load("ARG A=1\nARG B\nFROM alpine\nARG C\n")
    assert [s.key for a in df.meta_args for s in a.args] == ["A", "B"]
    assert [type(i) for i in df.stages[0].instructions] == [Arg]


def test_dockerfile_with_only_args_has_no_stage():
    err = error("ARG A=1\nARG B=2\n")
    assert "no FROM" in err.message
    assert err.line is not None


def test_errors_list_collects_every_bad_instruction():
    errors: list[DockerfileError] = []
    df = load_dockerfile("FROM alpine\nRUNN x\nCOPY onlyone\nRUN ok\n", errors=errors)
    assert [e.line for e in errors] == [2, 3]
    assert [type(i) for i in df.stages[0].instructions] == [Run]


def test_broken_from_does_not_make_the_rest_look_like_it_comes_before_from():
    # The FROM itself is wrong; what follows belongs to its (lost) stage, not to the global
    # scope, so "RUN before the first FROM" would send the user looking in the wrong place.
    errors: list[DockerfileError] = []
    with pytest.raises(DockerfileError) as info:
        load_dockerfile("FROM alpine AS 1st\nRUN make\n", errors=errors)
    assert [e.line for e in errors] == [1]
    assert "invalid name for build stage" in errors[0].message
    assert info.value is errors[0]


def test_broken_from_then_a_good_one():
    errors: list[DockerfileError] = []
    df = load_dockerfile("FROM a b\nRUN make\nFROM alpine AS ok\nRUN true\n", errors=errors)
    assert [e.line for e in errors] == [1]
    assert [s.name for s in df.stages] == ["ok"]
    assert len(df.stages[0].instructions) == 1


def test_escape_token_comes_from_the_directive():
    assert load("FROM alpine\n").escape_token == "\\"
    assert load("# escape=`\nFROM alpine\n").escape_token == "`"


# -- global ARGs and FROM -------------------------------------------------------------------------

def test_global_arg_default_used_in_from():
    assert base_of("ARG V=3.18\nFROM alpine:$V\n") == "alpine:3.18"


def test_build_arg_overrides_global_default():
    assert base_of("ARG V=3.18\nFROM alpine:${V}\n", {"V": "3.20"}) == "alpine:3.20"


def test_build_arg_for_undeclared_name_is_not_used_in_from():
    df = load("FROM alpine:$V\n")
    resolved, unset = resolve_from(df, df.stages[0], global_args(df, {"V": "3.20"}, PLATFORM))
    assert resolved.base_name == "alpine:"
    assert unset == {"V"}


def test_global_args_expand_earlier_global_args():
    text = "ARG REG=docker.io\nARG IMG=$REG/library/alpine\nFROM ${IMG}:3\n"
    assert base_of(text) == "docker.io/library/alpine:3"
    assert base_of(text, {"REG": "ghcr.io"}) == "ghcr.io/library/alpine:3"


def test_declared_global_without_value_is_none():
    df = load("ARG V\nFROM alpine\n")
    assert global_args(df, {}, PLATFORM)["V"] is None
    assert global_args(df, {"V": "x"}, PLATFORM)["V"] == "x"


def test_second_from_uses_global_args_too():
    text = "ARG A=alpine\nARG D=debian\nFROM $A\nFROM $D:12\n"
    assert base_of(text, stage=1) == "debian:12"


def test_platform_args_visible_in_from():
    text = "FROM --platform=$BUILDPLATFORM golang AS build\nFROM alpine:$TARGETARCH\n"
    df = load(text)
    scope = global_args(df, {}, PLATFORM)
    first, _ = resolve_from(df, df.stages[0], scope)
    second, unset = resolve_from(df, df.stages[1], scope)
    assert first.platform == "linux/amd64"
    assert second.base_name == "alpine:arm64"
    assert not unset


def test_platform_args_default_to_this_machine():
    args = global_args(load("FROM alpine\n"))
    assert args["TARGETPLATFORM"] == args["BUILDPLATFORM"]
    assert args["TARGETPLATFORM"].startswith(args["TARGETOS"] + "/" + args["TARGETARCH"])


def test_platform_args_values():
    assert PLATFORM["TARGETPLATFORM"] == "linux/arm64"
    assert (PLATFORM["TARGETOS"], PLATFORM["TARGETARCH"], PLATFORM["TARGETVARIANT"]) == (
        "linux", "arm64", "")
    assert PLATFORM["BUILDARCH"] == "amd64"
    arm = platform_args(Platform("linux", "arm", "v7"))
    assert (arm["TARGETPLATFORM"], arm["TARGETVARIANT"]) == ("linux/arm/v7", "v7")


def test_from_stage_name_is_literal():
    # Stage names are not expanded: "$N" is simply not a valid name.
    err = error("ARG N=x\nFROM alpine AS $N\n")
    assert "invalid name for build stage" in err.message
    assert err.line == 2


def test_expansion_error_in_from_carries_the_line():
    df = load("ARG V\nFROM alpine:${V:?required}\n")
    with pytest.raises(DockerfileError) as info:
        resolve_from(df, df.stages[0], global_args(df, {}, PLATFORM))
    assert info.value.line == 2
    assert "required" in info.value.message


def test_expansion_error_in_global_default_carries_the_line():
    df = load("ARG A\nARG B=${A:?set A}\nFROM alpine\n")
    with pytest.raises(DockerfileError) as info:
        global_args(df, {}, PLATFORM)
    assert info.value.line == 2
    # A --build-arg for B means its default is never looked at.
    assert global_args(df, {"B": "x"}, PLATFORM)["B"] == "x"


# -- ARG inside a stage ---------------------------------------------------------------------------

def test_global_arg_not_visible_in_stage_without_redeclaring():
    step = last("ARG V=3.18\nFROM alpine\nWORKDIR /v$V\n")
    assert step.expanded.path == "/v"
    assert step.unset_vars == {"V"}


def test_bare_arg_in_stage_takes_the_global_default():
    step = last("ARG V=3.18\nFROM alpine\nARG V\nWORKDIR /v$V\n")
    assert step.expanded.path == "/v3.18"


def test_bare_arg_in_stage_takes_the_build_arg_over_the_global_default():
    step = last("ARG V=3.18\nFROM alpine\nARG V\nWORKDIR /v$V\n", build_args={"V": "9"})
    assert step.expanded.path == "/v9"


def test_bare_arg_without_any_value_is_unset():
    step = last("FROM alpine\nARG V\nWORKDIR /v$V\n")
    assert step.expanded.path == "/v"
    assert ("V", "") not in step.args
    assert "V" not in dict(step.args)


def test_arg_default_inside_stage():
    assert last("FROM alpine\nARG X=d\nUSER $X\n").expanded.user == "d"


def test_build_arg_overrides_stage_arg_default():
    assert last("FROM alpine\nARG X=d\nUSER $X\n", build_args={"X": "b"}).expanded.user == "b"


def test_stage_arg_default_wins_over_global_value():
    # ARG X=d in the stage has its own default; the global X does not reach it.
    assert last("ARG X=g\nFROM alpine\nARG X=d\nUSER $X\n").expanded.user == "d"


def test_build_arg_not_declared_in_stage_is_invisible():
    step = last("FROM alpine\nUSER $X\n", build_args={"X": "b"})
    assert step.expanded.user == ""
    assert step.unset_vars == {"X"}


def test_arg_is_visible_only_after_its_declaration():
    result = steps("FROM alpine\nUSER $X\nARG X=1\nUSER $X\n")
    assert [s.expanded.user for s in result if isinstance(s.expanded, User)] == ["", "1"]


def test_env_wins_over_arg_declared_before_it():
    # The Dockerfile reference: ENV overrides an ARG of the same name, build arg or not.
    step = last("FROM alpine\nARG X=arg\nENV X=env\nUSER $X\n", build_args={"X": "b"})
    assert step.expanded.user == "env"
    assert step.env == (("X", "env"),)


def test_arg_with_a_value_after_env_wins_for_the_stage():
    # BuildKit keeps one list of variables and the later write wins (unlike the classic
    # builder); the ENV stays what the image gets.
    result = steps("FROM alpine\nENV X=env\nARG X=arg\nUSER $X\nENV X=again\nUSER $X\n")
    assert [s.expanded.user for s in result if isinstance(s.expanded, User)] == ["arg", "again"]
    assert result[2].env == (("X", "env"),)


def test_arg_overrides_env_from_base_image():
    # The common ARG DEBIAN_FRONTEND=noninteractive over a base image's ENV.
    df = load("FROM debian\nARG DEBIAN_FRONTEND=noninteractive\nRUN apt-get update\n")
    scope = StageScope(ShellLex(), global_args(df, {}, PLATFORM), {},
                       {"DEBIAN_FRONTEND": "teletype", "PATH": "/usr/bin"})
    for inst in df.stages[0].instructions:
        scope.step(inst)
    assert scope.run_env() == {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/bin"}
    step = last("FROM debian\nARG PATH=/x\nWORKDIR $PATH\n", image_env={"PATH": "/usr/bin"})
    assert step.expanded.path == "/x"


def test_bare_arg_without_value_leaves_env_and_earlier_value_alone():
    step = last("FROM debian\nARG PATH\nWORKDIR $PATH\n", image_env={"PATH": "/usr/bin"})
    assert step.expanded.path == "/usr/bin"
    assert last("FROM alpine\nARG A=1\nARG A\nUSER $A\n").expanded.user == "1"


def test_arg_defaults_expand_earlier_args_and_env():
    step = last("FROM alpine\nARG A=1\nENV E=e\nARG B=${A}-$E\nUSER $B\n")
    assert step.expanded.user == "1-e"


def test_arg_default_sees_names_declared_before_it_in_the_same_instruction():
    # Docker declares the names of one ARG one at a time (unlike ENV, see below).
    step = last("FROM alpine\nARG A=1 B=$A\nUSER $B\n")
    assert step.expanded.user == "1"


def test_arg_default_not_expanded_when_the_build_arg_gives_the_value():
    step = last("FROM alpine\nARG X=${NOPE:?needed}\nUSER $X\n", build_args={"X": "b"})
    assert step.expanded.user == "b"
    assert all(not s.unset_vars for s in steps(
        "FROM alpine\nARG X=$NOPE\n", build_args={"X": "b"}))


def test_step_args_and_env_are_what_is_set_after_the_step():
    result = steps("FROM alpine\nARG A=1\nARG B\nENV E=2\n")
    assert result[0].args == (("A", "1"),)
    assert result[1].args == (("A", "1"),)      # B is declared but has no value
    assert result[2].env == (("E", "2"),)
    assert variables(result[2]) == {"A": "1", "E": "2"}


def test_platform_args_inside_stage_need_declaring():
    text = "FROM alpine\nWORKDIR /a/$TARGETARCH\nARG TARGETARCH\nWORKDIR /b/$TARGETARCH\n"
    first, _, second = steps(text)
    assert first.expanded.path == "/a/"
    assert first.unset_vars == {"TARGETARCH"}
    assert second.expanded.path == "/b/arm64"


def test_build_platform_args_inside_stage():
    step = last("FROM alpine\nARG BUILDPLATFORM TARGETOS\nLABEL b=$BUILDPLATFORM t=$TARGETOS\n")
    assert dict(step.expanded.pairs) == {"b": "linux/amd64", "t": "linux"}


def test_variables_do_not_leak_into_an_unrelated_stage():
    text = "FROM alpine AS one\nARG A=1\nENV E=2\nFROM alpine AS two\nUSER $A:$E\n"
    step = last(text, stage="two")
    assert step.expanded.user == ":"
    assert step.unset_vars == {"A", "E"}
    assert step.args == () and step.env == ()


def test_stage_built_from_an_earlier_stage_inherits_its_args():
    # The Dockerfile reference ("Scope"): an ARG declared in a stage is inherited by the stages
    # based on it; ENV comes with the base image's config (the builder passes it as image_env).
    text = ("ARG G=g\nFROM alpine AS base\nARG G\nARG NAME=joe\n"
            "FROM base AS child\nUSER $NAME:$G\nFROM alpine AS other\nUSER $NAME\n")
    assert last(text, stage="child").expanded.user == "joe:g"
    assert last(text, stage="child", build_args={"NAME": "ann"}).expanded.user == "ann:g"
    assert last(text, stage="other").expanded.user == ""


def test_stage_inherits_args_through_a_chain_of_stages():
    text = ("FROM alpine AS a\nARG X=1\nFROM a AS b\nARG Y=$X-2\n"
            "FROM b AS c\nUSER $X:$Y\n")
    assert last(text, stage="c").expanded.user == "1:1-2"


# -- what is expanded -----------------------------------------------------------------------------

def test_run_is_never_expanded():
    step = last("FROM alpine\nARG X=1\nRUN echo $X ${Y:?unset}\n")
    assert isinstance(step.expanded, Run)
    assert step.expanded.cmd_line == ("echo $X ${Y:?unset}",)
    assert not step.unset_vars


def test_run_heredoc_is_not_expanded():
    step = last("FROM alpine\nARG X=1\nRUN <<EOF\necho $X\nEOF\n")
    assert step.expanded.files[0].data == "echo $X\n"


def test_run_mount_values_are_expanded():
    step = last("FROM alpine\nARG C=/root/.cache\nRUN --mount=type=cache,target=$C true\n")
    assert step.expanded.mounts[0].target == "/root/.cache"


def test_expanded_instructions():
    text = """\
FROM alpine
ARG D=/app U=web P=8080 S=SIGTERM K=k V=v
COPY --chown=$U src/$K ${D}/
ADD --chmod=644 $K.tar $D
ENV HOME=$D
WORKDIR $D/w
LABEL $K=$V
EXPOSE $P
USER $U
VOLUME $D/data
STOPSIGNAL $S
"""
    got = [s.expanded for s in steps(text)][1:]
    copy, add, env, workdir, label, expose, user, volume, stop = got
    assert isinstance(copy, Copy) and (copy.sources, copy.dest, copy.chown) == (
        ("src/k",), "/app/", "web")
    assert isinstance(add, Add) and (add.sources, add.dest) == (("k.tar",), "/app")
    assert isinstance(env, Env) and env.pairs == (("HOME", "/app"),)
    assert isinstance(workdir, Workdir) and workdir.path == "/app/w"
    assert isinstance(label, Label) and label.pairs == (("k", "v"),)
    assert isinstance(expose, Expose) and expose.ports == ("8080",)
    assert isinstance(user, User) and user.user == "web"
    assert isinstance(volume, Volume) and volume.volumes == ("/app/data",)
    assert isinstance(stop, StopSignal) and stop.signal == "SIGTERM"


def test_expose_variable_with_several_ports_splits():
    step = last("FROM alpine\nARG PORTS=\"80 443/udp\"\nEXPOSE $PORTS\n")
    assert step.expanded.ports == ("80", "443/udp")


def test_copy_from_is_expanded():
    step = last("FROM alpine\nARG SRC=build\nCOPY --from=$SRC /a /b\n")
    assert step.expanded.from_ == "build"


def test_onbuild_is_not_expanded():
    step = last("FROM alpine\nARG X=1\nONBUILD COPY $X /x\n")
    assert isinstance(step.expanded, Onbuild)
    assert step.expanded.expression == "COPY $X /x"
    assert not step.unset_vars


def test_instruction_as_written_is_kept():
    step = last("FROM alpine\nARG X=1\nUSER $X\n")
    assert step.instruction.user == "$X"
    assert step.expanded.user == "1"


def test_env_pairs_in_one_instruction_see_the_old_values():
    # Docker's rule: ENV abc=hello def=$abc in one instruction gives def the previous abc.
    result = steps("FROM alpine\nENV a=old\nENV a=1 b=$a\nENV c=$a\n")
    assert result[1].expanded.pairs == (("a", "1"), ("b", "old"))
    assert result[2].expanded.pairs == (("c", "1"),)


def test_env_pair_sees_nothing_when_there_was_no_old_value():
    step = last("FROM alpine\nENV a=1 b=$a\n")
    assert step.expanded.pairs == (("a", "1"), ("b", ""))
    assert step.unset_vars == {"a"}


def test_env_quotes_are_removed_and_escapes_applied():
    step = last('FROM alpine\nENV A="x y" B=\'$HOME\' C=\\$HOME\n')
    assert step.expanded.pairs == (("A", "x y"), ("B", "$HOME"), ("C", "$HOME"))


def test_copy_heredoc_body_is_expanded_quotes_kept():
    # As in a shell here-document, quotes are plain text there: they stay, and '$N' expands
    # too (BuildKit expands the body with quote processing off, moby/buildkit#2442).
    step = last('FROM alpine\nARG N=world\nCOPY <<EOF /hello\nhello "$N" \'$N\'\nEOF\n')
    (content,) = step.expanded.source_contents
    assert content.data == 'hello "world" \'world\'\n'


def test_copy_heredoc_body_backslash_escapes_dollar():
    step = last('FROM alpine\nARG N=world\nCOPY <<EOF /hello\n\\$N is $N, say \\"hi\\"\nEOF\n')
    assert step.expanded.source_contents[0].data == '$N is world, say "hi"\n'


def test_copy_heredoc_unset_names_are_reported():
    step = last("FROM alpine\nCOPY <<EOF /x\n$NOPE\nEOF\n")
    assert step.expanded.source_contents[0].data == "\n"
    assert step.unset_vars == {"NOPE"}


def test_copy_heredoc_escape_is_a_backslash_even_with_escape_directive():
    step = last("# escape=`\nFROM alpine\nARG N=1\nCOPY <<EOF /x\n`$N \\$N\nEOF\n")
    assert step.expanded.source_contents[0].data == "`1 $N\n"


def test_copy_quoted_heredoc_body_is_not_expanded():
    step = last("FROM alpine\nARG N=world\nCOPY <<'EOF' /hello\nhello $N \\$N '$N'\nEOF\n")
    (content,) = step.expanded.source_contents
    assert content.data == "hello $N \\$N '$N'\n"
    assert not step.unset_vars


def test_add_heredoc_body_is_expanded():
    step = last("FROM alpine\nARG N=world\nADD <<EOF /hello\n$N\nEOF\n")
    assert step.expanded.source_contents[0].data == "world\n"


def test_backtick_escape_directive_is_used_for_expansion():
    text = "# escape=`\nFROM windows\nARG X=1\nWORKDIR C:\\dir\\$X\nUSER `$X\n"
    *_, workdir, user = steps(text)
    assert workdir.expanded.path == "C:\\dir\\1"
    assert user.expanded.user == "$X"


def test_backslash_escapes_dollar_by_default():
    assert last("FROM alpine\nARG X=1\nUSER \\$X\n").expanded.user == "$X"


def test_unset_vars_lists_the_names_referenced_but_unset():
    step = last("FROM alpine\nARG SET=1\nCOPY $SET $MISSING ${OTHER:-x} /dst/\n")
    assert step.unset_vars == {"MISSING", "OTHER"}
    assert step.expanded.sources == ("1", "", "x")


def test_set_but_empty_is_not_unset():
    step = last("FROM alpine\nARG E=\nUSER a$E\n")
    assert step.expanded.user == "a"
    assert not step.unset_vars


def test_expansion_error_carries_the_instruction_line():
    text = "FROM alpine\nARG X\nRUN true\nWORKDIR ${X:?must be set}\n"
    with pytest.raises(DockerfileError) as info:
        steps(text)
    assert info.value.line == 4
    assert info.value.file == "Dockerfile"
    assert "must be set" in info.value.message


def test_expansion_error_in_copy_heredoc_carries_the_line():
    text = "FROM alpine\nCOPY <<EOF /x\n${X:?need X}\nEOF\n"
    with pytest.raises(DockerfileError) as info:
        steps(text)
    assert info.value.line == 2


def test_walk_stage_computes_global_scope_when_not_given():
    df = load("ARG V=1\nFROM alpine\nARG V\nUSER $V\n")
    (_, user) = walk_stage(df, df.stages[0], build_args={"V": "2"})
    assert user.expanded.user == "2"


# -- run_env --------------------------------------------------------------------------------------

def scope_after(text: str, build_args: dict[str, str]) -> StageScope:
    df = load(text)
    scope = StageScope(ShellLex(df.escape_token), global_args(df, build_args, PLATFORM),
                       build_args)
    for inst in df.stages[-1].instructions:
        scope.step(inst)
    return scope


def test_proxy_build_args_reach_run_without_declaration():
    scope = scope_after("FROM alpine\nRUN true\n",
                        {"HTTP_PROXY": "http://p:3128", "no_proxy": "local", "OTHER": "x"})
    assert scope.run_env() == {"HTTP_PROXY": "http://p:3128", "no_proxy": "local"}


def test_run_env_has_stage_args_overridden_by_env():
    scope = scope_after("FROM alpine\nARG A=1 B=2\nENV B=env\n", {"HTTP_PROXY": "p"})
    assert scope.run_env() == {"A": "1", "B": "env", "HTTP_PROXY": "p"}


def test_declared_proxy_arg_takes_its_stage_value():
    scope = scope_after("FROM alpine\nARG HTTP_PROXY=default\n", {})
    assert scope.run_env() == {"HTTP_PROXY": "default"}
    scope = scope_after("FROM alpine\nENV HTTP_PROXY=env\n", {"HTTP_PROXY": "arg"})
    assert scope.run_env() == {"HTTP_PROXY": "env"}


def test_walking_a_stage_leaves_its_instructions_as_written():
    df = load("FROM alpine\nARG X=1\nUSER $X\n")
    user = df.stages[0].instructions[1]
    list(walk_stage(df, df.stages[0], scope=global_args(df, {}, PLATFORM)))
    assert user.user == "$X"
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.user = "x"  # type: ignore[misc]
