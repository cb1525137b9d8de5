"""COPY in one pass: the files go from the context straight into the layer tar, and the
snapshot a later step stands on is made only then, holding exactly what the layer holds."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files

# Prints, for every path below /ctx, what a RUN sees: type, mode, owner, mtime, size, md5.
LIST = ("RUN cd /ctx && find . | sort | while read p; do "
        "if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then sum=$(md5sum < \"$p\"); else sum=-; fi; "
        "echo \"$p $(stat -c '%F %a %u:%g %Y %s' \"$p\") ${sum%% *}\"; done > /listing\n")


@pytest.fixture(autouse=True, params=["small", "large"])
def copy_size(request, monkeypatch) -> str:
    """Every test twice: as a small COPY (snapshot made at once) and as a large one (made
    when a later step needs it)."""
    from lamina.build import pending

    if request.param == "large":
        monkeypatch.setattr(pending, "SMALL_FILES", 0)
    return request.param


@pytest.fixture
def ctx(tmp_path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "deep" / "er").mkdir(parents=True)
    for i in range(30):
        (root / "src" / f"f{i:02d}.txt").write_text(f"file {i}\n" * (i * 50))
    (root / "src" / "deep" / "er" / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "src" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "src" / "run.sh").chmod(0o4755)
    (root / "src" / "empty").write_bytes(b"")
    (root / "src" / "link").symlink_to("f01.txt")
    for path in (root / "src").rglob("*"):
        os.utime(path, (1_000_000, 1_600_000_000), follow_symlinks=False)
    return root


def _listing(store, name: str) -> str:
    from lamina.store.unpack import unpack_image

    lowers = unpack_image(store, store.image(name))
    for lower in lowers:
        if (lower / "listing").exists():
            return (lower / "listing").read_text()
    raise AssertionError("no /listing in the image")


def _expected(ctx: Path) -> list[tuple]:
    """What the listing of /ctx must say, from the context itself (owner root, as COPY)."""
    import hashlib
    import stat

    lines = []
    for path in sorted([ctx / "src", *(ctx / "src").rglob("*")]):
        rel = "." + str(path)[len(str(ctx / "src")):]
        st = os.lstat(path)
        kind = ("directory" if stat.S_ISDIR(st.st_mode) else "symbolic link"
                if stat.S_ISLNK(st.st_mode) else "regular file" if st.st_size else
                "regular empty file")
        digest = (hashlib.md5(path.read_bytes()).hexdigest()
                  if stat.S_ISREG(st.st_mode) else "-")
        size = st.st_size if not stat.S_ISDIR(st.st_mode) else None
        lines.append((rel, kind, f"{stat.S_IMODE(st.st_mode):o}", int(st.st_mtime), size,
                      digest))
    return lines


def test_a_run_after_copy_sees_exactly_what_the_layer_holds(build, ctx, store, image_files):
    build(ctx, "FROM busybox\nCOPY src /ctx/\n" + LIST, tags=["t"])
    seen = {}
    for line in _listing(store, "t").splitlines():
        path, rest = line.split(" ", 1)
        seen[path] = rest
    for rel, kind, mode, mtime, size, digest in _expected(ctx):
        if rel == ".":
            continue   # /ctx itself was made by this COPY: its time is the build's
        fields = seen[rel]
        assert fields.startswith(f"{kind} {mode} 0:0 {mtime} "), (rel, fields)
        if kind != "directory":
            assert fields.endswith(f" {size} {digest}"), (rel, fields)
    # and the layer (unpacked from its tar) holds the same files
    files = image_files("t")
    assert files["ctx/deep/er/big.bin"][4] == (ctx / "src/deep/er/big.bin").read_bytes()
    assert files["ctx/run.sh"][1:4] == (0o4755, 0, 0)
    assert files["ctx/link"] == ("l", 0o777, 0, 0, b"f01.txt")


def test_copy_over_files_of_the_base_replaces_them_without_whiteouts(build, ctx, store,
                                                                      layer_members):
    (ctx / "removeme").write_text("from the context\n")
    build(ctx, "FROM busybox\nCOPY removeme /etc/removeme\nRUN cat /etc/removeme > /seen\n",
          tags=["t"])
    members = layer_members("t", -2)   # the COPY's layer
    assert "etc/removeme" in members and not [m for m in members if ".wh." in m]
    from lamina.store.unpack import unpack_image
    lowers = unpack_image(store, store.image("t"))
    assert (lowers[0] / "seen").read_text() == "from the context\n"


def test_the_last_source_of_a_name_wins(build, tmp_path, image_files, store):
    ctx = tmp_path / "ctx"
    for part, text in (("a", "first"), ("b", "second")):
        (ctx / part / "same").mkdir(parents=True)
        (ctx / part / "x").write_text(text)
        (ctx / part / "same" / "y").write_text(text)
    (ctx / "c" / "x").mkdir(parents=True)                    # a directory over the file x
    (ctx / "c" / "x" / "inner").write_text("inner")
    build(ctx, "FROM busybox\nCOPY a b /one/\nCOPY a c /two/\nRUN ls /two/x > /two.txt\n",
          tags=["t"])
    files = image_files("t")
    assert files["one/x"][4] == b"second" and files["one/same/y"][4] == b"second"
    assert files["two/x"][0] == "d" and files["two/x/inner"][4] == b"inner"
    assert files["two.txt"][4] == b"inner\n"
    image = store.image("t")
    with image.open_blob(image.layers()[-2]) as blob, \
            tarfile.open(fileobj=blob, mode="r|") as tar:    # COPY a c /two/
        names = [m.name for m in tar]
    assert len(names) == len(set(names)) and "two/x" in names and "two/x/inner" in names


def test_copy_from_a_stage_reads_the_stage_files_in_one_pass(build, ctx, image_files):
    build(ctx, "FROM busybox AS builder\nCOPY src /out/\nRUN echo made > /out/made\n"
               "FROM busybox\nCOPY --from=builder /out /app/\nRUN cat /app/made /app/f02.txt"
               " > /app.txt\n", tags=["t"])
    files = image_files("t")
    assert files["app/made"][4] == b"made\n"
    assert files["app/deep/er/big.bin"][4] == (ctx / "src/deep/er/big.bin").read_bytes()
    assert files["app.txt"][4] == b"made\n" + (ctx / "src/f02.txt").read_bytes()


def test_a_source_changed_after_the_copy_is_unpacked_from_the_layer(build, ctx, store):
    """The snapshot is made from the sources only while they are the files the layer read;
    else from the layer tar itself."""
    from lamina.build.pending import PendingSnapshot, materialize
    from lamina.layer.diff import SourcedFile

    upper = ctx.parent / "upper"
    (upper / "d").mkdir(parents=True)
    source = ctx / "src" / "f03.txt"
    st = os.stat(source)
    files = {"d": {"f": SourcedFile(str(source), 0o644, 0, 0, st.st_mtime_ns, st.st_size)}}
    chain = "sha256:" + "ab" * 32
    os.utime(source, (1, 1_700_000_000))                   # touched since
    assert not materialize(store.snapshots, chain, PendingSnapshot(upper, files, None, chain, 1))
    assert not store.snapshots.exists(chain)
    assert not store.snapshots.inflight.exists()    # no staging or trash left behind
