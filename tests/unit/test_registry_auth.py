"""WWW-Authenticate challenges as registries send them, and Retry-After."""
from __future__ import annotations

import email.utils
import time

import pytest

from lamina.registry.auth import Challenge, parse_challenges
from lamina.registry.quirks import retry_after


def test_docker_hub_bearer_challenge():
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:samalba/my-app:pull,push"')
    assert parse_challenges([header]) == [Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push"})]


def test_several_challenges_in_one_header_and_in_several():
    found = parse_challenges(['Basic realm="reg", Bearer realm="https://a/token",service=s',
                              'Negotiate'])
    assert [c.scheme for c in found] == ["basic", "bearer", "negotiate"]
    assert found[1].params == {"realm": "https://a/token", "service": "s"}


def test_quoted_strings_keep_commas_and_escapes():
    found = parse_challenges(['Bearer realm="https://a/token?x=1,2", error="say \\"no\\""'])
    assert found[0].params == {"realm": "https://a/token?x=1,2", "error": 'say "no"'}


def test_scheme_and_parameter_names_are_case_insensitive():
    assert parse_challenges(['BEARER Realm="r"']) == [Challenge("bearer", {"realm": "r"})]


def test_garbage_gives_nothing_rather_than_an_error():
    assert parse_challenges(["", "   ", '="x"']) == []


@pytest.mark.parametrize("value, seconds", [(None, None), ("", None), ("7", 7.0),
                                            ("soon", None)])
def test_retry_after_in_seconds(value, seconds):
    assert retry_after(value) == seconds


def test_retry_after_as_a_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after(when) <= 31
