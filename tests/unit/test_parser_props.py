"""Properties of the parser on random Dockerfile-like text: it never crashes, errors point at a
line, and instructions come out in order with sane line ranges."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.dockerfile.ast import ParseResult
from lamina.dockerfile.dump import dump
from lamina.dockerfile.parser import parse
from lamina.errors import DockerfileError

KEYWORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "LABEL", "ARG", "ONBUILD", "HEALTHCHECK", "CMD",
            "ENTRYPOINT", "SHELL", "VOLUME", "EXPOSE", "USER", "WORKDIR", "MAINTAINER",
            "STOPSIGNAL", "run", "Copy", "onbuild run", "ONBUILD COPY", "FOO"]
TOKENS = ["--mount=type=cache,target=/x", "--from=build", "--", "--a='b c'", '--x="y', "a=b",
          "k v", "'", '"', "\\", "\\\\", "`", "<<EOF", "<<-EOF", "<< 'EOF'", "3<<EOF", "EOF",
          "\tEOF", "[", "]", '"a"', ",", "42", "null", "#", "# escape=`", "# syntax=x", "$HOME",
          "${a:-b}", "é", "\x85", "\xa0", "\udcff", "CMD", "NONE", "=", "x", "/tmp/"]
BLANKS = st.sampled_from(["", " ", "  ", "\t", " \t "])

word = st.one_of(st.sampled_from(TOKENS), st.text(min_size=1, max_size=4))
line = st.one_of(
    st.builds(lambda lead, kw, words, tail: lead + kw + " " + " ".join(words) + tail,
              BLANKS, st.sampled_from(KEYWORDS), st.lists(word, max_size=6),
              st.sampled_from(["", " \\", "\\", "`", " ", "\\\\"])),
    st.lists(word, max_size=5).map(" ".join),
    st.sampled_from(["", "#", "# comment", "# escape=`", "# escape=x", "EOF", "\t\tEOF", "\\"]),
)
dockerfile = st.tuples(st.lists(line, max_size=25), st.sampled_from(["\n", "\r\n"]),
                       st.booleans()).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))


def check(data: bytes | str) -> ParseResult | None:
    try:
        result = parse(data)
    except DockerfileError as err:
        assert err.line is not None and err.line >= 1
        assert err.column is None or err.column >= 1
        assert err.message
        return None
    previous_end = 0
    for node in result.root.children:
        assert previous_end < node.start_line <= node.end_line
        previous_end = node.end_line
    dump(result.root)
    return result


@settings(max_examples=400, deadline=None)
@given(dockerfile)
def test_random_text_parses_or_fails_cleanly(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_fail_cleanly(data):
    check(data)


@settings(max_examples=200, deadline=None)
@given(dockerfile)
def test_bytes_and_text_agree(text):
    from_text = check(text)
    from_bytes = check(text.encode("utf-8", "surrogateescape"))
    assert (from_text is None) == (from_bytes is None)
    if from_text is not None:
        assert dump(from_text.root) == dump(from_bytes.root)
