"""Resolve `-u user[:group]` the way runc does, in the container's /etc/passwd and /etc/group.

crun takes numeric ids only, so names are looked up here, in the image's files (read through
`resolve_in_root`, so that a symlinked /etc/passwd cannot point outside the root file system).
Numeric ids are accepted even without an entry. Without an explicit group, the user's primary
group comes from passwd and the supplementary groups are those listing the user in /etc/group.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections import namedtuple

from .errors import ContainerError
from .rootfs import resolve_in_root

MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ExecUser:
    """The numeric ids and home a container's process runs with, resolved from ``-u``."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


class _Passwd(namedtuple("_Passwd", "name uid gid home")):
    """An /etc/passwd entry: name, uid and gid (ints), home."""

    __slots__ = ()


class _Group(namedtuple("_Group", "name gid members")):
    """An /etc/group entry: name, gid (an int), members (a tuple of user names)."""

    __slots__ = ()


def _entries(text: str | None):
    """Split lines into ':' fields; blank lines and comments are skipped."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line.split(":")


def parse_passwd(text: str | None) -> list[_Passwd]:
    out = []
    for f in _entries(text):
        f += [""] * (7 - len(f))
        if f[2].isdigit() and f[3].isdigit():
            out.append(_Passwd(f[0], int(f[2]), int(f[3]), f[5]))
    return out


def parse_group(text: str | None) -> list[_Group]:
    out = []
    for f in _entries(text):
        f += [""] * (4 - len(f))
        if f[2].isdigit():
            out.append(_Group(f[0], int(f[2]), tuple(m for m in f[3].split(",") if m)))
    return out


def _number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _check_range(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise ContainerError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def lookup_user(spec: str | None, passwd: str | None, group: str | None) -> ExecUser:
    """The ids for `spec` ("", "name", "uid", "name:group", "uid:gid"...) in the files' text."""
    user_arg, _, group_arg = (spec or "").partition(":")
    group_arg = group_arg.split(":")[0]
    uid_arg, gid_arg = _number(user_arg), _number(group_arg)

    def matches(u: _Passwd) -> bool:
        if not user_arg:
            return u.uid == 0
        return u.uid == uid_arg if uid_arg is not None else u.name == user_arg

    found = next((u for u in parse_passwd(passwd) if matches(u)), None)
    if found:
        uid, gid, home, name = found.uid, found.gid, found.home or "/", found.name
    elif uid_arg is not None:
        uid, gid, home, name = _check_range(uid_arg), 0, "/", None
    elif user_arg:
        raise ContainerError(f"unable to find user {user_arg}: no matching entries in passwd file")
    else:
        uid, gid, home, name = 0, 0, "/", None

    extra: tuple[int, ...] = ()
    groups = parse_group(group)
    if group_arg:
        g = next((g for g in groups if (g.gid == gid_arg if gid_arg is not None
                                        else g.name == group_arg)), None)
        if g:
            gid = g.gid
        elif gid_arg is not None:
            gid = _check_range(gid_arg)
        else:
            raise ContainerError(
                f"unable to find group {group_arg}: no matching entries in group file")
    elif name:
        extra = tuple(g.gid for g in groups if name in g.members)
    return ExecUser(uid, gid, extra, home)


def read_in_root(root: Path, path: str) -> str | None:
    """The text of ``path`` resolved inside ``root`` (undecodable bytes replaced); None when
    there is no such file."""
    try:
        return resolve_in_root(root, path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def resolve_user(root: Path, spec: str | None) -> ExecUser:
    """Look `spec` up in the passwd and group files of the root file system at `root`."""
    return lookup_user(spec, read_in_root(root, "/etc/passwd"),
                       read_in_root(root, "/etc/group"))
