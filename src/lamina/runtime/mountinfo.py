"""The mount table of /proc/self/mountinfo, read without the runtime's imports (builds and
the store's clean-up need it on paths that never start a container)."""
from __future__ import annotations


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def mount_points(mountinfo: str) -> list[str]:
    """Every mount point of /proc/self/mountinfo's text, in its order (a point mounted over
    appears again)."""
    return [_unescape(line.split()[4]) for line in mountinfo.splitlines() if line]


def mount_types(mountinfo: str) -> dict[str, str]:
    """Mount point -> file system type of the topmost mount there, from /proc/self/mountinfo."""
    types: dict[str, str] = {}
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if sep and len(fields) >= 5 and tail:
            types[_unescape(fields[4])] = tail.split()[0]
    return types
