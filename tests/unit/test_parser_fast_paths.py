"""The parser's fast paths give what the slow, general ones give.

Parsing a long Dockerfile takes shortcuts (lazy lists in parse-tree nodes, one regex per
ARG/ENV/LABEL word, a plain split for --mount fields without quotes, cached heredoc names, a
line-length check that measures bytes only where needed). Each test here pins one shortcut to
the behaviour it replaces.
"""
from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.dockerfile.ast import Node
from lamina.dockerfile.directives import GO_SPACE
from lamina.dockerfile.parser import parse, parse_words
from lamina.dockerfile.shell import heredoc_name
from lamina.dockerfile.stages import load_dockerfile
from lamina.dockerfile.values import _csv_fields, parse_mount
from lamina.errors import DockerfileError, ShellWordError

# -- parse-tree nodes ---------------------------------------------------------------------------


def test_nodes_have_their_own_lists():
    a, b = Node("a"), Node("b")
    a.children.append(Node("c"))
    a.flags.append("--x")
    assert a.children == [Node("c")] and a.flags == ["--x"]
    assert b.children == [] and b.flags == [] and b.heredocs == [] and b.prev_comment == []


def test_nodes_compare_and_print_like_dataclasses():
    chain = Node("run", Node("echo hi"), json=False, original="RUN echo hi")
    assert chain == Node(value="run", next=Node(value="echo hi"), original="RUN echo hi")
    assert chain != Node("run", Node("echo ho"), original="RUN echo hi")
    assert repr(Node("x")) == ("Node(value='x', next=None, children=[], heredocs=[], json=False,"
                               " original='', flags=[], start_line=0, end_line=0,"
                               " prev_comment=[], column=1)")
    with pytest.raises(TypeError):
        hash(Node("x"))


def test_parsed_instruction_keeps_comments_flags_and_heredocs():
    tree = parse(b"# first\n# second\nFROM x\nCOPY --from=a <<EOF /dst\nhello\nEOF\nRUN true\n")
    first, copy, run = tree.root.children
    assert first.prev_comment == ["first", "second"]
    assert copy.flags == ["--from=a"] and [h.name for h in copy.heredocs] == ["EOF"]
    assert copy.heredocs[0].content == "hello\n"
    assert run.prev_comment == [] and run.flags == [] and run.heredocs == []
    assert (copy.start_line, copy.end_line, run.start_line) == (4, 6, 7)


def test_onbuild_trigger_gets_the_instruction_position():
    onbuild = parse(b"FROM x\n  ONBUILD RUN echo hi\n").root.children[1]
    trigger = onbuild.next.children[0]
    assert (trigger.value, trigger.start_line, trigger.column) == ("run", 2, 3)


# -- ARG/ENV/LABEL words: quotes and escapes stay in the word -----------------------------------


def reference_words(text: str, escape: str) -> list[str]:
    """parse_words one character at a time: whitespace outside quotes ends a word, nothing is
    special inside '...', the escape token keeps the next character, a final one is dropped."""
    words, word, quote, i = [], "", "", 0
    while i < len(text):
        c = text[i]
        i += 1
        if not quote and c in GO_SPACE:
            if word:
                words.append(word)
            word = ""
            continue
        if c == escape and quote != "'":
            if i == len(text):
                break
            word += c + text[i]
            i += 1
            continue
        if quote and c == quote:
            quote = ""
        elif not quote and c in "'\"":
            quote = c
        word += c
    if word:
        words.append(word)
    return words


PIECES = st.sampled_from(["a", "b=c", " ", "\t", "\xa0", "\\", "`", "'", '"', "$x", "é", "\\ "])


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join), st.sampled_from(["\\", "`"]))
def test_words_match_the_character_by_character_reading(text, escape):
    assert parse_words(text, escape) == reference_words(text, escape)


def test_env_values_keep_their_quotes_until_expanded():
    df = load_dockerfile(b'FROM x\nENV A="one two" B=\'$x y\' C=a\\ b D="open\n')
    env = df.stages[0].instructions[0]
    assert env.pairs == (("A", '"one two"'), ("B", "'$x y'"), ("C", "a\\ b"), ("D", '"open'))


# -- --mount fields -------------------------------------------------------------------------------


FIELD = st.text(st.sampled_from("ab=/ ,\t\\'\x00é"), max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(FIELD, min_size=1, max_size=4).map(",".join).filter(bool))
def test_mount_fields_split_like_csv(spec):
    assert _csv_fields(spec, "mounts") == next(csv.reader([spec], strict=True))


def test_quoted_mount_field_may_hold_a_comma():
    mount = parse_mount('type=bind,"target=/a,b",source=/src')
    assert (mount.target, mount.source) == ("/a,b", "/src")


# -- heredoc terminators --------------------------------------------------------------------------


def test_heredoc_names_are_the_same_every_time():
    assert heredoc_name("'EOF'") == heredoc_name("'EOF'") == ("EOF", False)
    assert heredoc_name("EOF") == ("EOF", True)
    for _ in range(2):   # a bad word fails on every call, not only the first
        with pytest.raises(ShellWordError):
            heredoc_name("'EOF")


def test_repeated_heredocs_each_keep_their_body():
    text = "FROM x\n" + "".join(f"RUN <<EOF\necho {i}\nEOF\n" for i in range(3))
    runs = load_dockerfile(text).stages[0].instructions
    assert [r.files[0].data for r in runs] == ["echo 0\n", "echo 1\n", "echo 2\n"]


# -- the longest line upstream's scanner reads: 65535 bytes ---------------------------------------


@pytest.mark.parametrize(("line", "fits"), [
    ("RUN " + "\U0001F600" * 16382 + "abc", True),      # 65535 bytes in 16389 characters
    ("RUN " + "\U0001F600" * 16382 + "abcd", False),    # 65536 bytes
    ("RUN " + "é" * 32765 + "a", True),                  # 65535 bytes
    ("RUN " + "é" * 32766, False),                       # 65536 bytes
    ("RUN " + "a" * 65531, True),
    ("RUN " + "a" * 65532, False),
])
def test_line_length_is_counted_in_bytes(line, fits):
    data = ("FROM x\n" + line + "\nRUN next\n").encode()
    if fits:
        assert len(parse(data).root.children) == 3
        return
    with pytest.raises(DockerfileError, match="line greater than max allowed size of 65535") as e:
        parse(data)
    assert e.value.line == 2


def test_undecodable_bytes_count_one_each():
    assert len(parse(b"FROM x\nRUN " + b"\xff" * 65531 + b"\n").root.children) == 2
    with pytest.raises(DockerfileError, match="max allowed size") as e:
        parse(b"FROM x\nRUN " + b"\xff" * 65532 + b"\n")
    assert e.value.line == 2
