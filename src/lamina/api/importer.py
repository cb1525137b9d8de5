"""``import``: a root file system tarball becomes a one-layer image, as ``docker import``.

The image config is what Docker writes for an import: the platform (this machine's unless
given), the creation time, the ``--change`` instructions applied to an empty container
config, and one history entry whose comment is the message, by default Docker's
"Imported from -" (Docker's CLI sends a file as a stream too, hence the ``-``).
Only files and standard input are read; a URL is refused.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import UsageError
from ..image.config import ContainerConfig, History, ImageConfig, format_unix_time
from ..image.mutate import append_layer, apply_changes
from ..image.platform import Platform, host_platform
from ..image.reference import ImageReference, parse_normalized
from ..layer import LayerError
from ..store import Store
from ..store.commit import commit_image, put_layer
from .archive import open_input

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

DEFAULT_MESSAGE = "Imported from -"


@dataclass(frozen=True)
class ImportedImage:
    """The image ``lamina import`` made from a root file system tar."""

    image_id: str       # the config digest, what ``lamina import`` prints
    digest: str         # the manifest digest
    name: str | None    # the tag it got (Docker's short form), if one was asked for


def import_image(source: BinaryIO | str | os.PathLike[str], reference: str | None = None, *,
                 changes: Sequence[str] = (), message: str | None = None,
                 platform: str | Platform | None = None,
                 store: Store | None = None) -> ImportedImage:
    """Make an image of the tarball ``source`` (a path, or a stream such as stdin).

    The tarball is plain, gzip, bzip2, xz or zstd; ``changes`` are Dockerfile instructions
    (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
    WORKDIR); ``reference`` (``REPOSITORY[:TAG]``) names the image. Everything given is checked
    before the tarball is read.
    """
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise UsageError(f"cannot import {source}: lamina imports files and standard input only",
                         hint="download it first, or pipe it: curl -L URL | lamina import -")
    ref = _reference(reference)
    target = Platform.parse(platform) if isinstance(platform, str) else \
        platform or host_platform()
    now = format_unix_time(time.time_ns())
    comment = message or DEFAULT_MESSAGE
    base = apply_changes(ImageConfig(
        architecture=target.architecture, os=target.os, variant=target.variant or None,
        created=now, config=ContainerConfig(), extra=MappingProxyType({"comment": comment})),
        changes)
    store = store or Store.open()
    with ExitStack() as stack:
        stream = source if not isinstance(source, (str, os.PathLike)) else \
            stack.enter_context(open_input(source))
        with store.roots.lease() as lease:
            try:
                layer = put_layer(store, stream, lease=lease)
            except LayerError as err:
                name = "standard input" if not isinstance(source, (str, os.PathLike)) \
                    else os.fspath(source)
                raise LayerError(f"{name}: {err.message}", hint=err.hint) from None
            config = append_layer(base, layer.diff_id, History(created=now, comment=comment))
            desc = commit_image(store, config, [layer.descriptor], tags=[ref] if ref else [],
                                lease=lease)
    image_id = store.index.image_id(desc)
    assert image_id is not None  # just written
    return ImportedImage(image_id, desc.digest, ref.familiar() if ref else None)


def _reference(text: str | None) -> ImageReference | None:
    if not text:
        return None
    ref = parse_normalized(text)
    if ref.digest is not None:
        raise UsageError(f"cannot import to {text}: a digest reference names content, not a tag",
                         hint="give REPOSITORY[:TAG]")
    return ref
