"""lamina's registry settings, the endpoints a reference is pulled and pushed from, and how
login names a server."""
from __future__ import annotations

import json

import pytest

from lamina.api.registry import _server
from lamina.image.reference import parse_normalized
from lamina.registry.config import RegistryConfig, RegistryConfigError
from lamina.registry.mirrors import pull_endpoints, registry_endpoint


def write(root, obj) -> None:
    (root / "config.json").write_text(json.dumps(obj))


def test_no_file_means_the_defaults(tmp_path):
    config = RegistryConfig.load(tmp_path)
    assert config == RegistryConfig()
    assert str(config.certs_directory) == "/etc/docker/certs.d"


def test_the_file_is_read(tmp_path):
    write(tmp_path, {"insecure-registries": ["reg.local:5000", "10.1.0.0/16"],
                     "registry-mirrors": ["https://mirror.example.com"],
                     "certs-directory": str(tmp_path / "certs")})
    config = RegistryConfig.load(tmp_path)
    assert config.insecure_registries == ("reg.local:5000", "10.1.0.0/16")
    assert config.registry_mirrors == ("https://mirror.example.com",)
    assert config.certs_directory == tmp_path / "certs"


@pytest.mark.parametrize("obj, words", [
    ({"insecure-registry": []}, "unknown key 'insecure-registry'"),
    ({"registry-mirrors": "https://m"}, "must be a list of strings"),
    ({"registry-mirrors": ["https://m.example.com/v2/"]}, "has no path"),
    ([], "must be a JSON object"),
])
def test_a_bad_file_is_refused_with_its_path(tmp_path, obj, words):
    write(tmp_path, obj)
    with pytest.raises(RegistryConfigError) as caught:
        RegistryConfig.load(tmp_path)
    assert str(tmp_path / "config.json") in str(caught.value)
    assert words in str(caught.value)


def test_invalid_json_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(RegistryConfigError, match="cannot read it"):
        RegistryConfig.load(tmp_path)


@pytest.mark.parametrize("host, insecure", [
    ("reg.local:5000", True),       # listed with its port
    ("reg.local:6000", False),      # another port of it is not
    ("plain.local:7000", True),     # listed without a port: every port
    ("10.1.2.3:5000", True),        # in a listed CIDR
    ("10.2.0.1:5000", False),
    ("localhost:5000", True),       # loopback, as Docker allows
    ("127.0.0.1:5000", True),
    ("[::1]:5000", True),
    ("registry-1.docker.io", False),
    ("ghcr.io", False),
])
def test_insecure_registries(tmp_path, host, insecure):
    config = RegistryConfig(("reg.local:5000", "plain.local", "10.1.0.0/16"),
                            certs_directory=tmp_path)
    assert config.is_insecure(host) is insecure


def test_a_ca_in_certs_d_makes_a_loopback_registry_verified(tmp_path):
    (tmp_path / "127.0.0.1:5000").mkdir()
    (tmp_path / "127.0.0.1:5000" / "ca.crt").write_text("...")
    config = RegistryConfig(certs_directory=tmp_path)
    assert not config.is_insecure("127.0.0.1:5000")
    assert config.is_insecure("127.0.0.1:5001")


def test_docker_hub_is_pulled_from_its_mirrors_first():
    config = RegistryConfig(registry_mirrors=("https://mirror.example.com",
                                              "http://127.0.0.1:5001"))
    endpoints = pull_endpoints(parse_normalized("ubuntu"), config)
    assert [str(e) for e in endpoints] == ["https://mirror.example.com",
                                           "http://127.0.0.1:5001", "registry-1.docker.io"]
    assert [e.mirror for e in endpoints] == [True, True, False]
    assert endpoints[-1].registry == "docker.io"  # Hub's credentials, Hub's API host


def test_other_registries_are_never_mirrored():
    config = RegistryConfig(registry_mirrors=("https://mirror.example.com",))
    endpoints = pull_endpoints(parse_normalized("ghcr.io/org/app:1"), config)
    assert [str(e) for e in endpoints] == ["ghcr.io"]


def test_a_name_without_a_registry_is_pushed_to_docker_hub():
    ref = parse_normalized("mmumshad/my-custom-app")
    endpoint = registry_endpoint(ref.domain)
    assert (endpoint.host, endpoint.registry, ref.path) == \
        ("registry-1.docker.io", "docker.io", "mmumshad/my-custom-app")


@pytest.mark.parametrize("given, registry", [
    (None, "docker.io"),
    ("docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("localhost:5000", "localhost:5000"),
    ("https://reg.example.com/", "reg.example.com"),
    ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
])
def test_login_servers_are_named_as_docker_names_them(given, registry):
    assert _server(given) == registry
