"""Fixtures the registry tests share: isolation from Docker Hub and the user's credentials,
quick retries, and two empty stores to push from and pull into. Imported by each module
(``from tests.integration.registry_fixtures import isolated, source, target``)."""
from __future__ import annotations

import pytest

from lamina.registry import quirks, transport
from lamina.store import Store


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real Docker Hub, no real ~/.docker, and quick retries."""
    monkeypatch.setattr(quirks, "DOCKER_HUB_HOST", "127.0.0.1:9")  # discard port: closed
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setattr(transport, "BACKOFF", 0.01)


@pytest.fixture
def source(tmp_path) -> Store:
    return Store.open(tmp_path / "source")


@pytest.fixture
def target(tmp_path) -> Store:
    return Store.open(tmp_path / "target")
