"""Image references, parsed and normalized the way Docker does.

``ubuntu`` is ``docker.io/library/ubuntu:latest``; ``localhost:5000/a/b:t`` names a registry
host because its first component has a ``:`` (or a ``.``, or is ``localhost``).
Grammar (distribution/reference):
    reference  := name [":" tag] ["@" digest]
    name       := [domain "/"] path-component ["/" path-component]*
    path-comp  := [a-z0-9]+ (( "." | "_" | "__" | "-"+ ) [a-z0-9]+)*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ..errors import LaminaError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Most references are plain words (busybox, app:1.2, team/app, docker.io/library/busybox:1):
# this subset of the grammar compiles in a tenth of the time the whole one takes (0.4 ms,
# compiled when first needed).
_SIMPLE_RE = re.compile(
    rf"(?P<name>(?:[a-z0-9]+(?:\.[a-z0-9]+)+/)?[a-z0-9]+(?:/[a-z0-9]+)*)(?::(?P<tag>{_TAG}))?")


@cache
def _reference_re() -> re.Pattern[str]:
    return re.compile(
        rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
        rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")


_ANCHORED_ID = re.compile(r"^[a-f0-9]{64}$")
_SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


class ReferenceError(LaminaError):
    """An image reference that Docker would refuse."""

    def __init__(self, message: str, *, reference: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reference = reference


@dataclass(frozen=True)
class ImageReference:
    """A parsed, normalised image name: registry, repository path, tag and digest."""

    domain: str          # registry host[:port], e.g. docker.io, localhost:5000
    path: str            # repository path in the registry, e.g. library/ubuntu
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The full repository name: docker.io/library/ubuntu."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short form Docker shows: ubuntu, mmumshad/app, localhost:5000/a."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_REPO_PREFIX):]
            return self.path
        return self.repository

    def __str__(self) -> str:
        return self._with_tag_and_digest(self.repository)

    def familiar(self) -> str:
        """The whole reference in Docker's short form: ubuntu:latest."""
        return self._with_tag_and_digest(self.familiar_name)

    def _with_tag_and_digest(self, name: str) -> str:
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_default_tag(self) -> "ImageReference":
        """Docker's TagNameOnly: a bare name means :latest; a digest alone stays as is."""
        if self.tag is None and self.digest is None:
            return ImageReference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    @classmethod
    def parse(cls, text: str) -> "ImageReference":
        """Parse and normalize, e.g. ``ubuntu`` -> docker.io/library/ubuntu (tag not added)."""
        if not text:
            raise ReferenceError("invalid reference format: the name is empty", reference=text)
        if _ANCHORED_ID.match(text):
            raise ReferenceError(
                f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings",
                reference=text, hint="to refer to an image by ID, use the name@sha256:<hex> form")
        match = _SIMPLE_RE.fullmatch(text) or _reference_re().match(text)
        if match is None:
            raise _explain(text)
        name = match.group("name")
        if len(name) > NAME_TOTAL_LENGTH_MAX:
            raise ReferenceError(
                f"invalid reference format: repository name must not be more than "
                f"{NAME_TOTAL_LENGTH_MAX} characters", reference=text)
        domain, path = _split_domain(name)
        digest = match.groupdict().get("digest")
        if digest is not None:
            algo, _, hexpart = digest.partition(":")
            if algo == "sha256" and not _SHA256_HEX.match(hexpart):
                raise ReferenceError(
                    f"invalid reference format: {digest} is not a sha256 digest "
                    "(64 lowercase hexadecimal characters)", reference=text)
        return cls(domain, path, match.group("tag"), digest)


def parse_normalized(text: str) -> ImageReference:
    """Parse and give a bare name the ``latest`` tag, as ``docker pull`` does."""
    return ImageReference.parse(text).with_default_tag()


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def _explain(text: str) -> ReferenceError:
    """Say why a reference did not match the grammar, with the fix where there is one."""
    name = text.split("@", 1)[0]
    # Strip a tag, but not a registry port (a ':' after the last '/').
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    first, sep, rest = name.partition("/")
    remote = rest if sep and ("." in first or ":" in first or first == "localhost") else name
    if remote != remote.lower() and re.fullmatch(
            rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*",
            name[: len(name) - len(remote)] + remote.lower()):
        fixed = text.replace(remote, remote.lower(), 1)
        return ReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase",
            reference=text, hint=f"use {fixed}")
    if any(c.isspace() for c in text):
        return ReferenceError("invalid reference format: a reference has no spaces",
                              reference=text)
    return ReferenceError(
        f"invalid reference format: {text!r} is not NAME[:TAG][@DIGEST] "
        "(lowercase letters, digits and . _ - separators; a tag of at most 128 characters)",
        reference=text)
