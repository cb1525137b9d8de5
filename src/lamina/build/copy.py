"""COPY and ADD: Docker's rules for putting files into the image being built.

The files are written into a root directory: the overlay of the parent image (so the kernel
copies parent directories up with their attributes and the upper dir holds just the change),
or an empty directory for ``--link``. The rules (the Dockerfile reference, as BuildKit does):

- a relative destination is taken from the WORKDIR; a destination ending in ``/`` (or ``.``),
  or an existing directory, receives the sources by their names; otherwise it is the new
  file's path. Several sources need a directory destination ending in ``/``.
- a directory source copies its *contents*, not the directory itself;
- a wildcard source copies each match; a symlink named as a source is followed;
- files from the build context get owner 0:0, files from a stage or image keep theirs;
  ``--chown`` (names looked up in the image being built) and ``--chmod`` override;
  modification times are kept; missing destination directories are created 0755;
- ``--parents`` keeps each source's path (from a ``/./`` pivot if there is one);
- ``--exclude`` patterns (.dockerignore syntax) leave paths out;
- ADD extracts a local tar archive (plain, gzip, bzip2, xz) into the destination directory,
  and gives a downloaded file mode 0600.

Given a ``DeferredFiles``, the regular files of the sources are not written into the tree:
they are recorded, for the layer writer to read from the sources straight into the layer tar
(``write_layer(files_from=...)``), so that each source byte is read once. Directories,
symlinks and the rest are still made in the tree, which keeps the overlay's rules (copy-up of
parents, a deletion replaced) the same either way.
"""
from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..dockerfile.ignore import PatternMatcher
from ..errors import LaminaError
from ..layer.diff import SourcedFile
from .context import Entry

# Magic numbers of the archives ADD extracts (what Docker's DetectCompression knows).
_ARCHIVE_MAGIC = (b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class CopyError(LaminaError):
    pass


@dataclass(frozen=True)
class InlineSource:
    """A file made by the instruction itself: a heredoc body, or a download (in ``path``)."""

    name: str
    path: Path
    mode: int
    mtime: float | None = None


class DeferredFiles:
    """Regular files a copy records instead of writing them into the tree at ``root``, by
    directory (relative to ``root``) and name: the ``files_from`` of ``write_layer``."""

    def __init__(self, root: Path) -> None:
        self._root = str(root)
        self.by_dir: dict[str, dict[str, SourcedFile]] = {}
        self._touched: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.by_dir)

    def _split(self, target: str | Path) -> tuple[str, str]:
        path = str(target)
        if not path.startswith(self._root + "/"):   # targets are made below the root
            raise CopyError(f"cannot copy to {path}: outside the image's root {self._root}")
        parent, _, name = path[len(self._root) + 1:].rpartition("/")
        return parent, name

    def add(self, target: str | Path, source: str | Path, st: os.stat_result, mode: int,
            owner: tuple[int, int]) -> None:
        parent, name = self._split(target)
        if parent not in self._touched:
            # What writing the file would do to its directory: copied up into the upper dir
            # (so the layer has it), its mtime now.
            os.utime(os.path.dirname(target))
            self._touched.add(parent)
        self.by_dir.setdefault(parent, {})[name] = SourcedFile(
            str(source), mode, owner[0], owner[1], st.st_mtime_ns, st.st_size)

    def discard(self, target: str | Path) -> None:
        """Something else is made at ``target``: the file recorded there is replaced."""
        if self.by_dir:
            parent, name = self._split(target)
            self.by_dir.get(parent, {}).pop(name, None)

    def has(self, target: Path) -> bool:
        if not self.by_dir:
            return False
        parent, name = self._split(target)
        return name in self.by_dir.get(parent, ())


@dataclass(frozen=True)
class CopyOptions:
    """How COPY and ADD write their files."""

    owner: tuple[int, int] | None = None    # --chown; None: 0:0, or the source's (keep_owner)
    keep_owner: bool = False                # sources from a stage or image keep their owners
    chmod: Callable[[int, bool], int] | None = None   # (mode, is_dir) -> mode
    exclude: PatternMatcher | None = None
    unpack: bool = False                    # ADD: extract local archives
    follow_dest_symlinks: bool = True       # False for --link: nothing below to follow
    deferred: DeferredFiles | None = None   # record regular files instead of writing them


def copy_into(root: Path, dest: str, entries: Sequence[Entry],
              inline: Sequence[InlineSource], opts: CopyOptions, *, dest_is_dir: bool) -> None:
    """Copy ``entries`` and ``inline`` files to ``dest`` (absolute) in the tree at ``root``."""
    owner = opts.owner or (0, 0)
    dest_dir = dest.rstrip("/") or "/"
    for entry in entries:
        src = entry.tree.path(entry.rel)
        st = os.lstat(src)
        base = posixpath.join(dest_dir, entry.keep) if entry.keep else dest_dir
        if stat.S_ISDIR(st.st_mode):
            target_dir = _make_dirs(root, base, owner, opts)
            _copy_tree(entry, target_dir, opts)
        elif opts.unpack and _is_archive(src):
            _extract(src, _make_dirs(root, base, owner, opts), opts)
        else:
            into_dir = dest_is_dir or bool(entry.keep) or _is_dir(root, dest_dir, opts)
            if entry.keep:
                base = posixpath.dirname(base)
            name = entry.name or posixpath.basename(entry.rel)
            target = (_make_dirs(root, base, owner, opts) / name
                      if into_dir else _parent_made(root, dest_dir, owner, opts))
            _copy_entry(src, st, target, opts, _owner_of(st, opts))
    for item in inline:
        into_dir = dest_is_dir or _is_dir(root, dest_dir, opts)
        target = (_make_dirs(root, dest_dir, owner, opts) / item.name if into_dir
                  else _parent_made(root, dest_dir, owner, opts))
        _replace_with(target, False, opts)
        shutil.copyfile(item.path, target)
        mode = item.mode if opts.chmod is None else opts.chmod(item.mode, False)
        os.chown(target, *owner)
        os.chmod(target, mode)
        if item.mtime is not None:
            os.utime(target, (item.mtime, item.mtime))


def _copy_tree(entry: Entry, target_dir: Path, opts: CopyOptions) -> None:
    """The contents of directory ``entry`` into ``target_dir`` (which exists)."""
    prefix = entry.rel + "/" if entry.rel else ""
    # Plain strings, not Paths: this loop runs once per file of a context.
    source_root, target_root = str(entry.tree.path("")), str(target_dir)
    dir_times: list[tuple[str, os.stat_result]] = []
    made: set[str] = set()   # directories this walk created: nothing else is in them
    for rel in entry.tree.walk(entry.rel)[1:]:
        inner = rel[len(prefix):]
        if opts.exclude is not None and opts.exclude.matches_or_parent_matches(inner):
            continue
        src = os.path.join(source_root, rel)
        st = os.lstat(src)
        target = os.path.join(target_root, inner)
        if _copy_entry(src, st, target, opts, _owner_of(st, opts),
                       new_parent=inner.rpartition("/")[0] in made):
            made.add(inner)
        if stat.S_ISDIR(st.st_mode):
            dir_times.append((target, st))
    # Directory times last: writing into a directory changes its mtime.
    for target, st in reversed(dir_times):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_entry(src: str | Path, st: os.stat_result, target: str | Path, opts: CopyOptions,
                owner: tuple[int, int], new_parent: bool = False) -> bool:
    """Copy one entry; True when it is a directory it created. ``new_parent``: the target's
    directory was created by this copy and holds nothing at the target's name."""
    mode = stat.S_IMODE(st.st_mode)
    is_dir = stat.S_ISDIR(st.st_mode)
    if opts.chmod is not None and not stat.S_ISLNK(st.st_mode):
        mode = opts.chmod(mode, is_dir)
    created = False
    if is_dir:
        if new_parent or not (os.path.isdir(target) and not os.path.islink(target)):
            if not new_parent:
                _replace_with(target, True, opts)
            os.mkdir(target, 0o700)
            created = True
    else:
        if not new_parent:
            _replace_with(target, False, opts)
        if stat.S_ISREG(st.st_mode):
            if opts.deferred is not None:
                opts.deferred.add(target, src, st, mode, owner)
                return False
            shutil.copyfile(src, target, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(target)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(target, st.st_mode, st.st_rdev)
        else:
            return False   # a socket: nothing to copy, as Docker
    os.chown(target, *owner, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, mode)   # after chown, which clears setuid bits
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return created


def _replace_with(target: str | Path, is_dir: bool, opts: CopyOptions) -> None:
    """Clear the way for a new entry at ``target``: a file or symlink there goes; a directory
    stays for a directory and is an error for a file."""
    if opts.deferred is not None:
        opts.deferred.discard(target)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not is_dir:
            raise CopyError(f"cannot replace the directory {os.path.basename(target)!r} with "
                            "a file",
                            hint="copy to another destination, or remove the directory first")
        return
    os.unlink(target)


def _owner_of(st: os.stat_result, opts: CopyOptions) -> tuple[int, int]:
    if opts.owner is not None:
        return opts.owner
    return (st.st_uid, st.st_gid) if opts.keep_owner else (0, 0)


def _host_path(root: Path, path: str, opts: CopyOptions) -> Path:
    if opts.follow_dest_symlinks:
        from ..runtime.rootfs import resolve_in_root
        return resolve_in_root(root, path)
    return root / path.lstrip("/")


def _is_dir(root: Path, path: str, opts: CopyOptions) -> bool:
    return _host_path(root, path, opts).is_dir()


def _make_dirs(root: Path, path: str, owner: tuple[int, int], opts: CopyOptions) -> Path:
    """Directory ``path`` in the tree, created (0755, ``owner``) with its parents if missing."""
    host = _host_path(root, path, opts)
    missing = []
    probe = host
    while not probe.exists() and probe != root:
        if opts.deferred is not None and opts.deferred.has(probe):
            break   # a file this copy records: in the way, as if written
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise CopyError(f"cannot copy to {path}: {'/' + str(probe.relative_to(root))} "
                        "is not a directory")
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.chown(directory, *owner)
        os.chmod(directory, 0o755)
    return host


def _parent_made(root: Path, path: str, owner: tuple[int, int], opts: CopyOptions) -> Path:
    """The host path of file ``path``, its parent directories created."""
    parent = _make_dirs(root, posixpath.dirname(path) or "/", owner, opts)
    return parent / posixpath.basename(path)


def _is_archive(path: Path) -> bool:
    import tarfile

    with open(path, "rb") as f:
        head = f.read(512)
    if not any(head.startswith(m) for m in _ARCHIVE_MAGIC) and head[257:262] != b"ustar":
        return False
    try:   # a compressed file that is not a tar is copied as it is
        with _open_archive(path) as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _open_archive(path: Path):
    import tarfile

    with open(path, "rb") as f:
        zstd = f.read(4) == _ARCHIVE_MAGIC[3]
    if zstd:
        import zstandard
        stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return tarfile.open(fileobj=stream, mode="r|")
    return tarfile.open(path, mode="r:*")


def _extract(archive: Path, target_dir: Path, opts: CopyOptions) -> None:
    """Extract a tar into ``target_dir``: owners and modes as the archive says (numeric ids),
    nothing outside the directory (tarfile's ``tar`` filter, with the setuid bits kept)."""
    import tarfile

    def keep_modes(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        checked = tarfile.tar_filter(member, dest)
        if opts.exclude is not None and opts.exclude.matches_or_parent_matches(
                checked.name.strip("/")):
            return None   # type: ignore[return-value]  # tarfile skips a None member
        return checked.replace(mode=member.mode, deep=False)

    try:
        with _open_archive(archive) as tar:
            tar.extractall(target_dir, numeric_owner=True, filter=keep_modes)
    except (tarfile.TarError, OSError) as err:
        raise CopyError(f"cannot extract {archive.name}: {err}") from None


# ---------------------------------------------------------------------------- --chown, --chmod


def resolve_owner(chown: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """``--chown=user[:group]`` by name or id, as Docker: a user alone gives the same id as
    the group id (not the user's primary group)."""
    from ..runtime.users import parse_group, parse_passwd

    user, _, grp = chown.partition(":")

    def lookup(name: str, entries: list, what: str, file: str) -> int:
        if name.isdigit():
            return int(name)
        for entry in entries:
            if entry.name == name:
                return entry.uid if what == "user" else entry.gid
        raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find "
                        f"{'uid' if what == 'user' else 'gid'} for {what} {name}: "
                        f"no such {what}", hint=f"add it to {file} in an earlier step, or "
                                                "give a numeric id")

    uid = lookup(user, parse_passwd(passwd), "user", "/etc/passwd")
    gid = lookup(grp, parse_group(group), "group", "/etc/group") if grp else uid
    return uid, gid


_SYMBOLIC = r"([ugoa]*)([-+=])([rwxXst]*|[ugo])"   # compiled on first use: start-up time


def parse_chmod(text: str) -> Callable[[int, bool], int]:
    """``--chmod``: octal (``755``, up to ``7777``) or symbolic (``u+x,go-w``)."""
    if re.fullmatch(r"[0-7]+", text):
        value = int(text, 8)
        if value > 0o7777:
            raise CopyError(f"invalid chmod parameter: '{text}'. it should be octal string "
                            "and between 0 and 07777")
        return lambda mode, is_dir: value
    clauses = []
    for clause in text.split(","):
        m = re.fullmatch(_SYMBOLIC, clause)
        if m is None:
            raise CopyError(f"invalid chmod parameter: '{text}'",
                            hint="use an octal mode like 755, or clauses like u+x,go-w")
        clauses.append(m.groups())

    def apply(mode: int, is_dir: bool) -> int:
        for who, op, perms in clauses:
            mode = _apply_clause(mode, is_dir, who or "a", op, perms)
        return mode
    return apply


def _apply_clause(mode: int, is_dir: bool, who: str, op: str, perms: str) -> int:
    shifts = {"u": 6, "g": 3, "o": 0}
    targets = "ugo" if "a" in who else who
    if perms in ("u", "g", "o"):          # copy another class's bits: g=u
        bits = (mode >> shifts[perms]) & 7
        add = sum(bits << shifts[t] for t in targets)
    else:
        rwx = (4 if "r" in perms else 0) | (2 if "w" in perms else 0) | (1 if "x" in perms else 0)
        if "X" in perms and (is_dir or mode & 0o111):
            rwx |= 1
        add = sum(rwx << shifts[t] for t in targets)
        if "s" in perms:
            add |= (0o4000 if "u" in targets else 0) | (0o2000 if "g" in targets else 0)
        if "t" in perms:
            add |= 0o1000
    if op == "+":
        return mode | add
    if op == "-":
        return mode & ~add
    cleared = mode & ~sum(7 << shifts[t] for t in targets)
    return cleared | add
