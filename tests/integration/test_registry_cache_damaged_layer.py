"""A build cache in a registry whose compressed layer copies are damaged: the import leaves
those layers out with a warning and the build goes on (no traceback), as for any layer the
registry serves wrong."""
from __future__ import annotations

import shutil

import pytest

from tests.integration.registry_fixtures import isolated  # noqa: F401 (fixture)
from tests.integration.test_registry_cache import (_build, _cached, _context,  # noqa: F401
                                                   fresh_store, registry)

pytest_plugins = ["tests.conftest_build"]   # store (with busybox), lamina
pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")


def test_damaged_compressed_cache_layers_are_warnings(store, fresh_store, registry,
                                                      tmp_path):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/cache:app"
    _build(store, ctx, cache_to=f"type=registry,ref={ref},compression=gzip")
    damaged = 0
    for blob in (registry.directory / "data").rglob("blobs/sha256/*/*/data"):
        data = bytearray(blob.read_bytes())
        if data[:2] == b"\x1f\x8b":    # a gzip layer: break its deflate stream
            data[10:len(data) - 8] = bytes(len(data) - 18)
            blob.write_bytes(bytes(data))
            damaged += 1
    assert damaged
    other = fresh_store("machine-b")
    result, log = _build(other, ctx, cache_from=f"type=registry,ref={ref}")
    assert any("could not be fetched" in w for w in result.warnings), result.warnings
    assert _cached(result)["1: COPY app.txt /app/"] is False    # rebuilt, not trusted
