"""BuildKit's shell-lexer vectors (shared/conformance/shell/, README section 2) against
lamina.dockerfile.shell, plus the heredoc-word cases of parser/heredocs.json that the lexer's
``heredoc_name`` and ``process_words`` serve.
"""
from __future__ import annotations

import json
import re

import pytest

from lamina.dockerfile.shell import ShellLex, get_env, glob_to_regex, heredoc_name, reverse_glob
from lamina.errors import ShellWordError
from tests.conftest import CONFORMANCE

SHELL = CONFORMANCE / "shell"
WINDOWS_ONLY = "Windows semantics: case-insensitive names"


def load(name: str) -> dict:
    return json.loads((SHELL / name).read_text(encoding="utf-8"))


def case_id(n: int, text: str) -> str:
    return f"{n}:{text}"


# --- envVarTest: ProcessWord ------------------------------------------------------------------

ENV_VAR = load("envVarTest.json")


def env_var_params():
    for case in ENV_VAR["cases"]:
        marks = [pytest.mark.skip(reason=WINDOWS_ONLY)] if case["platform"] == "W" else []
        yield pytest.param(case, marks=marks, id=case_id(case["line"], case["input"]))


@pytest.mark.parametrize("case", list(env_var_params()))
def test_env_var(case):
    lex = ShellLex(ENV_VAR["lexer"]["escape_token"])
    if case["expect_error"]:
        with pytest.raises(ShellWordError):
            lex.process_word(case["input"], ENV_VAR["envs"])
    else:
        assert lex.process_word(case["input"], ENV_VAR["envs"]) == case["expected"]


def test_env_var_raw_file_matches_json():
    """The raw envVarTest, read by README 2.1's rules, holds exactly the rows of the JSON."""
    rows = []
    for number, line in enumerate((SHELL / "envVarTest").read_text(encoding="utf-8")
                                  .splitlines(), start=1):
        if line.startswith("#") or not line.strip():
            continue
        fields = [field.strip() for field in line.strip().split("|")]
        assert len(fields) == 3, line
        platform, text, expected = fields
        rows.append((number, platform, text, expected == "error",
                     None if expected == "error" else expected))
    assert rows == [(c["line"], c["platform"], c["input"], c["expect_error"], c.get("expected"))
                    for c in ENV_VAR["cases"]]


# --- wordsTest: ProcessWords ------------------------------------------------------------------

WORDS = load("wordsTest.json")


@pytest.mark.parametrize("case", WORDS["cases"],
                         ids=[case_id(c["line"], c["input"]) for c in WORDS["cases"]])
def test_words(case):
    lex = ShellLex(WORDS["lexer"]["escape_token"])
    if case["expect_error"]:
        with pytest.raises(ShellWordError):
            lex.process_words(case["input"], case["envs"])
    else:
        assert lex.process_words(case["input"], case["envs"]) == case["expected"]


def test_words_raw_file_matches_json():
    """The raw wordsTest, read by README 2.2's rules, holds exactly the rows of the JSON."""
    rows, envs = [], []
    for number, line in enumerate((SHELL / "wordsTest").read_text(encoding="utf-8")
                                  .splitlines(), start=1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        parts = line.split("|")
        assert len(parts) == 2, line
        expected = parts[1].lstrip(" ")
        rows.append((number, parts[0].strip(), list(envs), expected == "error",
                     None if expected == "error" else expected.split(",")))
    assert rows == [(c["line"], c["input"], c["envs"], c["expect_error"], c.get("expected"))
                    for c in WORDS["cases"]]


# --- process_word_with_matches.json -----------------------------------------------------------

MATCHES = load("process_word_with_matches.json")


@pytest.mark.parametrize("case", MATCHES["cases"],
                         ids=[case_id(i, c["input"]) for i, c in enumerate(MATCHES["cases"])])
def test_process_word_with_matches(case):
    lex = ShellLex(MATCHES["lexer"]["escape_token"])
    if case["expect_error"]:
        with pytest.raises(ShellWordError):
            lex.process_word_with_matches(case["input"], case["envs"])
        return
    result, matched, unmatched = lex.process_word_with_matches(case["input"], case["envs"])
    assert result == case["expected"]
    assert matched == set(case["matched"])
    assert unmatched == set(case["unmatched"])


@pytest.mark.parametrize("case", MATCHES["platform_cases"],
                         ids=[f"platform{i}" for i in range(len(MATCHES["platform_cases"]))])
def test_process_word_with_matches_platform(case):
    result, _, _ = ShellLex().process_word_with_matches(case["input"], case["envs"])
    assert result == case["expected"]


# --- mandatory_env_vars.json: ${VAR:?msg} and ${VAR?msg} --------------------------------------

MANDATORY = load("mandatory_env_vars.json")


@pytest.mark.parametrize("case", MANDATORY["cases"],
                         ids=[case_id(i, c["input"]) for i, c in enumerate(MANDATORY["cases"])])
def test_mandatory_env_vars(case):
    lex = ShellLex(MANDATORY["lexer"]["escape_token"])
    if "expect_error_contains" in case:
        with pytest.raises(ShellWordError) as err:
            lex.process_word(case["input"], case["envs"])
        assert case["expect_error_contains"] in str(err.value)
    else:
        assert lex.process_word(case["input"], case["envs"]) == case["expected"]


# --- get_env.json -----------------------------------------------------------------------------

GET_ENV = load("get_env.json")


@pytest.mark.parametrize("case", GET_ENV["cases"],
                         ids=[f"{i}:{c['name']}" for i, c in enumerate(GET_ENV["cases"])])
def test_get_env(case):
    value = get_env(case["envs"], case["name"])
    # Upstream returns "" for an unset name too; lamina tells the two apart with None.
    assert (value if value is not None else "") == case["expected"]
    assert (value is None) == all(e.partition("=")[0] != case["name"] for e in case["envs"])


# --- shell_pattern_helpers.json ---------------------------------------------------------------

HELPERS = load("shell_pattern_helpers.json")
TO_REGEX = HELPERS["convert_shell_pattern_to_regex"]


@pytest.mark.parametrize("case", TO_REGEX["cases"], ids=[c["pattern"] for c in TO_REGEX["cases"]])
def test_glob_to_regex(case):
    # lamina's helper emits Python regex source; for these patterns it is the RE2 text exactly.
    regex = glob_to_regex(case["pattern"], greedy=TO_REGEX["greedy"], anchored=TO_REGEX["anchored"])
    assert regex == case["regex"]


@pytest.mark.parametrize("pattern", TO_REGEX["invalid"])
def test_glob_to_regex_invalid(pattern):
    with pytest.raises(ShellWordError):
        glob_to_regex(pattern, greedy=TO_REGEX["greedy"], anchored=TO_REGEX["anchored"])


@pytest.mark.parametrize("case", HELPERS["reverse_pattern"],
                         ids=[c["input"] for c in HELPERS["reverse_pattern"]])
def test_reverse_glob(case):
    assert reverse_glob(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c["input"], marks=pytest.mark.skip(
        reason="no such helper in lamina: the value is reversed with str slicing ([::-1])"))
    for c in HELPERS["reverse_string"]])
def test_reverse_string(case):
    assert case["input"][::-1] == case["expected"]


# --- heredoc words (parser/heredocs.json): what the parser asks of the lexer ------------------

HEREDOCS = json.loads((CONFORMANCE / "parser" / "heredocs.json").read_text(encoding="utf-8"))
# The parser's own part: "<<" or "<<-" with an optional descriptor; the rest is the lexer's.
HEREDOC_WORD = re.compile(r"(\d*)<<(-?)\s*([^<]*)", re.ASCII)


def parse_heredoc_word(word: str) -> tuple[str, bool] | None:
    """What the parser does with one word: (name, expand), or None when it is no heredoc."""
    match = HEREDOC_WORD.fullmatch(word)
    if match is None or not match[3]:
        return None
    name, expand = heredoc_name(match[3])
    return (name, expand) if name else None


WORD_CASES = HEREDOCS["parse_heredoc_word"]


@pytest.mark.parametrize("word", WORD_CASES["valid_name_EOF"])
def test_heredoc_word_valid(word):
    assert parse_heredoc_word(word) == ("EOF", not re.search("['\"]", word))


@pytest.mark.parametrize("word", WORD_CASES["invalid"])
def test_heredoc_word_invalid(word):
    with pytest.raises(ShellWordError):
        parse_heredoc_word(word)


@pytest.mark.parametrize("word", WORD_CASES["not_heredoc"])
def test_heredoc_word_not_heredoc(word):
    assert parse_heredoc_word(word) is None


LINE_CASES = HEREDOCS["heredocs_from_line"]["cases"]


@pytest.mark.parametrize("case", LINE_CASES, ids=[c["line"] for c in LINE_CASES])
def test_heredocs_from_line(case):
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    found = [parse_heredoc_word(word) for word in lex.process_words(case["line"], {})]
    names = [doc[0] for doc in found if doc is not None]
    if case["line"] == "RUN <<- EOF":
        # The vector accepts both; BuildKit's lexer splits "<<-" from "EOF", and so does lamina.
        assert names == []
    else:
        assert names == case["names"]


@pytest.mark.parametrize("line, expected", [
    # The heredoc words of heredocs.json "extract" (name, expand).
    ("RUN <<eo'f'", [("eof", False)]),
    ("RUN <<eo\\'f", [("eo'f", True)]),
    ("RUN <<'e'o\\'f", [("eo'f", False)]),
    ("RUN <<'one two'", [("one two", False)]),
    ("RUN <<$EOF", [("$EOF", True)]),
    ("RUN <<  EOF  > foo", [("EOF", True)]),
    ("COPY <<FILE1 <<FILE2 /dest", [("FILE1", True), ("FILE2", True)]),
    ('RUN "<<NOHEREDOC"', []),
])
def test_heredoc_words_of_extract_dockerfile(line, expected):
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    found = [parse_heredoc_word(word) for word in lex.process_words(line, {})]
    assert [doc for doc in found if doc is not None] == expected
