"""Properties of lint and stage loading on random Dockerfile-like text: lint never raises, a
broken file becomes an error Problem with its line, and nothing but DockerfileError escapes
from loading or walking the stages."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.dockerfile.lint import ERROR, WARNING, LintReport, format_report, lint
from lamina.dockerfile.stages import global_args, load_dockerfile, platform_args, walk_stage
from lamina.errors import DockerfileError
from lamina.image.platform import Platform

PLATFORM = platform_args(Platform("linux", "arm64"), Platform("linux", "amd64"))

NAMES = ["A", "B", "TAG", "HOME", "TARGETARCH", "BUILDPLATFORM", "HTTP_PROXY", "a", "NPM_TOKEN"]
VALUES = st.sampled_from([
    "1", "", "x y", "'q'", '"$A"', "$A", "${A}", "${A:-d}", "${A:?required}", "${A:+set}",
    "${A#*/}", "${A/x/y}", "$TARGETARCH", "/abs", "rel", "alpine:3.20", "Ubuntu", "\\$A", "`$A",
    "${", "$", "é", "8080:80", "53/UDP", "99999", "80/xyz", "a=b",
])
NAME = st.sampled_from(NAMES)
STAGE = st.sampled_from(["base", "Build", "scratch", "context", "1st", "b-2", "x"])
IMAGE = st.one_of(st.sampled_from(["alpine", "scratch", "base", "Build", "debian:12",
                                   "Ubuntu", "$TAG", "alpine:$TAG", "${A:?required}", "",
                                   "ghcr.io/o/r@sha256:" + "a" * 64]), VALUES)
BLANK = st.sampled_from(["", " ", "\t"])


def words(n: int = 3) -> st.SearchStrategy[str]:
    return st.lists(VALUES, min_size=0, max_size=n).map(" ".join)


FROM = st.builds(lambda p, i, a, s: f"FROM {p}{i}{a}{s}",
                 st.sampled_from(["", "--platform=$BUILDPLATFORM ", "--platform=$TARGETPLATFORM ",
                                  "--platform=$NOPE ", "--bad "]),
                 IMAGE, st.sampled_from(["", "", " AS ", " as ", " AS"]),
                 st.one_of(st.just(""), STAGE))
ARG = st.builds(lambda k, n, v: f"{k} {n}{v}", st.sampled_from(["ARG", "arg", "ARG"]), NAME,
                st.one_of(st.just(""), VALUES.map(lambda v: "=" + v)))
KEY_VALUE = st.builds(lambda k, n, v: f"{k} {n}{v}", st.sampled_from(["ENV", "LABEL", "env"]),
                      NAME, st.one_of(VALUES.map(lambda v: "=" + v),
                                      VALUES.filter(bool).map(lambda v: " " + v)))
OTHER = st.builds(lambda k, w: f"{k} {w}",
                  st.sampled_from(["RUN", "CMD", "ENTRYPOINT", "WORKDIR", "USER", "EXPOSE",
                                   "VOLUME", "STOPSIGNAL", "MAINTAINER", "ONBUILD RUN",
                                   "HEALTHCHECK CMD", "Run", "RUNN", "COPY", "ADD",
                                   "COPY --from=base", "COPY --chown=$A",
                                   "RUN --mount=type=cache,target=$A", "ADD --checksum=$A"]),
                  words())
FIXED = st.sampled_from([
    'CMD ["a", "b"]', 'SHELL ["/bin/sh", "-c"]', "COPY <<EOF /x\n$A '$A' \\$A\nEOF",
    "COPY <<'EOF' /x\n$A\nEOF", "RUN <<EOF\necho $A\nEOF", "RUN a \\\n\n b",
    "# comment", "", "EXPOSE 1-2/tcp 3/UDP", "WORKDIR C:\\x", "HEALTHCHECK NONE",
    "ONBUILD COPY $A /x"])
# Lines that usually break the whole file (kept rare so most files get past the parser).
BROKEN = st.one_of(st.sampled_from(['RUN ["a", 1]', "COPY <<EOF /x", "CMD [", "ENV A",
                                    "# escape=`", "RUN a \\"]), st.text(max_size=12))
INSTRUCTION = st.one_of(ARG, KEY_VALUE, OTHER, OTHER, FIXED, FROM)

DOCKERFILE = st.builds(
    lambda pre, first, body, broken, at: "\n".join(
        pre + [first] + body[:at] + broken + body[at:]) + "\n",
    st.lists(st.one_of(ARG, FIXED), max_size=2), FROM,
    st.lists(st.tuples(BLANK, INSTRUCTION).map("".join), max_size=12),
    st.lists(BROKEN, max_size=1), st.integers(0, 12))
BUILD_ARGS = st.dictionaries(NAME, VALUES, max_size=3)


def check_report(text: str, report: LintReport, file: str) -> None:
    assert isinstance(report, LintReport)
    last_line = text.count("\n") + 1
    for p in report.problems:
        assert p.severity in (ERROR, WARNING)
        assert p.file == file
        assert p.message
        if p.severity == WARNING:
            assert p.rule and p.line is not None
        if p.line is not None:
            assert 1 <= p.line <= last_line, p
            assert str(p).startswith(f"{file}:{p.line}")
        if p.column is not None:
            assert p.column >= 1
        assert isinstance(p.to_json(), dict)
    if report.dockerfile is None:
        assert report.has_errors
    else:
        assert len(report.resolved_bases) == len(report.dockerfile.stages)
    lines = [p.line or 0 for p in report.problems]
    assert lines == sorted(lines)
    format_report(report)
    report.to_json()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCKERFILE, BUILD_ARGS)
def test_lint_never_raises(text, build_args):
    report = lint(text, file="ctx/Dockerfile", build_args=build_args)
    check_report(text, report, "ctx/Dockerfile")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_lint_never_raises_on_bytes(data):
    check_report(data.decode("utf-8", "replace"), lint(data), "Dockerfile")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCKERFILE)
def test_a_file_that_does_not_load_is_a_lint_error_at_the_same_line(text):
    try:
        load_dockerfile(text)
    except DockerfileError as err:
        assert err.line is not None and err.line >= 1
        report = lint(text)
        assert report.has_errors
        assert err.line in [p.line for p in report.problems if p.severity == ERROR]
        assert err.message in [p.message for p in report.problems]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCKERFILE, BUILD_ARGS)
def test_only_dockerfile_errors_escape_from_loading_and_walking(text, build_args):
    try:
        df = load_dockerfile(text)
        scope = global_args(df, build_args, PLATFORM)
    except DockerfileError as err:
        assert err.line is not None and err.message
        return
    for stage in df.stages:
        try:
            steps = list(walk_stage(df, stage, build_args=build_args, scope=scope))
        except DockerfileError as err:
            assert err.line is not None and err.message
            # lint reports the same problem at the same place
            found = [(p.line, p.message) for p in lint(text, build_args=build_args).problems]
            assert (err.line, err.message) in found
            continue
        assert [s.instruction for s in steps] == list(stage.instructions)
        for step in steps:
            assert type(step.expanded) is type(step.instruction)
            assert all(v is not None for _, v in step.args)
