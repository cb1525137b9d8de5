"""Docker's rules the builder follows, checked without building: destinations, RUN's command
line (heredocs, SHELL), --chown and --chmod, the build context's sources and digests, and the
plain progress display."""
from __future__ import annotations

import io
import os

import pytest

from lamina.build.context import BuildContext, SourceNotFoundError
from lamina.build.copy import CopyError, parse_chmod, resolve_owner
from lamina.build.progress import PlainProgress, TtyProgress, make_progress
from lamina.build.steps import destination, run_argv
from lamina.dockerfile.ignore import PatternMatcher
from lamina.dockerfile.stages import load_dockerfile
from lamina.image.config import ContainerConfig


@pytest.mark.parametrize("dest, workdir, expected", [
    ("/app", "/", "/app"), ("/app/", "/", "/app/"), (".", "/work", "/work/"),
    ("sub/", "/work", "/work/sub/"), ("sub", "/work", "/work/sub"), ("./", "/w", "/w/"),
    ("/a/../b/.", "/", "/b/"), ("", "/w", "/w/"),
])
def test_destination(dest, workdir, expected):
    assert destination(dest, workdir) == expected


def run_of(text: str, shell=None):
    df = load_dockerfile("FROM scratch\n" + text)
    return run_argv(df.stages[0].instructions[0], ContainerConfig(shell=shell))


def test_run_command_lines():
    assert run_of("RUN echo hi") == (("/bin/sh", "-c", "echo hi"), None)
    assert run_of('RUN ["echo", "hi"]') == (("echo", "hi"), None)
    assert run_of("RUN echo hi", shell=("bash", "-xc")) == (("bash", "-xc", "echo hi"), None)
    assert run_of("RUN <<EOF\necho a\necho b\nEOF\n") == (
        ("/bin/sh", "-c", "echo a\necho b\n"), None)
    assert run_of("RUN <<-EOF\n\techo a\n\tEOF\n") == (("/bin/sh", "-c", "echo a\n"), None)
    assert run_of("RUN <<EOF\n#!/bin/env python3\nprint(1)\nEOF\n") == (
        ("/dev/pipes/EOF",), ("EOF", "#!/bin/env python3\nprint(1)\n"))
    assert run_of("RUN cat <<A && cat <<B\none\nA\ntwo\nB\n") == (
        ("/bin/sh", "-c", "cat <<A && cat <<B\none\nA\ntwo\nB"), None)


PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\n"


def test_chown_by_name_or_id():
    assert resolve_owner("app", PASSWD, GROUP) == (1000, 1000)   # not the primary group 1001
    assert resolve_owner("app:staff", PASSWD, GROUP) == (1000, 50)
    assert resolve_owner("5:6", None, None) == (5, 6)
    assert resolve_owner("0:staff", PASSWD, GROUP) == (0, 50)
    with pytest.raises(CopyError, match="can't find uid for user ghost"):
        resolve_owner("ghost", PASSWD, GROUP)
    with pytest.raises(CopyError, match="can't find gid for group nope"):
        resolve_owner("app:nope", PASSWD, GROUP)


@pytest.mark.parametrize("spec, mode, is_dir, expected", [
    ("755", 0o644, False, 0o755), ("0600", 0o755, True, 0o600),
    ("u+x", 0o644, False, 0o744), ("go-w", 0o666, False, 0o644), ("a=r", 0o777, False, 0o444),
    ("a+X", 0o644, True, 0o755), ("a+X", 0o644, False, 0o644), ("a+X", 0o744, False, 0o755),
    ("u+x,g=u", 0o640, False, 0o770), ("u+s", 0o755, False, 0o4755),
])
def test_chmod_octal_and_symbolic(spec, mode, is_dir, expected):
    assert parse_chmod(spec)(mode, is_dir) == expected


def test_chmod_errors():
    for bad in ("8", "17777", "u*x", "rwx"):
        with pytest.raises(CopyError, match="invalid chmod parameter"):
            parse_chmod(bad)


@pytest.fixture
def context(tmp_path):
    for name in ("a.txt", "b.txt", "c.md", "dir/x.txt", "dir/sub/y.txt", "skip/z.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    os.symlink("a.txt", tmp_path / "link")
    return BuildContext(tmp_path, PatternMatcher(["skip", "*.md"]))


def test_context_sources(context):
    assert context.resolve("a.txt") == [("a.txt", "a.txt")]
    assert context.resolve("/../dir/") == [("dir", "dir")]
    assert context.resolve("*.txt") == [("a.txt", "a.txt"), ("b.txt", "b.txt")]
    assert context.resolve("dir/*/*.txt") == [("dir/sub/y.txt", "dir/sub/y.txt")]
    assert context.resolve("*.nothing") == []
    assert context.resolve("link") == [("link", "a.txt")]
    assert context.resolve(".") == [("", "")]
    for ignored in ("c.md", "skip/z.txt", "nope"):
        with pytest.raises(SourceNotFoundError, match="not found"):
            context.resolve(ignored)
    assert context.walk("dir") == ["dir", "dir/sub", "dir/sub/y.txt", "dir/x.txt"]


def test_context_digests_and_remembered_hashes(context, tmp_path):
    digests = context.digests(["a.txt", "dir", "link"])
    assert digests["dir"] == "d755" and digests["link"] == "la.txt"
    assert digests["a.txt"].startswith("f644:")
    # A remembered hash is used while (size, mtime, ctime, inode) are unchanged.
    st = os.stat(tmp_path / "b.txt")
    remembered = {"b.txt": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "cafe"]}
    fresh = BuildContext(tmp_path, None, remembered=remembered)
    assert fresh.digests(["b.txt"]) == {"b.txt": "f644:cafe"}
    (tmp_path / "b.txt").write_text("changed")
    assert fresh.digests(["b.txt"])["b.txt"] != "f644:cafe"
    (tmp_path / "b.txt").chmod(0o600)
    assert fresh.digests(["b.txt"])["b.txt"].startswith("f600:")


def test_plain_progress_reads_like_buildkit():
    out = io.StringIO()
    progress = PlainProgress(out)
    vertex = progress.start("[2/3] RUN echo hi")
    progress.output(vertex, b"hel")
    progress.output(vertex, b"lo\nwor")
    progress.done(vertex)
    cached = progress.start("[3/3] COPY . /app")
    progress.cached(cached)
    failed = progress.start("[1/1] RUN false")
    progress.error(failed, "process \"/bin/sh -c false\" did not complete successfully\nmore")
    lines = out.getvalue().splitlines()
    assert lines[0] == "#1 [2/3] RUN echo hi"
    assert lines[1].startswith("#1 0.") and lines[1].endswith(" hello")
    assert lines[2].endswith(" wor") and lines[3].startswith("#1 DONE ")
    assert lines[5:7] == ["#2 [3/3] COPY . /app", "#2 CACHED"]
    assert lines[9] == '#3 ERROR: process "/bin/sh -c false" did not complete successfully'


def test_tty_progress_is_compact_and_quiet_shows_nothing():
    out = io.StringIO()
    progress = TtyProgress(out)
    vertex = progress.start("[2/2] RUN make")
    progress.output(vertex, b"compiling\n")
    progress.done(vertex)
    text = out.getvalue()
    assert "compiling" in text and text.endswith("s\n") and " => [2/2] RUN make" in text
    assert type(make_progress("quiet", out)).__name__ == "Progress"
    assert isinstance(make_progress("auto", io.StringIO()), PlainProgress)
