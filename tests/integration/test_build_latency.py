"""Small-build latency (issue 5, bench S1/S3) without giving up what a crash must leave.

A build writes its cache records and their GC roots without fsync, commits its layers without
syncing their names, and mounts its overlays ``volatile``: the tests here check what that may
not cost a user. A record that outlived its root (a power loss can do that) and whose layers a
collection then removed is a miss: the step runs again and the image is whole. A rebuild
after one file changed loads none of the modules it has no use for (start-up time).
"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]

DOCKERFILE = """\
FROM busybox
RUN echo building && echo data > /data.txt
COPY app.txt /app/
ENV GREETING=hi
WORKDIR /app
CMD ["sh", "-c", "echo $GREETING from $(cat /app/app.txt)"]
"""


def _context(tmp_path, text: str = "v1\n"):
    return make_context(tmp_path / "ctx", DOCKERFILE, {"app.txt": text})


def test_records_whose_roots_and_layers_are_gone_are_misses(tmp_path, store, build, lamina,
                                                            image_files):
    ctx = _context(tmp_path)
    first = build(ctx, tags=["app"])
    assert first.cached() == [False, False]
    # What a power loss may leave: the records, but not their (unsynced) GC roots.
    for root_file in (store.root / "roots").glob("cache-*.json"):
        root_file.unlink()
    made = [d.digest for d in store.image("app").layers()[1:]]
    lamina("rmi", "app")
    store.gc()
    assert not any(store.content.has(digest) for digest in made)   # the build's layers went
    again = build(ctx, tags=["app"])
    assert again.cached() == [False, False]  # not taken from records naming missing layers
    files = image_files("app")
    assert files["data.txt"][4] == b"data\n"
    assert files["app/app.txt"][4] == b"v1\n"
    assert build(ctx, tags=["app"]).cached() == [True, True]


def test_a_rebuild_after_one_file_changed_loads_only_what_it_uses(tmp_path, root, store,
                                                                  lamina):
    ctx = _context(tmp_path)
    lamina("build", "-q", "--network", "none", "-t", "app", str(ctx))
    (ctx / "app.txt").write_text("v2\n")
    unused = ("tempfile", "random", "difflib", "csv", "secrets", "lamina.store.gc",
              "lamina.build.registrycache", "lamina.registry")
    code = ("import sys\n"
            "from lamina.cli.main import _main\n"
            f"code = _main(['build', '-q', '--network', 'none', '-t', 'app', {str(ctx)!r}])\n"
            f"print(code, sorted(m for m in {unused!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "LAMINA_ROOT": str(root)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "0 []"
    run = lamina("run", "--rm", "--network", "none", "app")
    assert run.stdout == "hi from v2\n"


def test_explaining_a_miss_reads_a_bounded_number_of_records(tmp_path, store, build):
    """Each edit adds a record on the RUN's key; the explanation still names the file, and
    the records it compared with are not marked as used (prune goes by last use)."""
    from lamina.store.cache import CHILDREN_READ

    ctx = _context(tmp_path)
    for i in range(CHILDREN_READ + 3):
        (ctx / "app.txt").write_text(f"v{i}\n")
        build(ctx, tags=["app"])
    records = store.root / "buildcache" / "records"
    for path in records.iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (ctx / "app.txt").write_text("last\n")
    steps = build(ctx, tags=["app"]).result.steps
    copy = next(s for s in steps if s.instruction.startswith("COPY"))
    assert copy.reason == "1 file changed: app.txt"
    old = [p for p in records.iterdir() if p.stat().st_mtime == 1_000_000_000]
    assert len(old) >= CHILDREN_READ + 3   # the COPY records of the earlier edits, untouched
