"""Fuzzing the parsers with hypothesis (issue 9, item 3): image references, manifests, image
indexes and configs from random JSON and random bytes, the Dockerfile parser and the
.dockerignore matcher. Every input ends in a result or a ``LaminaError``, never another
exception. Bounded for CI; ``LAMINA_FUZZ_EXAMPLES`` (``make fuzz``) raises the count.
"""
from __future__ import annotations

import functools
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.dockerfile.ignore import PatternMatcher, read_ignore
from lamina.dockerfile.parser import parse as parse_dockerfile
from lamina.errors import LaminaError
from lamina.image import mediatypes as mt
from lamina.image.config import ImageConfig
from lamina.image.manifest import Index, Manifest, parse_manifest
from lamina.image.reference import ImageReference, parse_normalized

EXAMPLES = int(os.environ.get("LAMINA_FUZZ_EXAMPLES", "150"))
_COUNT = [0]


def counted(fn):
    """Count the inputs a fuzz function sees (for the figures)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _COUNT[0] += 1
        return fn(*args, **kwargs)
    return wrapper


def run(record_property, name: str, fuzz_function) -> None:
    _COUNT[0] = 0
    fuzz_function()
    record_property("lamina_figure", ("fuzz inputs (all ended in a result or a LaminaError)",
                                      name, _COUNT[0]))
fuzz = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DIGEST = "sha256:" + "ab" * 32
REF_PIECES = ["docker.io", "localhost:5000", "127.0.0.1", "[::1]:5000", "library", "ubuntu",
              "a", "A", "_", "__", "-", ".", "..", "/", "//", ":", "::", "@", "sha256:",
              DIGEST, "latest", "x" * 130, "1" * 64, "é", " ", "\x00", "\n", "ab" * 32,
              "sha512:" + "c" * 128]
ref_text = st.one_of(st.text(max_size=60),
                     st.lists(st.sampled_from(REF_PIECES), max_size=8).map("".join))


@fuzz
@given(ref_text)
@counted
def _reference_parse_gives_a_reference_or_a_lamina_error(text):
    try:
        ref = ImageReference.parse(text)
    except LaminaError as err:
        assert str(err)
        return
    assert ref.domain and ref.path
    again = ImageReference.parse(str(ref))   # what it prints parses to the same reference
    assert again == ref
    assert parse_normalized(str(ref)).tag in (ref.tag or "latest", ref.tag)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), st.text(max_size=20),
                         st.sampled_from([DIGEST, mt.OCI_MANIFEST, mt.OCI_INDEX, mt.OCI_CONFIG,
                                          mt.OCI_LAYER_GZIP, "sha256:", "sha256:zz", 2**63]))
json_values = st.recursive(json_scalars,
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4)),
                           max_leaves=20)
KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size",
        "platform", "architecture", "os", "annotations", "urls", "rootfs", "diff_ids", "type",
        "history", "created", "config", "Env", "Cmd", "Entrypoint", "User", "ExposedPorts",
        "Volumes", "Labels", "Healthcheck", "empty_layer", "variant", "os.version"]


def _descriptor(value):
    return st.fixed_dictionaries({"mediaType": st.sampled_from([mt.OCI_LAYER_GZIP, mt.OCI_CONFIG,
                                                                mt.OCI_MANIFEST, "x/y", ""]),
                                  "digest": st.sampled_from([DIGEST, "sha256:1", "md5:x", ""]),
                                  "size": st.one_of(st.integers(-5, 2**65), st.text(max_size=3))},
                                 optional={"platform": value, "annotations": value,
                                           "urls": value})


shaped = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
                            _descriptor(inner)),
    max_leaves=25)
documents = st.one_of(
    shaped.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.builds(lambda ms, layers, extra: json.dumps({"schemaVersion": 2, "mediaType": ms,
                                                    "config": layers[0] if layers else {},
                                                    "layers": layers, "manifests": layers,
                                                    **extra}).encode(),
              st.sampled_from([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, None, 3]),
              st.lists(_descriptor(json_scalars), max_size=3),
              st.dictionaries(st.sampled_from(KEYS), json_scalars, max_size=3)))


@fuzz
@given(documents, st.sampled_from([None, mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST,
                                   mt.DOCKER_MANIFEST_LIST, "text/plain"]))
@counted
def _manifest_and_index_parse_give_a_result_or_a_lamina_error(raw, media_type):
    try:
        parsed = parse_manifest(raw, media_type)
    except LaminaError as err:
        assert str(err)
        return
    assert isinstance(parsed, (Manifest, Index))


@fuzz
@given(documents)
@counted
def _config_parse_gives_a_config_or_a_lamina_error(raw):
    try:
        config = ImageConfig.parse(raw)
    except LaminaError as err:
        assert str(err)
        return
    ImageConfig.parse(config.to_json())   # what it writes reads back
    try:
        config.layer_history()
    except LaminaError as err:   # a history that does not fit the layers is refused clearly
        assert str(err)


DF_WORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "ONBUILD", "HEALTHCHECK", "CMD", "SHELL",
            "<<EOF", "EOF", "\\", "`", "# escape=`", "# syntax=x", "--from=a", "--mount=",
            "[", "]", '"', "'", "${x:-y}", "$", "\n", "\r\n", "\t", " ", "\x00", "\ufeff", "é"]


@fuzz
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.sampled_from(DF_WORDS), max_size=40).map(" ".join),
                 st.text(max_size=200)))
@counted
def _dockerfile_parser_gives_a_result_or_a_lamina_error(data):
    try:
        parse_dockerfile(data)
    except LaminaError as err:
        assert str(err)


IGNORE_PIECES = ["*", "**", "?", "[", "]", "[!a-z]", "[z-a]", "\\", "!", "/", "..", ".", "a",
                 "b/c", " ", "#", "\n", "\r\n", "[^]", "[a-", "\x00", "é"]


@fuzz
@given(st.one_of(st.binary(max_size=200),
                 st.lists(st.sampled_from(IGNORE_PIECES), max_size=30).map("".join)),
       st.lists(st.text(alphabet="ab/.*?[]\\!c", max_size=12), max_size=5))
@counted
def _dockerignore_matcher_gives_a_result_or_a_lamina_error(data, paths):
    try:
        matcher = PatternMatcher(read_ignore(data))
        for path in paths:
            matcher.matches(path)
    except LaminaError as err:
        assert str(err)


def test_reference_parse_gives_a_reference_or_a_lamina_error(record_property):
    run(record_property, "reference", _reference_parse_gives_a_reference_or_a_lamina_error)


def test_manifest_and_index_parse_give_a_result_or_a_lamina_error(record_property):
    run(record_property, "manifest/index", _manifest_and_index_parse_give_a_result_or_a_lamina_error)


def test_config_parse_gives_a_config_or_a_lamina_error(record_property):
    run(record_property, "config", _config_parse_gives_a_config_or_a_lamina_error)


def test_dockerfile_parser_gives_a_result_or_a_lamina_error(record_property):
    run(record_property, "Dockerfile", _dockerfile_parser_gives_a_result_or_a_lamina_error)


def test_dockerignore_matcher_gives_a_result_or_a_lamina_error(record_property):
    run(record_property, ".dockerignore", _dockerignore_matcher_gives_a_result_or_a_lamina_error)
