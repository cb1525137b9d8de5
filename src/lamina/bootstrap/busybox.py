"""A busybox root file system, the shape of Docker's official busybox image.

``bin/busybox`` (the host's static binary, copied as it is), one symlink beside it per applet,
the account files of buildroot's skeleton (which the official image uses), and the empty
directories the official image has. Everything is written straight into the layer tar: nothing
is created on the host's file system.
"""
from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import BootstrapError
from .tarball import TarWriter

BUSYBOX = Path("/bin/busybox")
INSTALL_HINT = "install the static busybox: apt-get install busybox-static"
CMD = ("sh",)

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
# Locked passwords ("*"): no account can log in with an empty one (CVE-2019-5021).
SHADOW = "".join(f"{line.split(':')[0]}:*:::::::\n" for line in PASSWD.splitlines())

# The directories of the official image, by mode: mount points, /tmp, and the homes above.
DIRECTORIES = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755,
               "root": 0o700, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755,
               "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}
FILES = {"etc/group": (GROUP, 0o644), "etc/passwd": (PASSWD, 0o644),
         "etc/shadow": (SHADOW, 0o640)}

_PT_INTERP = 3  # the ELF program header that names a dynamic loader


@dataclass(frozen=True)
class Busybox:
    """The host's static busybox binary, and what it tells of itself, to build an image from."""

    path: Path
    version: str                # "v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)"
    applets: tuple[str, ...]    # sorted, without "busybox" itself
    built: int                  # the binary's mtime: its package's build time, kept by dpkg


def find_busybox(path: Path = BUSYBOX) -> Busybox:
    """The busybox at ``path``, checked to be a static binary, with its version and applets.

    A dynamically linked busybox (Debian's ``busybox`` package) would not run in an image
    that has no C library, so it is refused.
    """
    try:
        with open(path, "rb") as f:
            static = _is_static_elf(f.read(1 << 16))
            built = int(os.fstat(f.fileno()).st_mtime)
    except FileNotFoundError:
        raise BootstrapError(f"{path} not found", hint=INSTALL_HINT) from None
    except OSError as err:
        raise BootstrapError(f"cannot read {path}: {err.strerror}", hint=INSTALL_HINT) from None
    if not static:
        raise BootstrapError(f"{path} is not a statically linked busybox", hint=INSTALL_HINT)
    banner = _output(path, "--help").partition("\n")[0]   # BusyBox VERSION multi-call binary.
    applets = sorted(set(_output(path, "--list").split()) - {"busybox"})
    if not banner.startswith("BusyBox ") or not applets:
        raise BootstrapError(f"{path} does not answer as busybox does", hint=INSTALL_HINT)
    version = banner.removeprefix("BusyBox ").removesuffix(" multi-call binary.")
    return Busybox(Path(path), version, tuple(applets), built)


def write_rootfs(busybox: Busybox, out: TarWriter) -> None:
    """The whole root file system as tar entries, each directory before its contents."""
    names = [*DIRECTORIES, *FILES, "bin/busybox", *(f"bin/{a}" for a in busybox.applets)]
    for name in sorted(names, key=lambda n: n.split("/")):
        if name in DIRECTORIES:
            out.directory(name, DIRECTORIES[name])
        elif name in FILES:
            text, mode = FILES[name]
            out.data(name, text.encode(), mode)
        elif name == "bin/busybox":
            with open(busybox.path, "rb") as f:
                out.file(name, f, os.fstat(f.fileno()).st_size, 0o755)
        else:
            out.symlink(name, "busybox")
    out.finish()


def _is_static_elf(head: bytes) -> bool:
    """True for an ELF executable without a program interpreter (static, or static-pie)."""
    if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return False
    endian = "<" if head[5] == 1 else ">"
    if head[4] == 2:   # 64-bit: e_phoff at 0x20, e_phentsize and e_phnum at 0x36
        (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
    else:              # 32-bit: e_phoff at 0x1c, e_phentsize and e_phnum at 0x2a
        (phoff,) = struct.unpack_from(endian + "I", head, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x2A)
    if phnum == 0 or phoff + phentsize * phnum > len(head):
        return False
    return all(struct.unpack_from(endian + "I", head, phoff + i * phentsize)[0] != _PT_INTERP
               for i in range(phnum))


def _output(path: Path, arg: str) -> str:
    try:
        return subprocess.run([str(path), arg], capture_output=True, text=True, check=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise BootstrapError(f"{path} {arg} failed: {err}", hint=INSTALL_HINT) from None
