"""Independent stages build at the same time; the output interleaves as BuildKit's does."""
from __future__ import annotations

import io
import re
import time

import pytest

from lamina.errors import DockerfileError

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files

PARALLEL = """\
FROM busybox AS one
RUN sleep 1 && echo one > /one && echo from-one
FROM busybox AS two
RUN sleep 1 && echo two > /two && echo from-two
FROM busybox
COPY --from=one /one /out/one
COPY --from=two /two /out/two
"""


def test_independent_stages_run_in_parallel(build, tmp_path, image_files):
    build(tmp_path, "FROM busybox\nRUN true\n")   # the base unpacked: time the RUNs only
    started = time.monotonic()
    built = build(tmp_path, PARALLEL, tags=["par"])
    elapsed = time.monotonic() - started
    runs = [s.seconds for s in built.result.steps if s.instruction.startswith("RUN")]
    assert len(runs) == 2 and min(runs) >= 1
    # One after the other, the two RUN steps alone would take their sum (over 2 s); at once,
    # the whole build takes little more than the longer one (the rest: unmounting and
    # committing, a few tenths of a second on a loaded machine).
    assert elapsed < min(sum(runs) - 0.7, max(runs) + 0.8), \
        f"the build took {elapsed:.2f}s, its RUN steps {runs}\n{built.log}"
    files = image_files("par")
    assert files["out/one"][4] == b"one\n" and files["out/two"][4] == b"two\n"
    log = built.log
    # Each RUN's output is on its own step's lines, with the step's number.
    one = re.search(r"^#(\d+) \[one 2/2\] RUN", log, re.M).group(1)
    two = re.search(r"^#(\d+) \[two 2/2\] RUN", log, re.M).group(1)
    assert one != two
    assert re.search(rf"^#{one} [\d.]+ from-one$", log, re.M), log
    assert re.search(rf"^#{two} [\d.]+ from-two$", log, re.M), log
    assert not re.search(rf"^#{one} [\d.]+ from-two$", log, re.M)
    assert re.search(rf"^#{one} DONE", log, re.M) and re.search(rf"^#{two} DONE", log, re.M)
    # Both started before either finished: interleaved.
    assert log.index(f"#{two} [two") < log.index(f"#{one} DONE")
    assert log.index(f"#{one} [one") < log.index(f"#{two} DONE")
    # Again: all from the cache.
    again = build(tmp_path, PARALLEL, tags=["par"])
    assert all(again.cached()) and again.image_id == built.image_id


def test_a_failing_stage_fails_the_build_and_leaves_nothing(store, build, tmp_path):
    from lamina.api.build import build as api_build
    from lamina.build.progress import PlainProgress

    # Both RUN steps start together; the one still running when the other fails finishes.
    (tmp_path / "Dockerfile").write_text(
        PARALLEL.replace("echo two > /two", "echo oops && exit 3"))
    log = io.StringIO()
    with pytest.raises(DockerfileError) as info:
        api_build(tmp_path, tags=["bad"], store=store, progress=PlainProgress(log))
    assert "exit code: 3" in info.value.message and info.value.line == 4
    # The stage that succeeded is cached: the fixed build reruns only the failed one.
    fixed = build(tmp_path, PARALLEL, tags=["par"])
    assert [s.cached for s in fixed.result.steps if s.stage == "one"] == [True], log.getvalue()
    assert [s.cached for s in fixed.result.steps if s.stage == "two"] == [False]


def test_the_same_step_in_two_stages_runs_once(build, tmp_path):
    dockerfile = ("FROM busybox AS a\nRUN sleep 0.5 && date +%s%N > /t\n"
                  "FROM busybox AS b\nRUN sleep 0.5 && date +%s%N > /t\n"
                  "FROM busybox\nCOPY --from=a /t /a\nCOPY --from=b /t /b\n")
    built = build(tmp_path, dockerfile, tags=["same"])
    runs = [s.cached for s in built.result.steps if s.stage in ("a", "b")]
    assert sorted(runs) == [False, True]


def test_parallel_through_the_cli_with_a_terminal_view(lamina, tmp_path):
    (tmp_path / "Dockerfile").write_text(PARALLEL)
    out = lamina("build", "--progress", "tty", "-t", "par", str(tmp_path))
    assert "[one 2/2] RUN" in out.stderr and "[two 2/2] RUN" in out.stderr
    assert lamina("run", "--rm", "par", "cat", "/out/one", "/out/two").stdout == "one\ntwo\n"
