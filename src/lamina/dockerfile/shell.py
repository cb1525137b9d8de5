"""Shell-word lexing and variable expansion for Dockerfile arguments.

This mirrors BuildKit's ``frontend/dockerfile/shell`` lexer with Linux semantics (variable names
are case-sensitive). It is not a shell: it removes quotes, handles the escape character and
expands ``$VAR`` / ``${VAR...}`` forms, nothing else. The supported ``${...}`` forms are::

    ${v}  ${v:-w} ${v-w}  ${v:+w} ${v+w}  ${v:?msg} ${v?msg}
    ${v#p} ${v##p}  ${v%p} ${v%%p}  ${v/p/r} ${v//p/r}

Without the colon, a variable that is set but empty counts as set. Positional and special
parameters (``$1``, ``$@``, ``$$``, ...) are looked up like any name, so they expand to empty.
Patterns know ``*`` and ``?`` only: as in BuildKit, ``[`` and ``]`` are literal characters.

Where BuildKit behaves oddly, this module follows it on purpose (a lexer that disagreed with
Docker would build different images); those places are marked "as BuildKit does".
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from lamina.errors import ShellWordError

Env = Mapping[str, str] | Iterable[str]
"""A name -> value mapping, or ``KEY=VALUE`` strings as Docker keeps them (see ``get_env``)."""

# Go's unicode.IsSpace, which decides where ProcessWords splits. Python's str.isspace differs
# (it also counts \x1c-\x1f), so the set is spelled out: the Unicode White_Space property.
_WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WHITESPACE_RUN = re.compile(f"[{_WHITESPACE}]+")

# Blanks allowed between "<<" and a heredoc word; they stay glued to the "<<" word.
_HEREDOC_BLANKS = " \t\r"

# Special parameters that form a one-character name ($@, ${#}, ...). Digits are positional
# parameters and are read as a run of digits ($001 is one name).
_SPECIAL_PARAMS = "@*#?-$!"

# Go's text/scanner drops a byte-order mark at the very start of what it reads; BuildKit reads
# words and patterns through it, so a leading BOM vanishes there too.
_BOM = "\ufeff"

_MODIFIERS = ":-, -, :+, +, :?, ?, #, ##, %, %%, / or //"


def get_env(env: Env | None, name: str) -> str | None:
    """The value of ``name`` in ``env``, or None when it is not set.

    For a list of ``KEY=VALUE`` strings: each entry is split at its first ``=``, an entry without
    ``=`` sets the key to the empty string, and the last entry for a key wins.
    """
    if env is None:
        return None
    if isinstance(env, Mapping):
        return env.get(name)
    for entry in reversed(list(env)):
        key, _, value = entry.partition("=")
        if key == name:
            return value
    return None


def _as_mapping(env: Env | None) -> Mapping[str, str]:
    if env is None:
        return {}
    if isinstance(env, Mapping):
        return env
    pairs = (entry.partition("=") for entry in env)
    return {key: value for key, _, value in pairs}


def _quote(text: str) -> str:
    """``text`` in double quotes with ``"`` and ``\\`` escaped, for error messages."""
    return json.dumps(text, ensure_ascii=False)


# --- patterns of ${v#p} ${v%p} ${v/p/r} ---------------------------------------------------------

def glob_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> str:
    """Python regex source matching the shell pattern ``pattern``.

    ``*`` is any run of characters (longest first when ``greedy``, shortest first otherwise),
    ``?`` is one character, everything else is literal. The only escapes are ``\\*``, ``\\?``
    and ``\\\\``; ``\\}`` and ``\\/`` stand for ``}`` and ``/`` (the backslash only kept the lexer
    from ending the ``${...}`` there). Python's ``re`` and Go's ``regexp`` both pick the
    leftmost match and prefer the first alternative, so matches are BuildKit's. As in Go,
    ``*`` and ``?`` do not match a newline. Raises ShellWordError for any other escape.
    """
    star = ".*" if greedy else ".*?"
    out = ["^"] if anchored else []
    i = 1 if pattern.startswith(_BOM) else 0
    end = len(pattern)
    while i < end:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            escaped = pattern[i] if i < end else ""
            if escaped in ("}", "/"):
                continue
            if escaped not in ("*", "?", "\\"):
                problem = f"invalid escape '\\{escaped}'" if escaped else "a '\\' at the end"
                raise ShellWordError(
                    f"{problem} in pattern {_quote(pattern)}: "
                    "only \\*, \\?, \\\\, \\} and \\/ are allowed")
            out.append(re.escape(escaped))
            i += 1
        else:
            out.append(re.escape(ch))
    return "".join(out)


def reverse_glob(pattern: str) -> str:
    """``pattern`` reversed, with each backslash pair kept in order (``a\\*c`` -> ``c\\*a``).

    A suffix match is a prefix match of the reversed pattern on the reversed value; that is
    how BuildKit finds the shortest suffix, which a leftmost regex search cannot.
    """
    chunks = []
    i, last = 0, len(pattern) - 1
    while i <= last:
        if pattern[i] == "\\" and i != last:
            chunks.append(pattern[i:i + 2])
            i += 2
        else:
            chunks.append(pattern[i])
            i += 1
    chunks.reverse()
    return "".join(chunks)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = re.match(glob_to_regex(pattern, greedy=greedy, anchored=True), value)
    return value[match.end():] if match else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(reverse_glob(pattern), value[::-1], greedy)[::-1]


def _replace(pattern: str, value: str, replacement: str, every: bool) -> str:
    regex = re.compile(glob_to_regex(pattern, greedy=True, anchored=False))
    if not every:
        # The first match is replaced by the text as written (no $-references), as BuildKit does.
        match = regex.search(value)
        if match is None:
            return value
        return value[:match.start()] + replacement + value[match.end():]
    # BuildKit uses Go's ReplaceAllString: an empty match right after a match is skipped, and
    # the replacement is a template ($0 is the match, $$ a dollar). re.sub differs on both.
    out = []
    last_end = search_at = 0
    while search_at <= len(value):
        match = regex.search(value, search_at)
        if match is None:
            break
        start, end = match.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_expand_template(replacement, match.group()))
        last_end = end
        search_at = end if end > search_at else search_at + 1
    out.append(value[last_end:])
    return "".join(out)


def _is_name_char(ch: str) -> bool:
    # Go's unicode.IsLetter / IsDigit are the L* and Nd categories: isalpha / isdecimal.
    return ch.isalpha() or ch.isdecimal() or ch == "_"


def _expand_template(template: str, matched: str) -> str:
    """Go's Regexp.Expand for a regex without groups: ``$$`` is ``$``, ``$0`` and ``${0}`` are
    the match, any other ``$name`` / ``${name}`` is empty, and a ``$`` that starts no reference
    stays as it is."""
    if "$" not in template:
        return template
    out = []
    i, end = 0, len(template)
    while (dollar := template.find("$", i)) >= 0:
        out.append(template[i:dollar])
        i = dollar + 1
        if template.startswith("$", i):
            out.append("$")
            i += 1
            continue
        braced = template.startswith("{", i)
        name_start = name_end = i + braced
        while name_end < end and _is_name_char(template[name_end]):
            name_end += 1
        if name_end == name_start or (braced and not template.startswith("}", name_end)):
            out.append("$")
            continue
        if template[name_start:name_end] == "0":
            out.append(matched)
        i = name_end + braced
    out.append(template[i:])
    return "".join(out)


# --- the lexer ---------------------------------------------------------------------------------

class _Words:
    """Collects ProcessWords' output: unquoted whitespace ends a word, quoted text never does.

    Empty words are dropped, so ``'' a`` is one word, as BuildKit does.
    """

    __slots__ = ("words", "_current")

    def __init__(self) -> None:
        self.words: list[str] = []
        self._current: list[str] = []

    def add_quoted(self, text: str) -> None:
        self._current.append(text)

    def add_unquoted(self, text: str) -> None:
        first, *rest = _WHITESPACE_RUN.split(text)
        self._current.append(first)
        for part in rest:
            self._end_word()
            self._current.append(part)

    def _end_word(self) -> None:
        word = "".join(self._current)
        self._current.clear()
        if word:
            self.words.append(word)

    def finish(self) -> list[str]:
        self._end_word()
        return self.words


class _Expansion:
    """One pass over one word: a cursor, the environment, and the names looked up."""

    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.end = len(text)
        self.pos = 1 if text.startswith(_BOM) else 0
        self.env = env
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def error(self, problem: str, at: int, fix: str) -> ShellWordError:
        """``problem`` at index ``at`` of the word, and what to do about it."""
        return ShellWordError(f"{problem} in {_quote(self.text)}: {fix}", column=at + 1)

    def lookup(self, name: str) -> str | None:
        value = self.env.get(name)
        (self.unmatched if value is None else self.matched).add(name)
        return value

    def word(self, stop: str | None, raw_escapes: bool, words: _Words | None = None,
             opened_at: int = 0) -> str:
        """Expand up to ``stop`` (consumed) or, when ``stop`` is None, to the end of the text.

        ``opened_at`` is where the ``${`` that needs ``stop`` began, for the error.
        """
        text, escape = self.text, self.lex.escape_token
        plain = self.lex._plain_run[stop]
        out = []
        while self.pos < self.end:
            ch = text[self.pos]
            if ch == stop:
                self.pos += 1
                return "".join(out)
            if run := plain.match(text, self.pos):
                piece = run.group()
                self.pos = run.end()
                if words is not None:
                    words.add_unquoted(piece)
            elif ch == "$":
                piece = self.dollar()
                if words is not None:
                    words.add_unquoted(piece)
            else:
                if ch == "'":
                    piece = self.single_quoted()
                elif ch == '"':
                    piece = self.double_quoted(raw_escapes)
                elif ch == "<":
                    piece = self.arrows()
                else:  # the escape character
                    self.pos += 1
                    if self.pos == self.end:  # a trailing escape escapes nothing
                        piece = escape if raw_escapes else ""
                    else:
                        piece = text[self.pos]
                        self.pos += 1
                        if raw_escapes:
                            piece = escape + piece
                if words is not None:
                    words.add_quoted(piece)
            out.append(piece)
        if stop == "}":
            raise self.error("unterminated ${...}", opened_at, "add the closing '}'")
        if stop == "/":
            raise self.error("missing '/' after the pattern of ${VAR/pattern/replacement}",
                             opened_at, "add the '/' (write \\/ for a literal slash)")
        return "".join(out)

    def single_quoted(self) -> str:
        # Nothing is special between single quotes, not even the escape character.
        start = self.pos
        close = self.text.find("'", start + 1)
        if close < 0:
            raise self.error("unterminated single quote", start, "close the quote")
        self.pos = close + 1
        return self.text[start:close + 1] if self.lex.raw_quotes else self.text[start + 1:close]

    def double_quoted(self, raw_escapes: bool) -> str:
        # Between double quotes, $ expands and the escape character escapes only ", $ and itself.
        text, escape = self.text, self.lex.escape_token
        start = self.pos
        self.pos += 1
        out = ['"'] if self.lex.raw_quotes else []
        while self.pos < self.end:
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                if self.lex.raw_quotes:
                    out.append('"')
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == escape:
                if raw_escapes:
                    out.append(escape)
                if self.pos < self.end and text[self.pos] in ('"', "$", escape):
                    ch = text[self.pos]
                    self.pos += 1
                # Otherwise the escape character is literal. In raw-escape mode it is then
                # written twice, as BuildKit does.
            out.append(ch)
        raise self.error("unterminated double quote", start, "close the quote")

    def arrows(self) -> str:
        # "<<" keeps the blanks after it, so that "<< EOF" stays one word for heredoc detection.
        start = self.pos
        self.pos += 1
        if self.text.startswith("<", self.pos):
            self.pos += 1
            while self.pos < self.end and self.text[self.pos] in _HEREDOC_BLANKS:
                self.pos += 1
        return self.text[start:self.pos]

    def name(self) -> str:
        text, start = self.text, self.pos
        if start == self.end:
            return ""
        first = text[start]
        if first.isdecimal():
            self.pos += 1
            while self.pos < self.end and text[self.pos].isdecimal():
                self.pos += 1
        elif first in _SPECIAL_PARAMS:
            self.pos += 1
        else:
            while self.pos < self.end and _is_name_char(text[self.pos]):
                self.pos += 1
        return text[start:self.pos]

    def dollar(self) -> str:
        text, skip_unset = self.text, self.lex.skip_unset_env
        start = self.pos
        self.pos += 1
        if not text.startswith("{", self.pos):
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if skip_unset else ""
            return value

        self.pos += 1
        if self.pos == self.end:
            raise self.error("unterminated ${...}", start, "add the closing '}'")
        if text[self.pos] in "{}:":
            raise self.error(f"bad substitution {text[start:self.pos + 1]}", start,
                             "put a variable name after '${' (write \\$ for a literal '$')")
        name = self.name()
        if self.pos == self.end:
            raise self.error("unterminated ${...}", start, "add the closing '}'")
        op = text[self.pos]
        self.pos += 1

        if op == "}":
            value = self.lookup(name)
            if value is None:
                return "${" + name + "}" if skip_unset else ""
            return value
        if op == "/":
            return self.substitute(start, name)

        colon = op == ":"
        if colon:
            # Whatever follows the colon is taken as the operator, even '}'; an unsupported one
            # is reported only after its word is read, as BuildKit does.
            if self.pos == self.end:
                raise self.error("unterminated ${...}", start, "add the closing '}'")
            op = text[self.pos]
            self.pos += 1
        modifier = (":" if colon else "") + op
        if not name and not colon and op not in "+-?#%":
            raise self.error(f"bad substitution {text[start:self.pos]}", start,
                             "put a variable name after '${'")
        if (not colon and op not in "+-?#%") or (colon and op in "#%"):
            raise self.error(f"bad substitution ${{{name}{modifier}...}}", start,
                             self.modifier_fix(modifier))

        # Pattern words keep their escapes: the pattern has escapes of its own (\*, \?).
        word = self.word("}", raw_escapes=op in "#%", opened_at=start)
        value = self.lookup(name)
        if value is None and skip_unset:
            return "${" + name + modifier + word + "}"
        if op == "-":
            return word if value is None or (colon and not value) else value
        if op == "+":
            return "" if value is None or (colon and not value) else word
        if op == "?":
            if value is None or (colon and not value):
                if word:  # the author's own message
                    raise ShellWordError(f"{name}: {word}", column=start + 1)
                state = "unset" if value is None else "empty"
                raise ShellWordError(f"{name}: is not allowed to be {state}", column=start + 1,
                                     hint=f"give {name} a value (ARG, ENV or --build-arg)")
            return value
        if op in "#%":
            greedy = word.startswith(op)  # ## and %% (the second character came in the word)
            pattern = word[1:] if greedy else word
            trim = _trim_suffix if op == "%" else _trim_prefix
            return self.with_pattern(start, trim, pattern, value or "", greedy)
        raise self.error(f"bad substitution {text[start:self.pos]}", start,
                         self.modifier_fix(modifier))

    def substitute(self, start: int, name: str) -> str:
        """``${v/p/r}`` and ``${v//p/r}``, after the first '/'."""
        every = self.text.startswith("/", self.pos)
        if every:
            self.pos += 1
        pattern = self.word("/", raw_escapes=True, opened_at=start)
        replacement = self.word("}", raw_escapes=True, opened_at=start)
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            # One slash even for "//", as BuildKit does.
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        return self.with_pattern(start, _replace, pattern, value or "", replacement, every)

    def with_pattern(self, start: int, apply, pattern: str, *args) -> str:
        """``apply(pattern, *args)``, reporting a bad pattern with this word's context."""
        try:
            return apply(pattern, *args)
        except ShellWordError as err:
            raise self.error("bad pattern", start, err.message) from None

    @staticmethod
    def modifier_fix(modifier: str) -> str:
        if modifier in (":#", ":%"):
            return f"'{modifier}' is not supported; drop the ':' (${{VAR{modifier[1]}pattern}})"
        return f"'{modifier}' is not a supported modifier; use {_MODIFIERS}"


class ShellLex:
    """BuildKit's shell-word lexer.

    ``escape_token`` is the Dockerfile escape character (``\\`` or a backtick).
    ``raw_quotes`` keeps quote characters in the output, ``raw_escapes`` keeps escape characters,
    and ``skip_unset_env`` leaves a reference to an unset variable as written (``$foo`` stays
    ``$foo``). Methods raise ShellWordError, and only that, for a word they cannot expand.
    """

    def __init__(self, escape_token: str = "\\", *, raw_quotes: bool = False,
                 raw_escapes: bool = False, skip_unset_env: bool = False) -> None:
        if escape_token not in ("\\", "`"):
            raise ValueError(f"escape token must be '\\' or '`', not {escape_token!r}")
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        specials = "$'\"" + escape_token
        # Words without these characters come out unchanged (the fast path).
        self._needs_lexing = re.compile(f"[{re.escape(specials)}]")
        self._needs_splitting = re.compile(f"[{re.escape(specials)}<]")
        # Text the character loop can copy in one go, for each character a word can stop at.
        self._plain_run = {
            stop: re.compile(f"[^{re.escape(specials + '<' + (stop or ''))}]+")
            for stop in (None, "}", "/")
        }

    def process_word(self, word: str, env: Env | None) -> str:
        """``word`` with quotes removed and variables expanded; whitespace is kept."""
        if not word.startswith(_BOM) and not self._needs_lexing.search(word):
            return word
        return _Expansion(self, word, _as_mapping(env)).word(None, self.raw_escapes)

    def process_words(self, word: str, env: Env | None) -> list[str]:
        """``word`` expanded, then split at whitespace that is neither quoted nor escaped.

        Whitespace that comes from a variable splits too (``$v`` with ``v="a b"`` gives two
        words, ``"$v"`` one). Empty words are dropped.
        """
        if not word.startswith(_BOM) and not self._needs_splitting.search(word):
            return [part for part in _WHITESPACE_RUN.split(word) if part]
        words = _Words()
        _Expansion(self, word, _as_mapping(env)).word(None, self.raw_escapes, words)
        return words.finish()

    def process_word_with_matches(self, word: str,
                                  env: Env | None) -> tuple[str, set[str], set[str]]:
        """Like ``process_word``, also returning the names looked up: (result, set, unset).

        A name set to the empty string counts as set.
        """
        if not word.startswith(_BOM) and not self._needs_lexing.search(word):
            return word, set(), set()
        expansion = _Expansion(self, word, _as_mapping(env))
        result = expansion.word(None, self.raw_escapes)
        return result, expansion.matched, expansion.unmatched


_HEREDOC_WORDS = ShellLex(skip_unset_env=True)
_HEREDOC_WORDS_QUOTED = ShellLex(raw_quotes=True, skip_unset_env=True)


@lru_cache(maxsize=256)   # a Dockerfile repeats its terminators (EOF): lex each once
def heredoc_name(word_after_arrows: str) -> tuple[str, bool]:
    """The heredoc name in the word after ``<<`` / ``<<-`` and whether its body is expanded.

    ``<<'EOF'``, ``<<"EOF"`` and ``<<E'O'F`` all give ``EOF``; quoting any part turns expansion
    off. An escaped quote is not quoting: ``eo\\'f`` gives ``("eo'f", True)``. Variables are not
    expanded (``$EOF`` stays ``$EOF``). Returns ``("", False)`` when the text is not exactly one
    shell word (``EOF sh``, ``''``, empty): that is not a heredoc. Raises ShellWordError for an
    unterminated quote.
    """
    words = _HEREDOC_WORDS.process_words(word_after_arrows, {})
    if len(words) != 1:
        return "", False
    quoted = _HEREDOC_WORDS_QUOTED.process_words(word_after_arrows, {})
    if len(quoted) != 1:
        # Empty quotes are a word only when kept: "''EOF" is fine, "'' EOF" is two words.
        raise ShellWordError(f"heredoc word {_quote(word_after_arrows)} is ambiguous: "
                             "write the delimiter as one word")
    name = words[0]
    # Quote removal is the only difference between the two lexers, so equal quote counts
    # mean nothing was quoted.
    expand = name.count("'") + name.count('"') == quoted[0].count("'") + quoted[0].count('"')
    return name, expand
