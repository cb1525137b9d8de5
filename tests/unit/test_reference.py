"""Image references read the way Docker reads them."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.image.reference import ImageReference, ReferenceError, parse_normalized


@pytest.mark.parametrize("text, full, familiar", [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("python:3.6", "docker.io/library/python:3.6", "python:3.6"),
    ("mmumshad/my-custom-app", "docker.io/mmumshad/my-custom-app:latest",
     "mmumshad/my-custom-app:latest"),
    ("docker.io/library/debian:bookworm", "docker.io/library/debian:bookworm", "debian:bookworm"),
    ("index.docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("127.0.0.1:5055/lamina/test:1", "127.0.0.1:5055/lamina/test:1", "127.0.0.1:5055/lamina/test:1"),
    ("ghcr.io/o/r/deep/path:v1.2", "ghcr.io/o/r/deep/path:v1.2", "ghcr.io/o/r/deep/path:v1.2"),
    ("a__b/c--d.e_f", "docker.io/a__b/c--d.e_f:latest", "a__b/c--d.e_f:latest"),
])
def test_names_normalize_like_docker(text, full, familiar):
    ref = parse_normalized(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_digest_reference_keeps_no_default_tag():
    digest = "sha256:" + "0123456789abcdef" * 4
    ref = parse_normalized(f"busybox@{digest}")
    assert ref.tag is None and ref.digest == digest
    assert str(ref) == f"docker.io/library/busybox@{digest}"


def test_tag_and_digest_together():
    digest = "sha256:" + "ab" * 32
    ref = ImageReference.parse(f"debian:bookworm@{digest}")
    assert (ref.tag, ref.digest) == ("bookworm", digest)


def test_uppercase_repository_is_refused_with_the_lowercase_fix():
    with pytest.raises(ReferenceError) as info:
        ImageReference.parse("Ubuntu:22.04")
    assert "must be lowercase" in str(info.value)
    assert info.value.hint == "use ubuntu:22.04"


def test_uppercase_registry_host_is_allowed():
    # Host names are case-insensitive; only the repository path must be lowercase.
    assert ImageReference.parse("Registry.Example.com/app").domain == "Registry.Example.com"


@pytest.mark.parametrize("text", [
    "", "a b", "ubuntu:", ":tag", "foo//bar", "-foo", "foo:" + "t" * 129,
    "ubuntu@sha256:abc", "0123456789abcdef" * 4, "x" * 256,
])
def test_invalid_references_are_refused(text):
    with pytest.raises(ReferenceError) as info:
        ImageReference.parse(text)
    assert str(info.value).startswith("invalid")


@settings(max_examples=400)
@given(st.one_of(
    st.text(alphabet="ab09/:._-A@", min_size=1, max_size=24),
    st.from_regex(r"[a-z0-9.]{1,6}\.[a-z]{1,3}/[a-z0-9._-]{1,8}(:[a-z0-9.]{1,5})?",
                  fullmatch=True)))
def test_the_fast_path_agrees_with_the_whole_grammar(text):
    """Plain words take a smaller pattern: whatever it accepts, the whole grammar accepts
    with the same name and tag."""
    from lamina.image.reference import _SIMPLE_RE, _reference_re

    fast = _SIMPLE_RE.fullmatch(text)
    if fast is not None:
        full = _reference_re().match(text)
        assert full is not None
        assert (fast.group("name"), fast.group("tag")) == (full.group("name"), full.group("tag"))
