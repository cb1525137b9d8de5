"""The build context on disk: which ignore file applies, which paths are sent, their digests.

Follows what BuildKit does when a client sends a local context (tonistiigi/fsutil's
filtered walk): symlinks are listed, never followed; an ignored directory is not walked
unless a ``!`` exception could re-include something below it; an ignored directory is still
sent when something below it is.

``BuildContext`` is what COPY and ADD read: the sources an instruction names (Docker's rules:
paths cleaned inside the context, wildcards, a symlink named as a source is followed inside
the context), the entries below them, and a digest of each entry's content and metadata for
the cache key. File hashes are remembered by (size, mtime, ctime, inode), so a rebuild does
not read an unchanged context again.
"""
from __future__ import annotations

import bisect
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lamina.dockerfile.ignore import Pattern, PatternMatcher, go_clean, read_ignore
from lamina.errors import IgnoreFileError, LaminaError, UsageError
from lamina.image.digest import BULK, bulk_sha256, sha256_hex

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BuildContext", "DirectoryTree", "Entry", "SourceNotFoundError", "clean_source",
           "contains_wildcards", "ignore_file_for", "list_context", "load_ignore",
           "remembered_name"]

# Characters that make an exception pattern more than a plain path prefix (as fsutil has it).
_GLOB_CHARS = frozenset("*[]?^\\")


def ignore_file_for(context_dir: Path, dockerfile: Path | None = None) -> Path | None:
    """The ignore file of a build, or None.

    ``<Dockerfile>.dockerignore`` beside the Dockerfile wins over ``<context>/.dockerignore``.
    ``dockerfile`` is the Dockerfile's path as it will be read; None means
    ``<context>/Dockerfile``. A path that exists but cannot be read is still returned, so
    reading it reports the problem instead of silently using the other file.
    """
    context_dir = Path(context_dir)
    dockerfile = Path(dockerfile) if dockerfile is not None else context_dir / "Dockerfile"
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"),
                      context_dir / ".dockerignore"):
        if os.path.lexists(candidate):
            return candidate
    return None


def load_ignore(path: Path) -> PatternMatcher:
    """Read an ignore file and build its matcher; errors name the file and line."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise IgnoreFileError(f"cannot read the ignore file: {err.strerror or err}",
                              path=str(path),
                              hint="make it a readable file, or remove it") from None
    return PatternMatcher(read_ignore(data, str(path)))


def list_context(context_dir: Path, matcher: PatternMatcher | None) -> list[str]:
    """The relative POSIX paths (files, symlinks, directories) sent as the build context.

    Sorted. Raises IgnoreFileError for a pattern that fails when matching (``[z-a]``).
    """
    root = Path(context_dir)
    if not root.is_dir():
        raise UsageError(f"build context {str(root)!r} is not a directory",
                         hint="give the directory that holds the files to build from")
    sent: list[str] = []
    may_reinclude = _reinclude_test(matcher)

    def walk(abs_dir: str, rel_dir: str, parent_info: tuple[bool, ...], ignored: bool) -> None:
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            if ignored and isinstance(err, PermissionError):
                return  # nothing below an ignored directory is needed unless re-included
            raise LaminaError(f"cannot read {abs_dir!r} in the build context: "
                              f"{err.strerror or err}",
                              hint="fix its permissions, or add it to .dockerignore") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            info: tuple[bool, ...] = ()
            excluded = False
            if matcher is not None:
                excluded, info = matcher.matches_using_parent_results(rel, parent_info)
            if not excluded:
                sent.append(rel)
                if is_dir:
                    walk(entry.path, rel, info, False)
            elif is_dir and may_reinclude(rel):
                before = len(sent)
                walk(entry.path, rel, info, True)
                if len(sent) > before:
                    sent.append(rel)  # sent after all: something below it is

    walk(str(root), "", (), False)
    sent.sort()
    return sent


def _reinclude_test(matcher: PatternMatcher | None):
    """A test: could a ``!`` exception re-include something below this ignored directory?

    Exceptions that are plain paths (a trailing ``/*`` or ``/**`` aside) re-include only
    below a directory they start with. Any other exception could match anywhere, so then
    every ignored directory is walked.
    """
    if matcher is None or not matcher.exclusions:
        return lambda rel: False
    prefixes = []
    for pattern in matcher.patterns:
        if not pattern.exclusion:
            continue
        text = pattern.text.removesuffix("/**").removesuffix("/*")
        if _GLOB_CHARS & set(text):
            return lambda rel: True
        prefixes.append(text + "/")
    return lambda rel: any(p.startswith(rel + "/") for p in prefixes)


class SourceNotFoundError(LaminaError):
    """A COPY/ADD source that is not in the build context (or a stage's files)."""


def contains_wildcards(path: str) -> bool:
    """Whether a source path is a pattern (``*``, ``?``, ``[``; ``\\`` escapes one)."""
    i = 0
    while i < len(path):
        if path[i] in "*?[":
            return True
        i += 2 if path[i] == "\\" else 1
    return False


def clean_source(src: str) -> str:
    """A source path as a path relative to the tree's root; ``""`` is the root itself.

    As in Docker, a source is always inside the tree: ``/a``, ``./a`` and ``../a`` are ``a``.
    """
    return go_clean("/" + src).lstrip("/")


class DirectoryTree:
    """The files of a directory as COPY reads them (a stage's root file system)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def exists(self, rel: str) -> bool:
        return rel == "" or os.path.lexists(self.path(rel))

    def children(self, rel: str) -> list[str]:
        """The names directly below directory ``rel``, sorted."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except (NotADirectoryError, FileNotFoundError):
            return []

    def walk(self, rel: str) -> list[str]:
        """``rel`` and every entry below it, parents before their children (symlinks are
        entries, never followed)."""
        out: list[str] = []
        pending = [rel]   # a stack, not recursion: deep trees must not hit Python's limit
        while pending:
            current = pending.pop()
            out.append(current)
            path = self.path(current)
            if os.path.isdir(path) and not os.path.islink(path):
                prefix = current + "/" if current else ""
                pending.extend(prefix + name for name in reversed(self.children(current)))
        return out

    def resolve(self, src: str) -> list[tuple[str, str]]:
        """The entries a COPY source names, relative to the root: several for a pattern.

        Each is (the path as named, the path with symlinks followed): a symlink named as
        the source is followed (inside the tree) and copied under its own name. A pattern
        that matches nothing gives nothing; a missing plain path raises SourceNotFoundError.
        """
        cleaned = clean_source(src)
        if not contains_wildcards(cleaned):
            if not self.exists(cleaned):
                raise SourceNotFoundError(f'"/{cleaned}": not found',
                                          hint=self._not_found_hint())
            return [(cleaned, self._follow(cleaned))]
        matches = [""]
        for part in cleaned.split("/"):
            pattern = Pattern(part, False, None, None)
            matches = [f"{m}/{name}" if m else name for m in matches
                       for name in self.children(m) if pattern.matches(name)]
        return [(m, self._follow(m)) for m in matches]

    def _follow(self, rel: str) -> str:
        """``rel`` with symlinks resolved, as a path inside the root (never leaving it)."""
        from ..layer.rootpath import SymlinkLoopError, resolve_in_root

        try:
            out = "/".join(resolve_in_root(self.root, rel))
        except SymlinkLoopError:
            raise SourceNotFoundError(f'"/{rel}": too many levels of symbolic links') from None
        if not self.exists(out):
            raise SourceNotFoundError(f'"/{rel}": not found (a symlink to a missing file)')
        return out

    def _not_found_hint(self) -> str | None:
        return None


class BuildContext(DirectoryTree):
    """The build context a COPY/ADD reads: only the paths ``.dockerignore`` lets through."""

    def __init__(self, root: Path, matcher: PatternMatcher | None = None, *,
                 remembered: dict[str, list[Any]] | None = None) -> None:
        super().__init__(root)
        self.matcher = matcher
        self._paths: list[str] | None = None
        self._sent: set[str] | None = None
        # rel -> [size, mtime_ns, ctime_ns, inode, sha256 hex] (see digests)
        self.remembered = remembered if remembered is not None else {}
        self.remembered_changed = False

    @property
    def paths(self) -> list[str]:
        """Every path sent, sorted (walked once, on first use)."""
        if self._paths is None:
            self._paths = list_context(self.root, self.matcher)
            self._sent = set(self._paths)
        return self._paths

    def exists(self, rel: str) -> bool:
        if rel == "":
            return True
        self.paths  # noqa: B018  (lists the context)
        assert self._sent is not None
        return rel in self._sent

    def children(self, rel: str) -> list[str]:
        prefix = rel + "/" if rel else ""
        names = []
        for path in self._below(prefix):
            rest = path[len(prefix):]
            if "/" not in rest:
                names.append(rest)
        return names

    def walk(self, rel: str) -> list[str]:
        if rel == "":
            return ["", *self.paths]
        return [rel, *self._below(rel + "/")]

    def _below(self, prefix: str) -> list[str]:
        paths = self.paths
        if not prefix:
            return list(paths)
        # Sorted strings with a common prefix are contiguous.
        start = bisect.bisect_left(paths, prefix)
        end = start
        while end < len(paths) and paths[end].startswith(prefix):
            end += 1
        return paths[start:end]

    def remembered_in_use(self) -> dict[str, list[Any]]:
        """The remembered hashes of paths still in the context, to keep for the next build
        (entries of deleted files are dropped, so the kept file does not grow without end)."""
        if self._sent is None:
            return self.remembered
        return {rel: v for rel, v in self.remembered.items() if rel in self._sent}

    def _not_found_hint(self) -> str | None:
        return ("check the path: sources are relative to the build context, and "
                ".dockerignore may exclude it")

    def digests(self, rels: Iterable[str]) -> dict[str, str]:
        """A digest of each entry's type, permissions and content (a symlink's target).

        Owners and times are left out, as BuildKit does: COPY gives files new owners, and
        a checkout must not miss the cache for a fresh mtime.
        """
        out: dict[str, str] = {}
        to_hash: list[tuple[str, os.stat_result]] = []
        root = str(self.root)
        for rel in rels:
            path = os.path.join(root, rel)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = f"d{mode:o}"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = f"l{os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                known = self.remembered.get(rel)
                if known is not None and known[:4] == _stat_key(st):
                    out[rel] = f"f{mode:o}:{known[4]}"
                else:
                    to_hash.append((rel, st))
            else:
                out[rel] = f"s{st.st_mode:o}"   # fifos and devices are copied as they are
        for (rel, st), content in zip(to_hash, self._hash_all(to_hash)):
            out[rel] = f"f{stat.S_IMODE(st.st_mode):o}:{content}"
        return out

    def _hash_all(self, files: list[tuple[str, os.stat_result]]) -> list[str]:
        root = str(self.root)
        jobs = [(os.path.join(root, rel), st.st_size) for rel, st in files]
        total = sum(size for _, size in jobs)
        if total < _PARALLEL_BYTES:
            results = [_sha256_file(*job, total > BULK) for job in jobs]
        else:
            from concurrent.futures import ThreadPoolExecutor

            # hashlib and file reads release the GIL: threads hash side by side, each a
            # batch of files (a future per small file would cost more than its hash).
            batches = [jobs[i:i + 256] for i in range(0, len(jobs), 256)]
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                results = [digest for batch in pool.map(
                    lambda batch: [_sha256_file(*job, True) for job in batch], batches)
                    for digest in batch]
        now = time.time_ns()
        for (rel, st), content in zip(files, results):
            # A file changed within the timestamp granularity after it was hashed could keep
            # its (size, mtime, ctime): only hashes of files older than a second are kept.
            if now - max(st.st_mtime_ns, st.st_ctime_ns) > 1_000_000_000:
                self.remembered[rel] = [*_stat_key(st), content]
                self.remembered_changed = True
        return results


# Below this many bytes to hash, threads cost more than they save.
_PARALLEL_BYTES = 16 << 20
_CHUNK = 1 << 20


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _sha256_file(path: str, size: int, bulk: bool) -> str:
    """``bulk``: one of many bytes to hash, by OpenSSL's SHA-256 (see image.digest)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if size < _CHUNK:   # most files: one read of the size lstat gave (and any growth)
            data = os.read(fd, size + 1)
            return bulk_sha256(data).hexdigest() if bulk else sha256_hex(data)
        h = bulk_sha256()
        while data := os.read(fd, _CHUNK):
            h.update(data)
        return h.hexdigest()
    finally:
        os.close(fd)


def remembered_name(context_dir: Path) -> str:
    """The name the file hashes of a context folder are kept under in the build cache."""
    return sha256_hex(os.fsencode(os.path.abspath(context_dir)))[:32]


@dataclass(frozen=True)
class Entry:
    """One source of a COPY: ``rel`` in ``tree`` ("" is its root), kept under the destination
    as ``keep`` with ``--parents`` (else ""); a file is copied as ``name`` (the name the
    source gave it: a symlink's own name, not its target's)."""

    tree: DirectoryTree
    rel: str
    keep: str = ""
    name: str = ""
