"""Registries as a Python API: pull, push, login, logout (the ``lamina`` commands of the same
names), returning typed values; progress goes to an optional callback, one event per layer.

    from lamina.api.registry import pull, push

    pulled = pull("127.0.0.1:5000/team/app:1")
    print(pulled.digest, pulled.image_id)
    push("127.0.0.1:5000/team/app:2")

Settings (insecure registries, mirrors, the certs.d folder) come from the state root's
``config.json`` (lamina.registry.config); credentials from Docker's ``config.json``
(``$DOCKER_CONFIG``, else ``~/.docker``), so ``docker login`` and ``lamina login`` share them.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import LaminaError, UsageError
from ..image.platform import Platform
from ..image.reference import ImageReference, parse_normalized
from ..registry import quirks
from ..registry.client import Registry, Session
from ..registry.config import RegistryConfig
from ..registry.credentials import Credential, CredentialStore, server_key
from ..registry.mirrors import registry_endpoint
from ..registry.progress import LayerProgress, ProgressCallback, ignore
from ..store import Store, default_root

__all__ = ["LayerProgress", "LoginResult", "LogoutResult", "PullResult", "PushResult",
           "login", "logout", "pull", "pull_all_tags", "push", "push_all_tags", "remote_tags",
           "repo_digests"]


@dataclass(frozen=True)
class PullResult:
    """An image ``lamina pull`` brought into the store (or found already there)."""

    reference: str          # full: docker.io/library/ubuntu:latest
    name: str               # Docker's short form: ubuntu:latest
    digest: str             # the registry's digest (of the index, for a multi-platform tag)
    manifest_digest: str    # of the manifest stored, for this platform
    image_id: str           # the config digest
    layers_downloaded: int  # the others were in the store already
    up_to_date: bool        # the name already meant this image
    source: str             # the endpoint it came from: a mirror, or the registry


@dataclass(frozen=True)
class PushResult:
    """An image ``lamina push`` sent, as the registry now names it."""

    reference: str          # full: 127.0.0.1:5000/team/app:1
    repository: str         # 127.0.0.1:5000/team/app
    tag: str
    digest: str             # of the manifest pushed, as the registry now knows it
    size: int               # of that manifest, in bytes


@dataclass(frozen=True)
class LoginResult:
    """Credentials ``lamina login`` checked with the registry and saved."""

    server: str             # the key in config.json: a host, or Docker Hub's v1 URL
    username: str
    stored_in: str          # the config.json path, or the credential helper


@dataclass(frozen=True)
class LogoutResult:
    """Which registry ``lamina logout`` forgot, and whether it had credentials to forget."""

    server: str
    removed: bool           # False: there were no credentials for it


def pull(name: str, *, platform: str | Platform | None = None, store: Store | None = None,
         progress: ProgressCallback | None = None, unpack: bool = True) -> PullResult:
    """Pull ``NAME[:TAG|@DIGEST]`` (default tag ``latest``) for ``platform`` (default: this
    machine's), unpack it (unless ``unpack=False``) and name it."""
    from ..registry.pull import pull_image

    store = store or Store.open()
    ref = parse_normalized(name)
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    with _session(store.root) as session:
        pulled = pull_image(store, ref, session, platform=wanted,
                            progress=progress or ignore, unpack=unpack)
    return PullResult(str(ref), ref.familiar(), pulled.digest, pulled.manifest.digest,
                      pulled.manifest.config.digest, len(pulled.fetched), pulled.up_to_date,
                      pulled.endpoint)


def remote_tags(name: str, *, store: Store | None = None) -> list[str]:
    """The tags of repository ``name`` in its registry (a mirror first, for docker.io)."""
    from ..registry.pull import remote_tags as tags_of

    root = store.root if store is not None else default_root()
    with _session(root) as session:
        return tags_of(session, _repository(name, "pull -a"))


def pull_all_tags(name: str, **options) -> list[PullResult]:
    """Pull every tag of repository ``name``; ``options`` as for ``pull``."""
    ref = _repository(name, "pull -a")
    return [pull(f"{ref.repository}:{tag}", **options)
            for tag in remote_tags(name, store=options.get("store"))]


def push(name: str, *, store: Store | None = None, progress: ProgressCallback | None = None,
         chunk_size: int | None = None, compression: str | None = "gzip") -> PushResult:
    """Push the local image ``NAME[:TAG]`` (default tag ``latest``) to its registry (docker.io
    for a name without a registry host). ``chunk_size`` sends blobs in chunks of that many
    bytes instead of one request each. Uncompressed layers are sent compressed with
    ``compression`` (``"gzip"``, as Docker; ``"zstd"``; ``"none"``: as stored); the digest
    pushed then differs from the local one, and is recorded as a RepoDigest."""
    from ..registry.push import push_image

    store = store or Store.open()
    ref = parse_normalized(name)
    if ref.digest is not None:
        raise UsageError(f"cannot push {name}: push a name and tag, not a digest",
                         hint="tag the image first: lamina tag IMAGE NAME:TAG")
    with _session(store.root) as session:
        pushed = push_image(store, ref, session, progress=progress or ignore,
                            chunk_size=chunk_size, compression=compression)
    return PushResult(str(ref), ref.repository, ref.tag or "", pushed.digest, pushed.size)


def push_all_tags(name: str, *, store: Store | None = None, **options) -> list[PushResult]:
    """Push every local tag of repository ``name``; ``options`` as for ``push``."""
    store = store or Store.open()
    ref = _repository(name, "push --all-tags")
    tags = sorted({entry.name for entry in store.index.list()
                   if entry.name and _same_repository(entry.name, ref)})
    if not tags:
        raise UsageError(f"no local tag of {ref.familiar_name}",
                         hint="`lamina images` lists the local images")
    return [push(tag, store=store, **options) for tag in tags]


def repo_digests(image_digest: str, *, store: Store | None = None) -> list[str]:
    """The digests registries know the local image ``image_digest`` (its manifest digest, as
    ``lamina.api.images`` gives it) by, in Docker's short form ``name@sha256:...``, newest
    first, one per repository: the manifest digest each pull got and each push sent."""
    from ..registry.repodigests import RepoDigests

    store = store or Store.open()
    return RepoDigests(store.root, store.lock).familiar_of(image_digest)


def login(server: str | None = None, *, username: str, password: str,
          store: Store | None = None) -> LoginResult:
    """Check the credentials against the registry (``GET /v2/``), then save them."""
    if not username or not password:
        raise UsageError("a username and a password are needed to log in")
    registry = _server(server)
    credential = Credential(username, password)
    root = store.root if store is not None else default_root()
    with _session(root) as session:
        Registry(registry_endpoint(registry), session.transport, lambda: credential).ping()
    stored_in = CredentialStore().store(registry, credential)
    return LoginResult(server_key(registry), username, stored_in)


def logout(server: str | None = None) -> LogoutResult:
    """Forget the saved credentials of a registry (default: Docker Hub)."""
    registry = _server(server)
    return LogoutResult(server_key(registry), CredentialStore().erase(registry))


@contextmanager
def _session(root: Path) -> Iterator[Session]:
    with Session(RegistryConfig.load(root)) as session:
        yield session


def _server(server: str | None) -> str:
    """A registry as login takes it (``host:port``, ``https://host/``, Hub's v1 URL) -> the
    registry name references use: ``host:port``, or docker.io."""
    if not server:
        return quirks.DOCKER_HUB_DOMAIN
    host = urlsplit(server if "://" in server else f"//{server}").netloc
    if not host:
        raise UsageError(f"{server!r} is not a registry", hint="give HOST[:PORT]")
    return quirks.DOCKER_HUB_DOMAIN if quirks.is_docker_hub(host) else host


def _repository(name: str, command: str) -> ImageReference:
    ref = ImageReference.parse(name)
    if ref.tag is not None or ref.digest is not None:
        raise UsageError(f"{command} takes a repository name without a tag or digest: {name}")
    return ref


def _same_repository(tag_name: str, ref: ImageReference) -> bool:
    try:
        return parse_normalized(tag_name).repository == ref.repository
    except LaminaError:
        return False
