"""A Debian root file system from Debian's packages, made by mmdebstrap.

mmdebstrap (apt and dpkg in a chroot; as root here) writes the root file system as one tar.
This module builds its command line, turns its status lines into a few progress messages, and
hands its tar on with an empty ``/dev`` in front. What Docker's official debian images do is
done here too:

- no host data: mmdebstrap copies the host's ``/etc/resolv.conf`` and ``/etc/hostname`` in
  (for debootstrap's sake); a hook removes both (a container gets its own, mounted).
- no apt lists or caches: mmdebstrap's clean-up drops them, and apt is configured as in
  Docker's images so that a later ``RUN apt-get install`` leaves no package cache either.
- the minimal variant is also the ``-slim`` image: no documentation, manuals or translations,
  through dpkg path filters that stay in the image for packages installed later.
- an empty ``/dev``: a container mounts its own, and device nodes in a layer would need mknod
  wherever the layer is unpacked.
- ``SOURCE_DATE_EPOCH`` is always set, so that mmdebstrap writes a reproducible tar (clamped
  mtimes, no logs or caches that change from run to run).
"""
from __future__ import annotations

import collections
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import BootstrapError
from .tarball import Sink, TarWriter

DEFAULT_SUITE = "bookworm"
VARIANTS = ("minbase", "buildd", "important", "required", "standard")
SLIM_VARIANT = "minbase"
CMD = ("bash",)
MIRROR = "http://deb.debian.org/debian"
# Docker's debian images take security updates from deb.debian.org as well (mmdebstrap's
# default, security.debian.org, is another host).
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"  # from the mmdebstrap package
_WITHOUT_UPDATES = {"sid", "unstable", "experimental"}  # suites with no -updates, -security
_SUITE = re.compile(r"[a-z0-9][a-z0-9.-]*")

# What the -slim images leave out (debuerreotype's "slimify"), keeping the copyright files.
# Later rules win; as dpkg options they stay in /etc/dpkg/dpkg.cfg.d/ for later installs.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/lintian/overrides/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/man/*",
)
_CLEAN = ('"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
          '/var/cache/apt/*.bin || true"')
# apt's settings in Docker's debian images (/etc/apt/apt.conf.d/), by file name.
APT_CONFIG = {
    # No downloaded packages and no package cache files left behind by install or update.
    "docker-clean": (f"DPkg::Post-Invoke {{ {_CLEAN}; }};\n"
                     f"APT::Update::Post-Invoke {{ {_CLEAN}; }};\n"
                     'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',   # package lists kept packed
    "docker-no-languages": 'Acquire::Languages "none";\n',     # no translated descriptions
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
# mmdebstrap's status lines shown as progress, by how they start, with what to show (None: the
# line as it is). The rest (mode, temp dir, each hook's command line) and the output of apt,
# dpkg and the hooks are detail, kept only for an error message.
_PHASES = {
    "running --setup-hook": "running apt-get update...",  # the merged-usr hook's first step
    "running apt-get update": None, "downloading packages": None, "extracting archives": None,
    "installing essential packages": None, "installing remaining packages": None,
    "cleaning package lists": None, "creating tarball": None, "success in": None,
}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DebianSpec:
    """What to bootstrap. ``mirrors``: apt sources, each a URL or a ``deb ...`` line;
    none means Debian's (deb.debian.org), with the suite's updates and security updates."""

    suite: str = DEFAULT_SUITE
    variant: str = SLIM_VARIANT
    include: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _SUITE.fullmatch(self.suite):
            raise UsageError(f"{self.suite!r} is not a Debian suite name",
                             hint="give a code name or a symbolic name, e.g. bookworm, stable")
        if self.variant not in VARIANTS:
            raise UsageError(f"unknown variant {self.variant!r}",
                             hint="use one of " + ", ".join(VARIANTS))
        for mirror in self.mirrors:
            if "://" not in mirror and not mirror.startswith("deb "):
                raise UsageError(f"mirror {mirror!r} is neither a URL nor a 'deb ...' line",
                                 hint=f"e.g. --mirror {MIRROR}")

    @property
    def slim(self) -> bool:
        return self.variant == SLIM_VARIANT

    def sources(self) -> tuple[str, ...]:
        if self.mirrors:
            return self.mirrors
        if self.suite in _WITHOUT_UPDATES:
            return (f"deb {MIRROR} {self.suite} main",)
        return (f"deb {MIRROR} {self.suite} main",
                f"deb {MIRROR} {self.suite}-updates main",
                f"deb {SECURITY_MIRROR} {self.suite}-security main")

    def summary(self) -> str:
        """The step as the image's history shows it."""
        include = f" --include={','.join(self.include)}" if self.include else ""
        return f"MMDEBSTRAP --variant={self.variant}{include} {self.suite}"

    def command(self, target: Path) -> list[str]:
        hooks = ['rm -f "$1/etc/resolv.conf" "$1/etc/hostname"',
                 # apt's binary caches: once docker-clean names none, mmdebstrap's clean-up
                 # (apt-get clean) leaves the 70 MB the installation made behind.
                 'rm -f "$1"/var/cache/apt/*.bin']
        hooks += [f'printf %s {shlex.quote(text)} > "$1/etc/apt/apt.conf.d/{name}"'
                  for name, text in APT_CONFIG.items()]
        return ["mmdebstrap", f"--variant={self.variant}", "--format=tar",
                # Leave out the device nodes mmdebstrap puts in /dev (see write_layer).
                "--skip=output/dev",
                # /usr merged as debootstrap (and so Docker's images) does it, with the
                # usr-is-merged package; else the usrmerge package brings 50 MB of perl.
                f"--hook-dir={MERGED_USR_HOOKS}",
                *(f"--customize-hook={hook}" for hook in hooks),
                *(f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS if self.slim),
                *([f"--include={','.join(self.include)}"] if self.include else []),
                "--", self.suite, str(target), *self.sources()]


def run_mmdebstrap(spec: DebianSpec, target: Path, epoch: int,
                   progress: Callable[[str], None]) -> None:
    """Write the root file system of ``spec`` to the tar file ``target``.

    Raises BootstrapError with mmdebstrap's own error lines when it fails.
    """
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    try:
        proc = subprocess.Popen(spec.command(target), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                text=True, errors="replace")
    except FileNotFoundError:
        raise BootstrapError("mmdebstrap not found",
                             hint="install it: apt-get install mmdebstrap") from None
    errors: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=15)  # for a failure without E:
    with proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                line = line.rstrip()
                tail.append(line)
                kind, _, text = line.partition(": ")
                phase = next((p for p in _PHASES if text.startswith(p)), None)
                if kind == "I" and phase is not None:
                    progress(_PHASES[phase] or text)
                elif kind == "W":
                    progress(f"warning: {text}")
                elif kind == "E":
                    errors.append(text)
        except BaseException:
            proc.terminate()  # mmdebstrap removes its temp directory on SIGTERM
            raise
    if proc.returncode != 0:
        detail = "\n".join(errors or tail)
        raise BootstrapError(
            f"mmdebstrap failed (exit status {proc.returncode}):\n{detail}",
            hint="check that the mirror can be reached (" + ", ".join(spec.sources()) +
                 ") and that lamina runs as root; the suite and packages must exist there")


def write_layer(tarball: Path, out: Sink, epoch: int) -> None:
    """The layer tar: an empty ``/dev``, then mmdebstrap's tar byte for byte.

    With ``--skip=output/dev`` that tar has no ``./dev`` at all, and the directory must be
    there for the container's mount. mmdebstrap puts ``./dev`` first in its own tars too;
    its end-of-archive marker ends this one.
    """
    TarWriter(out, epoch).directory("./dev")
    with open(tarball, "rb") as f:
        while chunk := f.read(_CHUNK):
            out.write(chunk)
