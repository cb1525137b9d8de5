"""COPY and ADD with Docker's rules: what lands where in the built image, with which owner
and mode; .dockerignore, --exclude, --parents, --link, heredocs, archives, URLs."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from lamina.api.build import BuildError

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files


@pytest.fixture
def ctx(tmp_path) -> Path:
    """A context: a.txt, b.txt, c.md, src/ with main.py and lib/util.py, a symlink."""
    root = tmp_path / "ctx"
    (root / "src" / "lib").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / "c.md").write_text("c\n")
    (root / "src" / "main.py").write_text("print('main')\n")
    (root / "src" / "lib" / "util.py").write_text("util\n")
    (root / "src" / "run.sh").write_text("#!/bin/sh\n")
    (root / "src" / "run.sh").chmod(0o755)
    (root / "link.txt").symlink_to("a.txt")
    return root


def files_of(image_files, build, ctx, dockerfile: str, **kwargs) -> dict:
    build(ctx, "FROM busybox\n" + dockerfile, tags=["t"], **kwargs)
    return image_files("t")


def test_wildcards_trailing_slash_and_directory_contents(build, ctx, image_files):
    files = files_of(image_files, build, ctx, "COPY *.txt /texts/\nCOPY src /code\n"
                                        "COPY a.txt /renamed\nCOPY link.txt /followed\n")
    assert files["texts/a.txt"][4] == b"a\n" and files["texts/b.txt"][4] == b"b\n"
    assert "texts/link.txt" in files and "texts/c.md" not in files
    # A directory's contents are copied, not the directory itself.
    assert files["code/main.py"][4] == b"print('main')\n" and "code/src" not in files
    assert files["code/lib/util.py"][4] == b"util\n"
    assert files["code/run.sh"][1] == 0o755
    assert files["renamed"][0] == "f" and files["renamed"][4] == b"a\n"
    # A symlink named as the source is followed; inside a copied tree it stays one.
    assert files["followed"] == ("f", 0o644, 0, 0, b"a\n")


def test_destination_rules(build, ctx, image_files):
    files = files_of(image_files, build, ctx, "WORKDIR /work\nCOPY a.txt .\nCOPY b.txt sub/\n"
                                        "RUN mkdir /existing\nCOPY c.md /existing\n")
    assert "work/a.txt" in files and "work/sub/b.txt" in files
    assert "existing/c.md" in files   # an existing directory receives the file
    with pytest.raises(BuildError, match="must be a directory and end with a /"):
        build(ctx, "FROM busybox\nCOPY a.txt b.txt /dest\n")
    with pytest.raises(BuildError, match='"/nope.txt": not found') as failed:
        build(ctx, "FROM busybox\nCOPY nope.txt /\n")
    assert failed.value.line == 2


def test_owner_and_mode(build, ctx, image_files):
    files = files_of(image_files, build, ctx,
                     "COPY --chown=app:wheel a.txt /owned/\nCOPY --chown=1234 b.txt /\n"
                     "COPY --chmod=600 c.md /\nCOPY --chmod=u+x,go-r a.txt /sym\n"
                     "COPY src /plain\n")
    assert files["owned/a.txt"][2:4] == (1000, 10)
    assert files["owned"][2:4] == (1000, 10)             # created for it, owned alike
    assert files["b.txt"][2:4] == (1234, 1234)           # a uid alone: the gid is the same
    assert files["c.md"][1] == 0o600
    assert files["sym"][1] == 0o700
    assert files["plain/main.py"][2:4] == (0, 0)          # context files belong to root
    with pytest.raises(BuildError, match="no such user"):
        build(ctx, "FROM busybox\nCOPY --chown=ghost a.txt /\n")


def test_chown_names_are_found_in_a_passwd_file_that_is_not_utf8(build, ctx, image_files):
    (ctx / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n"
                                 b"app:x:1000:10:Jos\xe9:/home/app:/bin/sh\n")
    (ctx / "group").write_bytes(b"root:x:0:\nwheel:x:10:\n")
    files = files_of(image_files, build, ctx,
                     "COPY passwd group /etc/\nCOPY --chown=app:wheel a.txt /owned/\n")
    assert files["owned/a.txt"][2:4] == (1000, 10)


def test_dockerignore_decides_what_copy_sees_and_the_cache_key(build, ctx, image_files):
    (ctx / ".dockerignore").write_text("*.md\nsrc/lib\n")
    first = build(ctx, "FROM busybox\nCOPY . /app/\n", tags=["t"])
    files = image_files("t")
    assert "app/a.txt" in files and "app/c.md" not in files and "app/src/lib" not in files
    (ctx / "c.md").write_text("ignored change\n")
    assert build(ctx, "FROM busybox\nCOPY . /app/\n").cached() == [True]
    (ctx / "a.txt").write_text("seen change\n")
    assert build(ctx, "FROM busybox\nCOPY . /app/\n").cached() == [False]
    with pytest.raises(BuildError, match="not found"):
        build(ctx, "FROM busybox\nCOPY c.md /\n")
    assert first.cached() == [False]


def test_exclude_parents_and_link(build, ctx, image_files):
    files = files_of(image_files, build, ctx,
                     "COPY --exclude=*.txt . /ex/\n"
                     "COPY --parents src/lib/util.py a.txt /par/\n"
                     "COPY --parents src/./lib/util.py /piv/\n"
                     "COPY --link src/main.py /linked/\n")
    assert "ex/c.md" in files and "ex/a.txt" not in files and "ex/src/main.py" in files
    assert files["par/src/lib/util.py"][4] == b"util\n" and "par/a.txt" in files
    assert "piv/lib/util.py" in files and "piv/src" not in files
    assert files["linked/main.py"][4] == b"print('main')\n"


def test_heredoc_copy(build, ctx, image_files):
    files = files_of(image_files, build, ctx, "ARG NAME=world\n"
                                        "COPY <<EOF /greeting.txt\nhello $NAME\nEOF\n"
                                        "COPY <<one <<two /many/\nfirst\none\nsecond\ntwo\n")
    assert files["greeting.txt"][4] == b"hello world\n"
    assert files["many/one"][4] == b"first\n" and files["many/two"][4] == b"second\n"


def test_add_extracts_local_archives_but_not_other_files(build, ctx, image_files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/data.txt")
        info.size, info.uid, info.gid = 5, 42, 43
        tar.addfile(info, io.BytesIO(b"data\n"))
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    files = files_of(image_files, build, ctx, "ADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /raw/\n"
                                        "ADD a.txt /added.txt\n")
    assert files["opt/pkg/data.txt"][2:] == (42, 43, b"data\n")
    assert files["raw/pkg.tar.gz"][4] == buf.getvalue()
    assert files["added.txt"][4] == b"a\n"


@pytest.fixture
def http_files(tmp_path):
    """An HTTP server on 127.0.0.1 serving a folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_add_url_with_checksum(build, ctx, http_files, image_files):
    served, url = http_files
    (served / "tool.sh").write_text("echo tool\n")
    digest = "sha256:" + hashlib.sha256(b"echo tool\n").hexdigest()
    files = files_of(image_files, build, ctx, f"ADD --checksum={digest} {url}/tool.sh /opt/\n")
    assert files["opt/tool.sh"][:2] == ("f", 0o600) and files["opt/tool.sh"][4] == b"echo tool\n"
    with pytest.raises(BuildError, match="digest mismatch"):
        build(ctx, f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url}/tool.sh /opt/\n")
    with pytest.raises(BuildError, match="can't be a URL for COPY"):
        build(ctx, f"FROM busybox\nCOPY {url}/tool.sh /opt/\n")


def test_copy_from_an_image_keeps_owners(build, ctx, image_files):
    files = files_of(image_files, build, ctx, "COPY --from=busybox /etc/passwd /copied/\n"
                                        "COPY --from=busybox /tmp /tmpcopy\n")
    assert files["copied/passwd"][4].startswith(b"root:x:0:0")
    assert files["tmpcopy"][0] == "d"
