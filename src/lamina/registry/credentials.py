"""Credentials in Docker's ``config.json``, so ``docker login`` and ``lamina login`` share them.

    $DOCKER_CONFIG/config.json, else ~/.docker/config.json
    {
      "auths": {"registry.example.com": {"auth": "<base64 of user:password>"},
                "https://index.docker.io/v1/": {"identitytoken": "..."}},
      "credsStore": "secretservice",             # a helper for every registry
      "credHelpers": {"gcr.io": "gcloud"}        # a helper for one registry
    }

A helper is the program ``docker-credential-<name>``, spoken to as Docker does: ``get`` and
``erase`` read the server URL on stdin, ``store`` reads ``{"ServerURL", "Username",
"Secret"}``; ``get`` answers the same JSON. A Username of ``<token>`` means the Secret is an
identity token (an OAuth2 refresh token), not a password.

Secrets never reach a message, a log or a repr: errors name the server and the file only.
The file is written whole (temp file, rename) with mode 0600; keys lamina does not know
(``proxies``, ``psFormat`` ...) are kept.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import quirks
from .errors import RegistryError

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

TOKEN_USERNAME = "<token>"  # the helpers' marker for an identity token


class CredentialsError(RegistryError):
    """A config.json or credential helper that cannot be used."""


@dataclass(frozen=True)
class Credential:
    """What to log in to one registry with; its ``repr`` never shows the secret."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:  # never the secret, whatever prints this value
        return f"Credential(username={self.username!r}, secret=***)"


def config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else \
        Path.home() / ".docker" / "config.json"


def server_key(registry: str) -> str:
    """The key Docker files a registry's credentials under: Hub's v1 URL, else the host."""
    return quirks.DOCKER_HUB_CREDENTIAL_KEY if quirks.is_docker_hub(registry) else registry


def _hostname(key: str) -> str:
    """A config key as a host: ``https://host/v1/`` -> ``host`` (Docker's ConvertToHostname)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]


class CredentialStore:
    """Docker's config.json at ``path`` (default ``config_path()``) and its helpers."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()

    def get(self, registry: str) -> Credential | None:
        key = server_key(registry)
        config = self._read()
        helper = self._helper_for(config, key)
        if helper is not None:
            found = _helper_get(helper, key)
            if found is not None:
                return found
        return _from_auths(config.get("auths") or {}, key)

    def store(self, registry: str, credential: Credential) -> str:
        """Save ``credential``; return where: the file's path or the helper's program."""
        key = server_key(registry)
        config = self._read()
        helper = self._helper_for(config, key)
        auths = config.setdefault("auths", {})
        if helper is not None:
            _helper_store(helper, key, credential)
            auths[key] = {}  # as Docker does: the entry says "logged in", the helper has it
            where = f"docker-credential-{helper}"
        else:
            entry: dict[str, str] = {}
            if credential.identity_token:
                entry["identitytoken"] = credential.identity_token
            else:
                pair = f"{credential.username}:{credential.password}".encode()
                entry["auth"] = base64.b64encode(pair).decode()
            auths[key] = entry
            where = str(self.path)
        self._write(config)
        return where

    def erase(self, registry: str) -> bool:
        """Forget the credentials of ``registry``; False when there were none."""
        key = server_key(registry)
        config = self._read()
        auths = config.get("auths") or {}
        keys = [k for k in auths if _hostname(k) == _hostname(key) or k == key]
        helper = self._helper_for(config, key)
        erased = helper is not None and _helper_erase(helper, key)
        for k in keys:
            del auths[k]
        if keys:
            self._write(config)
        return erased or bool(keys)

    def _helper_for(self, config: dict[str, Any], key: str) -> str | None:
        helpers = config.get("credHelpers") or {}
        for name, helper in helpers.items():
            if _hostname(name) == _hostname(key):
                return str(helper)
        store = config.get("credsStore")
        return str(store) if store else None

    def _read(self) -> dict[str, Any]:
        try:
            obj = json.loads(self.path.read_bytes() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            # json's message says where, never what: the file holds secrets.
            raise CredentialsError(f"{self.path}: cannot read it ({type(err).__name__})",
                                   hint="fix the file, or move it away and log in again") \
                from None
        if not isinstance(obj, dict) or not isinstance(obj.get("auths", {}), dict):
            raise CredentialsError(f"{self.path}: not a Docker config file",
                                   hint="it must be a JSON object with an \"auths\" object")
        return obj

    def _write(self, config: dict[str, Any]) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = directory / f".{self.path.name}.{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(config, out, indent="\t")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as err:
            temp.unlink(missing_ok=True)
            raise CredentialsError(f"cannot write {self.path}: {err.strerror}") from None


def _from_auths(auths: dict[str, Any], key: str) -> Credential | None:
    entry = auths.get(key)
    if entry is None:
        entry = next((v for k, v in auths.items() if _hostname(k) == _hostname(key)), None)
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credential(entry.get("username") or TOKEN_USERNAME,
                          identity_token=entry["identitytoken"])
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"the credentials for {key} in the Docker config file are "
                                   "not valid base64 of user:password",
                                   hint=f"log in to {key} again") from None
        return Credential(username, password)
    if entry.get("username"):
        return Credential(entry["username"], entry.get("password", ""))
    return None


def _run_helper(helper: str, action: str, data: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    try:
        return subprocess.run([program, action], input=data, capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise CredentialsError(f"credential helper {program} is not installed",
                               hint="install it, or remove credsStore/credHelpers from "
                                    f"{config_path()}") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} did not answer in 60 s") from None


def _helper_failure(helper: str, action: str, result: subprocess.CompletedProcess[str],
                    secret: str = "") -> CredentialsError:
    # A helper reports errors on stdout (docker-credential-helpers) or stderr. Only its first
    # line is kept, and not even that if it repeats the secret (a badly written helper).
    said = (result.stdout.strip() or result.stderr.strip()).splitlines()[:1]
    if secret and said and secret in said[0]:
        said = []
    return CredentialsError(f"credential helper docker-credential-{helper} {action} failed"
                            + (f": {said[0][:200]}" if said else ""))


def _helper_get(helper: str, key: str) -> Credential | None:
    result = _run_helper(helper, "get", key)
    if result.returncode != 0:
        if "credentials not found" in result.stdout + result.stderr:
            return None
        raise _helper_failure(helper, "get", result)
    try:
        obj = json.loads(result.stdout)
        username, secret = obj["Username"], obj["Secret"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CredentialsError(f"credential helper docker-credential-{helper} answered "
                               "something else than credentials") from None
    if username == TOKEN_USERNAME:
        return Credential(username, identity_token=secret)
    return Credential(username, secret)


def _helper_store(helper: str, key: str, credential: Credential) -> None:
    secret = credential.identity_token or credential.password
    username = TOKEN_USERNAME if credential.identity_token else credential.username
    data = json.dumps({"ServerURL": key, "Username": username, "Secret": secret})
    result = _run_helper(helper, "store", data)
    if result.returncode != 0:
        raise _helper_failure(helper, "store", result, secret)


def _helper_erase(helper: str, key: str) -> bool:
    result = _run_helper(helper, "erase", key)
    if result.returncode == 0:
        return True
    if "credentials not found" in result.stdout + result.stderr:
        return False
    raise _helper_failure(helper, "erase", result)
