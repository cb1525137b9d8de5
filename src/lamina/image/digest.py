"""Digests (``sha256:<hex>``), chain IDs, and the canonical JSON bytes lamina writes.

A digest is always the digest of the bytes written: lamina keeps raw manifests and configs and
never re-serialises something to recompute its digest. ``canonical_json`` is only for values
lamina creates itself (a new manifest, a new config, index.json), so that the same value always
gives the same bytes and so the same digest.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable

from ..errors import LaminaError

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
SHORT_ID_LENGTH = 12  # Docker's IMAGE ID column


class DigestError(LaminaError):
    """A string that is not a digest lamina can use."""

    def __init__(self, message: str, *, digest: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.digest = digest


def sha256_digest(data: bytes) -> str:
    """The digest of ``data``: ``sha256:<64 lowercase hex>``."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``; raise DigestError otherwise."""
    if not isinstance(digest, str):
        raise DigestError(f"invalid digest {digest!r}", digest=str(digest),
                          hint="a digest is a string: sha256:<64 hex characters>")
    if _DIGEST_RE.fullmatch(digest):
        return digest
    algo = digest.split(":", 1)[0]
    if _ANY_DIGEST_RE.fullmatch(digest) and algo != ALGORITHM:
        raise DigestError(f"unsupported digest algorithm {algo!r} in {digest}", digest=digest,
                          hint="lamina stores and verifies sha256 digests only")
    raise DigestError(f"invalid digest {digest!r}", digest=digest,
                      hint="a digest is sha256: followed by 64 lowercase hexadecimal characters")


def digest_hex(digest: str) -> str:
    """The hex part of a valid digest (the blob's file name in an OCI layout)."""
    return validate_digest(digest).split(":", 1)[1]


def short_id(digest: str) -> str:
    """Docker's short form: the first 12 hex characters (``sha256:`` dropped)."""
    return digest_hex(digest)[:SHORT_ID_LENGTH]


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of every layer prefix, per the OCI image spec.

    ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    A chain ID names a whole stack of layers, which is what a snapshot holds.
    """
    result: list[str] = []
    for diff_id in diff_ids:
        validate_digest(diff_id)
        if result:
            result.append(sha256_digest(f"{result[-1]} {diff_id}".encode()))
        else:
            result.append(diff_id)
    return result


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no insignificant whitespace.

    Sorted keys match how Go encodes maps; struct order is not something a reader may rely on.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
