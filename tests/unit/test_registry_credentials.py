"""Docker's config.json and credential helpers: what lamina reads, writes and erases."""
from __future__ import annotations

import base64
import json
import stat
import sys
import textwrap

import pytest

from lamina.registry.credentials import (Credential, CredentialsError, CredentialStore,
                                         config_path)

SECRET = "s3cr3t-p@ss"


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def test_docker_config_env_names_the_folder(docker_config):
    assert config_path() == docker_config


def test_store_writes_basic_auth_in_a_0600_file(docker_config):
    where = CredentialStore().store("127.0.0.1:5000", Credential("ann", SECRET))
    assert where == str(docker_config)
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    auths = json.loads(docker_config.read_text())["auths"]
    assert base64.b64decode(auths["127.0.0.1:5000"]["auth"]).decode() == f"ann:{SECRET}"
    assert CredentialStore().get("127.0.0.1:5000") == Credential("ann", SECRET)


def test_docker_hub_is_filed_under_its_v1_url(docker_config):
    CredentialStore().store("docker.io", Credential("ann", SECRET))
    assert list(json.loads(docker_config.read_text())["auths"]) == \
        ["https://index.docker.io/v1/"]
    assert CredentialStore().get("docker.io").username == "ann"


def test_keys_written_by_docker_with_a_scheme_are_found(docker_config):
    docker_config.parent.mkdir()
    auth = base64.b64encode(f"bob:{SECRET}".encode()).decode()
    docker_config.write_text(json.dumps({"auths": {"https://reg.example.com/v2/": {"auth": auth},
                                                   "other.example.com": {
                                                       "identitytoken": "refresh-me"}}}))
    assert CredentialStore().get("reg.example.com") == Credential("bob", SECRET)
    token = CredentialStore().get("other.example.com")
    assert token.identity_token == "refresh-me"
    assert CredentialStore().get("nowhere.example.com") is None


def test_other_settings_survive_a_login_and_a_logout(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {}}))
    store = CredentialStore()
    store.store("127.0.0.1:5000", Credential("ann", SECRET))
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert json.loads(docker_config.read_text()) == {"psFormat": "table {{.ID}}", "auths": {}}


def test_the_secret_never_shows_in_a_repr():
    assert SECRET not in repr(Credential("ann", SECRET))
    assert "refresh" not in repr(Credential("<token>", identity_token="refresh"))


def test_a_broken_config_file_is_named_without_its_content(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text('{"auths": {"x": {"auth": "' + SECRET)
    with pytest.raises(CredentialsError) as caught:
        CredentialStore().get("x")
    assert str(docker_config) in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.fixture
def helper(tmp_path, monkeypatch, docker_config):
    """``docker-credential-fake`` on PATH, keeping its secrets in a JSON file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    vault = tmp_path / "vault.json"
    script = bin_dir / "docker-credential-fake"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""
        import json, pathlib, sys
        vault = pathlib.Path({str(vault)!r})
        data = json.loads(vault.read_text()) if vault.exists() else {{}}
        action, given = sys.argv[1], sys.stdin.read()
        if action == "store":
            entry = json.loads(given)
            data[entry["ServerURL"]] = entry
        elif action == "get":
            if given not in data:
                print("credentials not found in native keychain"); sys.exit(1)
            print(json.dumps(data[given]))
        elif action == "erase":
            if data.pop(given, None) is None:
                print("credentials not found in native keychain"); sys.exit(1)
        vault.write_text(json.dumps(data))
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    docker_config.parent.mkdir()
    return vault


def test_creds_store_keeps_the_secret_out_of_the_file(helper, docker_config):
    docker_config.write_text(json.dumps({"credsStore": "fake"}))
    where = CredentialStore().store("reg.example.com", Credential("ann", SECRET))
    assert where == "docker-credential-fake"
    assert SECRET not in docker_config.read_text()
    assert json.loads(docker_config.read_text())["auths"] == {"reg.example.com": {}}
    assert json.loads(helper.read_text())["reg.example.com"]["Secret"] == SECRET
    assert CredentialStore().get("reg.example.com") == Credential("ann", SECRET)
    assert CredentialStore().erase("reg.example.com") is True
    assert CredentialStore().get("reg.example.com") is None


def test_cred_helpers_apply_to_their_registry_only(helper, docker_config):
    docker_config.write_text(json.dumps({"credHelpers": {"reg.example.com": "fake"}}))
    CredentialStore().store("reg.example.com", Credential("ann", SECRET))
    CredentialStore().store("plain.example.com", Credential("bob", "other"))
    assert set(json.loads(helper.read_text())) == {"reg.example.com"}
    assert "auth" in json.loads(docker_config.read_text())["auths"]["plain.example.com"]


def test_an_identity_token_from_a_helper(helper, docker_config):
    helper.write_text(json.dumps({"reg.example.com": {
        "ServerURL": "reg.example.com", "Username": "<token>", "Secret": "refresh-me"}}))
    docker_config.write_text(json.dumps({"credsStore": "fake"}))
    credential = CredentialStore().get("reg.example.com")
    assert (credential.identity_token, credential.password) == ("refresh-me", "")


def test_a_missing_helper_is_named(docker_config, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "nothere"}))
    with pytest.raises(CredentialsError, match="docker-credential-nothere is not installed"):
        CredentialStore().get("reg.example.com")
