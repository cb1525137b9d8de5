"""Properties of lamina.dockerfile.shell that the upstream vectors do not pin down: any text is
either expanded or refused with a ShellWordError, plain text passes through unchanged, and the
modes (escape token, raw quotes/escapes, skip-unset) and error positions behave as documented.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.dockerfile.shell import ShellLex, heredoc_name
from lamina.errors import ShellWordError

ENV = {"A": "abc", "E": "", "SP": "x  y", "P": "*", "Q": "\\", "R": "$0$$", "D": "$"}

lexers = st.builds(
    ShellLex, st.sampled_from(["\\", "`"]), raw_quotes=st.booleans(), raw_escapes=st.booleans(),
    skip_unset_env=st.booleans())
envs = st.sampled_from([ENV, [f"{k}={v}" for k, v in ENV.items()], {}, []])
# Mostly the characters the lexer cares about, so that generated words reach deep paths.
shellish = st.text(alphabet=st.sampled_from(list("${}:-+?#%/*\\`'\"< \tAEPQRSD_01@!xa\n\ufeff")),
                   max_size=40)
words = st.one_of(shellish, st.text(max_size=40))
# Text in which nothing is special, whatever the escape token: no $, quotes, \, ` or a BOM.
plain = st.text(st.characters(blacklist_characters="$'\"\\`\ufeff"), max_size=60)


@settings(max_examples=1500)
@given(lexers, words, envs)
def test_only_shell_word_errors(lex, word, env):
    for call in (lex.process_word, lex.process_words, lex.process_word_with_matches):
        try:
            call(word, env)
        except ShellWordError as err:
            assert err.message
            assert err.column is None or 1 <= err.column <= len(word)


@settings(max_examples=500)
@given(words)
def test_heredoc_name_only_shell_word_errors(word):
    try:
        name, expand = heredoc_name(word)
    except ShellWordError:
        return
    assert isinstance(name, str) and isinstance(expand, bool)


@given(lexers, plain, envs)
def test_plain_text_is_unchanged(lex, word, env):
    assert lex.process_word(word, env) == word
    assert lex.process_word_with_matches(word, env) == (word, set(), set())


@given(plain)
def test_fast_path_agrees_with_the_lexer(word):
    # An empty quoted string adds nothing but forces the character loop.
    lex = ShellLex()
    assert lex.process_word("''" + word, {}) == lex.process_word(word, {}) == word
    assert lex.process_words("''" + word, {}) == lex.process_words(word, {})


@given(st.text(st.characters(blacklist_characters="$'\"\\`<\ufeff"), max_size=60))
def test_words_join_back(word):
    # Without quotes, escapes or "<<", splitting only drops whitespace: Go's unicode.IsSpace,
    # which is Python's str.isspace less the separators \x1c-\x1f.
    assert "".join(ShellLex().process_words(word, {})) == "".join(
        c for c in word if not c.isspace() or c in "\x1c\x1d\x1e\x1f")


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                       st.text(max_size=10), max_size=5))
def test_braced_reference_is_the_value(env):
    lex = ShellLex()
    for name, value in env.items():
        assert lex.process_word("${" + name + "}", env) == value
        assert lex.process_word_with_matches("$" + name, env) == (value, {name}, set())


# --- pinned examples of the API contract --------------------------------------------------------

@pytest.mark.parametrize("word, column, text", [
    ("he'llo", 3, "unterminated single quote in \"he'llo\": close the quote"),
    ('ab"cd', 3, "unterminated double quote"),
    ("x${aaa", 2, "unterminated ${...}"),
    ("x${}", 2, "bad substitution ${}"),
    ("${VAR=x}", 1, "bad substitution ${VAR=...}"),
    ("a${VAR:#x}", 2, "':#' is not supported"),
    ("${A#\\x}", 1, "invalid escape '\\x'"),
    ("${A/x}", 1, "missing '/'"),
    ("${NOPE:?say $A}", 1, "NOPE: say abc"),
    ("${E:?}", 1, "E: is not allowed to be empty"),
])
def test_errors_say_where_and_what(word, column, text):
    with pytest.raises(ShellWordError) as err:
        ShellLex().process_word(word, ENV)
    assert err.value.column == column
    assert text in err.value.message


def test_backtick_escape_token():
    lex = ShellLex("`")
    assert lex.process_word("a`$A\\b", ENV) == "a$A\\b"
    assert lex.process_word('"q`"`$A``"', ENV) == 'q"$A`'
    assert lex.process_words("a` b c", ENV) == ["a b", "c"]
    assert lex.process_word("${A#`*}", {"A": "*x"}) == "*x"  # patterns escape with \ only


def test_skip_unset_env_keeps_references():
    lex = ShellLex(skip_unset_env=True)
    assert lex.process_word("$NO ${NO} ${NO:-x} $1 $A", ENV) == "$NO ${NO} ${NO:-x} $1 abc"


def test_raw_quotes_and_escapes():
    lex = ShellLex(raw_quotes=True, raw_escapes=True)
    assert lex.process_words("RUN 'a b' \"$A\" c\\ d <<  EOF > f", ENV) == [
        "RUN", "'a b'", '"abc"', "c\\ d", "<<  EOF", ">", "f"]


def test_process_words_splits_expansions_not_quotes():
    assert ShellLex().process_words('$SP "$SP" \'\' x', ENV) == ["x", "y", "x  y", "x"]


def test_replace_all_follows_go_replace_all_string():
    lex = ShellLex()
    assert lex.process_word("${A//$E/-}", ENV) == "-a-b-c-"
    assert lex.process_word("${A//*/-}", ENV) == "-"  # no second, empty match at the end
    assert lex.process_word("${A//b/$R}", ENV) == "ab$c"  # $0 is the match, $$ a dollar
    assert lex.process_word("${A/b/$R}", ENV) == "a$0$$c"  # a single replacement is literal


def test_leading_byte_order_mark_is_dropped():
    assert ShellLex().process_word("\ufeffa$A", ENV) == "aabc"


def test_env_list_last_entry_wins():
    assert ShellLex().process_word("$K/$B", ["K=1", "B", "K=2=3"]) == "2=3/"
