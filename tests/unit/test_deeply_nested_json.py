"""A manifest or config nested deeper than Python's JSON decoder recurses is refused with a
LaminaError (what a user sees from pull, load or verify), never a RecursionError."""
from __future__ import annotations

import pytest

from lamina.errors import LaminaError
from lamina.image import mediatypes as mt
from lamina.image.config import ImageConfig
from lamina.image.manifest import parse_manifest
from lamina.image.schema import validate

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000


def test_a_deep_manifest_is_a_manifest_error():
    with pytest.raises(LaminaError, match="not valid JSON"):
        parse_manifest(DEEP, mt.OCI_MANIFEST)


def test_a_deep_config_is_a_config_error():
    with pytest.raises(LaminaError, match="not valid JSON"):
        ImageConfig.parse(DEEP)


@pytest.mark.parametrize("kind", ["manifest", "index", "config"])
def test_the_schema_check_reports_a_deep_document(kind):
    problems = validate(DEEP, kind)
    assert len(problems) == 1 and "not valid JSON" in str(problems[0])
