"""``bootstrap``: base images made on this machine, without Docker Hub.

    from lamina import api
    api.bootstrap_busybox()                       # busybox:latest, well under a second
    api.bootstrap_debian("bookworm", progress=print)   # debian:bookworm{,-slim}, ~20 s

Each result is an ordinary one-layer image, configured like Docker's official image of that
name (its ``Cmd`` and ``PATH``), with a history of two steps: the root file system, then the
``CMD``. Its creation time, which is also the newest file time in its layer, is
``$SOURCE_DATE_EPOCH`` when set; unset, busybox takes its binary's build time (so two
bootstraps from the same package give the same image ID), Debian the time of the run (its
input is the mirror of the day; with the variable set, mmdebstrap's tar is reproducible).
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bootstrap import STANDARD_PATH, BootstrapError, busybox, debian, source_date_epoch
from ..bootstrap.tarball import TarWriter
from ..errors import UsageError
from ..image import mediatypes as mt
from ..image.config import ContainerConfig, History, ImageConfig, format_unix_time
from ..image.descriptor import Descriptor
from ..image.mutate import append_layer
from ..image.platform import host_platform
from ..image.reference import ImageReference, parse_normalized
from ..layer.compress import LayerBlobWriter
from ..store import Store
from ..store.commit import commit_image

__all__ = ["BootstrapError", "BootstrappedImage", "bootstrap_busybox", "bootstrap_debian"]

COMMENT = "lamina bootstrap"


@dataclass(frozen=True)
class BootstrappedImage:
    """The image ``lamina bootstrap`` made and stored, with no registry involved."""

    image_id: str           # the config digest
    digest: str             # the manifest digest
    tags: tuple[str, ...]   # in Docker's short form: debian:bookworm
    size: int               # of the layer uncompressed
    blob_size: int          # of the layer as stored (gzip)
    source: str             # what it was made from, as its history says


def bootstrap_busybox(*, tags: Sequence[str] = (), busybox_path: str | Path = busybox.BUSYBOX,
                      store: Store | None = None) -> BootstrappedImage:
    """Make ``busybox:latest`` (or ``tags``) from the static busybox at ``busybox_path``."""
    refs = _references(tags or ["busybox:latest"])
    found = busybox.find_busybox(Path(busybox_path))
    epoch = source_date_epoch(found.built)
    return _commit(store or Store.open(),
                   lambda out: busybox.write_rootfs(found, TarWriter(out, epoch)), refs,
                   f"BUSYBOX {found.version}, {len(found.applets)} applets", busybox.CMD, epoch)


def bootstrap_debian(suite: str = debian.DEFAULT_SUITE, *, variant: str = debian.SLIM_VARIANT,
                     include: Sequence[str] = (), mirrors: Sequence[str] = (),
                     tags: Sequence[str] = (), store: Store | None = None,
                     progress: Callable[[str], None] | None = None) -> BootstrappedImage:
    """Make ``debian:SUITE`` (and ``debian:SUITE-slim`` for minbase), or ``tags``, with
    mmdebstrap from Debian's mirror (about 30-40 MB downloaded for minbase).

    ``include`` adds packages; ``mirrors`` replaces the apt sources (URLs or ``deb ...``
    lines). ``progress`` receives a few lines on the way. Raises BootstrapError with
    mmdebstrap's message when it fails.
    """
    spec = debian.DebianSpec(suite, variant, tuple(include), tuple(mirrors))
    default_tags = [f"debian:{suite}"] + ([f"debian:{suite}-slim"] if spec.slim else [])
    refs = _references(tags or default_tags)
    say = progress or (lambda line: None)
    epoch = source_date_epoch(int(time.time()))
    store = store or Store.open()
    with tempfile.TemporaryDirectory(prefix="lamina-bootstrap-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        say(f"mmdebstrap --variant={variant} {suite}")
        debian.run_mmdebstrap(spec, tarball, epoch, say)
        say("storing the root file system as a layer")
        return _commit(store, lambda out: debian.write_layer(tarball, out, epoch), refs,
                       spec.summary(), debian.CMD, epoch)


def _references(tags: Sequence[str]) -> list[ImageReference]:
    """Check every name before any work is done."""
    refs = [parse_normalized(tag) for tag in tags]
    for tag, ref in zip(tags, refs):
        if ref.digest is not None:
            raise UsageError(f"cannot tag {tag}: a digest reference names content, not a tag",
                             hint="give REPOSITORY[:TAG]")
    return refs


def _commit(store: Store, write_tar: Callable[[LayerBlobWriter], None], refs: list[ImageReference],
            source: str, cmd: tuple[str, ...], epoch: int) -> BootstrappedImage:
    """Store the tar ``write_tar`` writes as the one layer of a new image, named ``refs``."""
    created = format_unix_time(epoch * 1_000_000_000)
    platform = host_platform()
    config = ImageConfig(architecture=platform.architecture, os=platform.os,
                         variant=platform.variant or None, created=created,
                         config=ContainerConfig(env=(STANDARD_PATH,), cmd=cmd))
    with store.roots.lease() as lease:
        with store.content.ingest() as blob:
            with LayerBlobWriter(blob, "gzip") as writer:
                write_tar(writer)
                info = writer.close()
            lease.add(blobs=[blob.digest])
            stored = blob.commit()
        layer = Descriptor(mt.layer_media_type("gzip"), stored.digest, stored.size)
        config = append_layer(config, info.diff_id,
                              History(created=created, created_by=source, comment=COMMENT))
        config = dataclasses.replace(config, history=(*config.history, History(
            created=created, created_by=f"CMD {json.dumps(list(cmd))}", empty_layer=True)))
        desc = commit_image(store, config, [layer], tags=refs, lease=lease)
    image_id = store.index.image_id(desc)
    assert image_id is not None  # just written
    return BootstrappedImage(image_id, desc.digest, tuple(ref.familiar() for ref in refs),
                             info.diff_size, stored.size, source)
