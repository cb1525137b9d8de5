"""RepoDigests: the digest a registry knows a local image by, per repository.

``<state root>/repodigests.json`` maps the digest index.json names an image by (its
manifest, or its index) to ``repository@digest`` strings, the most recent first, at most
one per repository (a newer pull or push of the same image to that repository replaces it):

    {"sha256:<local manifest>": ["127.0.0.1:5000/team/app@sha256:<registry manifest>"]}

A pull records the digest the registry served (of the index, for a multi-platform tag, as
Docker does); a push the digest of the manifest it sent, which differs from the local one
when push compressed the layers. ``lamina inspect`` shows them, in Docker's short form.

The file is written atomically under its own lock (and the store lock, shared, so crash
recovery never sees a half-written temp file). It is information, not content: an entry
for an image that is gone is harmless and dropped when the file is next written.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LaminaError
from ..image.reference import ImageReference
from ..store.locks import FileLock
from ..store.records import JsonRecord

MAX_PER_IMAGE = 16


class RepoDigests:
    def __init__(self, root: Path, store_lock: FileLock) -> None:
        self._record = JsonRecord(root, "repodigests", store_lock)

    def of(self, image_digest: str) -> list[str]:
        """``repository@digest`` (full names) recorded for the local image."""
        return list(self._read().get(image_digest, []))

    def familiar_of(self, image_digest: str) -> list[str]:
        """The same in Docker's short form: ``busybox@sha256:...``."""
        return [_familiar(entry) for entry in self.of(image_digest)]

    def record(self, image_digest: str, repository: str, registry_digest: str,
               keep: set[str] | None = None) -> None:
        """Note that ``repository`` (``host/path``) holds the local image ``image_digest``
        as ``registry_digest``. ``keep``: the image digests still in the store; entries of
        the others are dropped on the way."""
        entry = f"{repository}@{registry_digest}"
        def change(data: dict) -> dict:
            data = _valid(data)
            if keep is not None:
                data = {key: value for key, value in data.items()
                        if key in keep or key == image_digest}
            others = [e for e in data.get(image_digest, [])
                      if e.rsplit("@", 1)[0] != repository]
            data[image_digest] = [entry, *others][:MAX_PER_IMAGE]
            return data
        self._record.update(change)

    def _read(self) -> dict[str, list[str]]:
        return _valid(self._record.read())


def _valid(data: dict) -> dict[str, list[str]]:
    return {key: [e for e in value if isinstance(e, str) and "@" in e]
            for key, value in data.items() if isinstance(value, list)}


def _familiar(entry: str) -> str:
    try:
        return ImageReference.parse(entry).familiar()
    except LaminaError:
        return entry
