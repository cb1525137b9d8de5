"""Fixtures the registry tests share: isolation from Docker Hub and the user's credentials,
quick retries, two empty stores to push from and pull into, one real docker-registry per module
on 127.0.0.1 and a fault proxy in front of it. Imported by each module
(``from tests.integration.registry_fixtures import isolated, source, target``)."""
from __future__ import annotations

import pytest

from lamina.registry import quirks, transport
from lamina.store import Store
from lamina.testing.proxy import FaultProxy


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


@pytest.fixture(scope="module")
def registry(tmp_path_factory, request):
    """The Debian docker-registry on 127.0.0.1, shared by the module's tests."""
    from tests.integration.test_registry_distribution import Distribution   # imports this module

    name = request.module.__name__.rsplit(".", 1)[-1]
    server = Distribution(tmp_path_factory.mktemp(name) / "registry")
    yield server
    server.stop()


@pytest.fixture
def proxy(registry):
    """A FaultProxy in front of ``registry``: a test sets the fault it wants."""
    with FaultProxy(registry.host) as faulty:
        yield faulty
