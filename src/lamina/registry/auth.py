"""Registry auth: anonymous, basic, and bearer tokens (Docker's token flow).

A registry that wants auth answers 401 with ``WWW-Authenticate``:

    Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."

For Bearer, lamina asks the realm for a token for the scopes the operation needs
(``repository:library/ubuntu:pull``; ``...:pull,push`` to push, plus ``repository:<from>:pull``
to mount from another repository): ``GET realm?service=...&scope=...``, with basic credentials
when it has some, or, for an identity token, the OAuth2 ``POST`` with
``grant_type=refresh_token``. Tokens are cached per set of scopes until they expire; a 401 with
a cached token drops it and fetches a new one. For Basic, every request carries the
credentials once the registry has asked for them.

One ``Authenticator`` serves one registry for a whole command, shared by its threads.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from . import quirks
from .credentials import Credential
from .errors import RegistryError, UnauthorizedError
from .transport import Transport

_TOKEN_CHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_PARAM = re.compile(rf'\s*({_TOKEN_CHAR}+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN_CHAR}+))\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN_CHAR}+)(?:\s+|$|(?=,))")
_COMMA = re.compile(r"\s*,")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a registry's ``WWW-Authenticate`` header: how it wants to be asked."""

    scheme: str                                  # lowercase: "bearer", "basic"
    params: Mapping[str, str] = field(default_factory=dict)


def parse_challenges(values: list[str]) -> list[Challenge]:
    """The challenges of every ``WWW-Authenticate`` header value (RFC 7235 syntax)."""
    challenges = []
    for value in values:
        pos = 0
        while pos < len(value):
            scheme = _SCHEME.match(value, pos)
            if scheme is None:
                break
            pos = scheme.end()
            params: dict[str, str] = {}
            while (param := _PARAM.match(value, pos)) is not None:
                quoted, token = param.group(2), param.group(3)
                params[param.group(1).lower()] = \
                    re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
                pos = param.end()
            challenges.append(Challenge(scheme.group(1).lower(), params))
            # A parameter took its comma; a challenge without any ("Negotiate, ...") has one.
            comma = _COMMA.match(value, pos)
            if comma is not None:
                pos = comma.end()
    return challenges


class Authenticator:
    """Auth state of one registry: its challenge, credentials and cached tokens."""

    def __init__(self, registry: str, transport: Transport,
                 lookup: Callable[[], Credential | None] = lambda: None) -> None:
        self.registry = registry
        self._transport = transport
        self._lookup = lookup
        self._credential: Credential | None = None
        self._looked_up = False
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header for a request needing ``scopes``; None: anonymous."""
        challenge = self._challenge
        if challenge is None:
            return None
        with self._lock:
            if challenge.scheme == "basic":
                return self._basic() if self.credential else None
            token, expires = self._tokens.get(scopes, ("", 0.0))
            if time.monotonic() >= expires:
                token = self._fetch_token(challenge, scopes)
        return f"Bearer {token}"

    def challenged(self, values: list[str], scopes: tuple[str, ...], sent: str | None) -> bool:
        """Learn from a 401; True when a new attempt with ``authorization()`` may succeed."""
        challenges = parse_challenges(values)
        challenge = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if challenge is None:
            return False
        with self._lock:
            self._challenge = challenge
            if challenge.scheme == "bearer":
                self._tokens.pop(scopes, None)  # expired or revoked: fetch a new one
                return True
            return self.credential is not None and sent is None

    @property
    def credential(self) -> Credential | None:
        """The credentials for this registry, looked up only once it asks for some (a
        credential helper is a program to run: an anonymous pull never needs it)."""
        if not self._looked_up:
            self._credential = self._lookup()
            self._looked_up = True
        return self._credential

    def _basic(self) -> str:
        assert self.credential is not None
        pair = f"{self.credential.username}:{self.credential.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"{self.registry} asks for a bearer token without a realm",
                                hint="the registry's auth configuration is broken")
        service = challenge.params.get("service")
        credential = self.credential
        if credential is not None and credential.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credential.identity_token,
                    "client_id": "lamina", **({"service": service} if service else {}),
                    **({"scope": " ".join(scopes)} if scopes else {})}
            response = self._transport.request(
                "POST", realm, body=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            query = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}" if query else realm
            response = self._transport.request(
                "GET", url, authorization=self._basic() if credential else None)
        with response:
            body = response.read(1024 * 1024)
        if response.status in (401, 403):
            raise UnauthorizedError(
                f"{self.registry}: " + ("incorrect username or password" if credential
                                        else "authentication required"),
                hint=f"log in with: lamina login {self.registry}")
        if response.status != 200:
            raise RegistryError(f"the token server of {self.registry} answered "
                                f"{response.status}", hint="try again later")
        try:
            obj = json.loads(body)
            token = next(obj[k] for k in quirks.TOKEN_FIELDS if obj.get(k))
            lifetime = float(obj.get("expires_in") or quirks.DEFAULT_TOKEN_LIFETIME)
        except (ValueError, TypeError, StopIteration, AttributeError):
            raise RegistryError(f"the token server of {self.registry} answered no token",
                                hint="the registry's auth configuration is broken") from None
        expires = time.monotonic() + lifetime - min(quirks.TOKEN_EXPIRY_MARGIN, lifetime / 2)
        self._tokens[scopes] = (token, expires)
        return token
