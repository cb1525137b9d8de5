"""Base images made on this machine, without a registry.

- ``busybox.py``: a busybox root file system from the busybox-static package's binary, written
  straight into a layer tar.
- ``debian.py``: a Debian root file system from Debian's own packages, made by mmdebstrap.
- ``tarball.py``: the deterministic tar entries both write.

Each gives one layer tar and the container defaults of Docker's official image of that name;
``lamina.api.bootstrap`` stores, configures and names the result.
"""
from __future__ import annotations

import os

from ..errors import LaminaError

# The PATH of Docker's official busybox and debian images.
STANDARD_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BootstrapError(LaminaError):
    """A base image that cannot be made: a missing tool, a failed download."""


def source_date_epoch(default: int) -> int:
    """``$SOURCE_DATE_EPOCH`` (reproducible-builds.org): the time written into the image."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise BootstrapError(f"SOURCE_DATE_EPOCH={text!r} is not a time",
                             hint="give whole seconds since 1970, e.g. "
                                  "SOURCE_DATE_EPOCH=$(date +%s), or unset it")
    return int(text)
