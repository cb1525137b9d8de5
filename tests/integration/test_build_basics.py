"""``lamina build`` as a user drives it: the mission's Dockerfile shape on a busybox base,
the history it leaves, the cache on a rebuild, a failing step and its fix, and the command's
forms (a Dockerfile as the context, standard input, -q, --iidfile)."""
from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from lamina.runtime import RunOptions, run_container
from lamina.store.unpack import unpack_image

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files

SEVEN_STEPS = """\
FROM busybox
RUN echo building && rm /etc/removeme && echo data > /data.txt
COPY app.txt /app/
ENV GREETING=hi
WORKDIR /app
EXPOSE 8080
CMD ["sh", "-c", "echo $GREETING from $(cat /app/app.txt)"]
"""


@pytest.fixture
def app(tmp_path) -> Path:
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "app.txt").write_text("lamina\n")
    (ctx / "Dockerfile").write_text(SEVEN_STEPS)
    return ctx


def history_rows(lamina, name: str) -> list[list[str]]:
    out = lamina("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", name).stdout
    return [line.split("|") for line in out.splitlines()]


def test_seven_step_dockerfile_builds_and_history_reads_like_docker(lamina, app):
    out = lamina("build", "--progress", "plain", "-t", "app:1", str(app))
    assert re.search(r"#\d+ \[2/3\] RUN echo building", out.stderr)
    assert re.search(r"#\d+ \d+\.\d{3} building\n", out.stderr)     # the RUN's output
    assert re.search(r"#\d+ writing image sha256:[0-9a-f]{64} done", out.stderr)
    assert "naming to docker.io/library/app:1 done" in out.stderr
    rows = history_rows(lamina, "app:1")
    assert [r[0] for r in rows[:6]] == [
        'CMD ["sh" "-c" "echo $GREETING from $(cat /app/app.txt)"]',
        "EXPOSE map[8080/tcp:{}]",
        "WORKDIR /app",
        "ENV GREETING=hi",
        "COPY app.txt /app/ # buildkit",
        "RUN /bin/sh -c echo building && rm /etc/removeme && echo data > /data.txt # buildkit",
    ]
    sizes = [r[1] for r in rows]
    assert sizes[:4] == ["0B"] * 4 and sizes[4] == "7B" and sizes[5] == "5B"
    assert len(rows) == 7   # and the base image's one layer
    assert lamina("images", "--format", "{{.Repository}}:{{.Tag}}", "app").stdout == "app:1\n"


def test_built_image_runs_its_cmd(app, build, store, tmp_path, capfd):
    built = build(app, tags=["app"])
    image = store.image("app")
    code = run_container(state_dir=tmp_path / "c", lowers=unpack_image(store, image),
                         image_config=image.config().to_dict()["config"],
                         options=RunOptions(remove=True, network_mode="none"))
    assert code == 0
    assert capfd.readouterr().out == "hi from lamina\n"
    assert built.result.tags == ("docker.io/library/app:latest",)


def test_a_deleted_base_file_is_a_whiteout_and_gone_from_the_image(app, build, image_files,
                                                                   layer_members):
    build(app, tags=["app"])
    run_layer = layer_members("app", index=1)
    assert "etc/.wh.removeme" in run_layer and "data.txt" in run_layer
    files = image_files("app")
    assert "etc/removeme" not in files and files["data.txt"][4] == b"data\n"
    assert "etc/passwd" in files
    # Only the change: the RUN layer holds no busybox, the mount points stay out.
    assert "bin/busybox" not in run_layer and "etc/hosts" not in run_layer
    assert "proc" not in run_layer


def test_rebuild_is_all_cached_with_the_same_image_id(app, build):
    first = build(app, tags=["app"])
    again = build(app, tags=["app"])
    assert first.cached() == [False, False] and again.cached() == [True, True]
    assert again.image_id == first.image_id
    assert again.log.count("CACHED") == 2
    assert all(s.cached for s in again.result.steps)


def test_a_changed_source_file_reruns_from_its_copy(app, build):
    first = build(app, tags=["app"])
    (app / "app.txt").write_text("changed\n")
    second = build(app, tags=["app"])
    assert second.cached() == [True, False]
    assert second.image_id != first.image_id
    assert "cache miss: 1 file changed: app.txt" in second.log


def test_a_failing_run_names_the_line_and_the_fix_resumes_there(tmp_path, build):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    good = "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n"
    from lamina.api.build import BuildError
    with pytest.raises(BuildError) as failed:
        build(ctx, good + "RUN echo about to fail && echo bad >&2 && exit 3\nRUN echo four\n")
    err = failed.value
    assert err.line == 4 and err.exit_code == 1
    text = str(err)
    assert "Dockerfile:4" in text and "exit code: 3" in text
    assert "bad" in err.tail and "about to fail" in err.tail
    assert ">>> RUN echo about to fail" in text
    fixed = build(ctx, good + "RUN echo fixed\nRUN echo four\n")
    assert fixed.cached() == [True, True, False, False]


def test_no_cache_runs_every_step(app, build):
    build(app)
    again = build(app, no_cache=True)
    assert again.cached() == [False, False]


def test_quiet_iidfile_and_labels(lamina, app, tmp_path):
    iid = tmp_path / "iid"
    out = lamina("build", "-q", "--iidfile", str(iid), "--label", "team=core", str(app))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out.stdout) and out.stderr == ""
    assert iid.read_text() == out.stdout.strip()
    labels = lamina("inspect", "-f", "{{json .Config.Labels}}", out.stdout.strip()).stdout
    assert labels.strip() == '{"team":"core"}'


def test_a_dockerfile_given_as_the_context(lamina, app):
    out = lamina("build", str(app / "Dockerfile"), "-t", "app", "--progress", "plain")
    assert f"note: {app / 'Dockerfile'} is a file" in out.stderr
    assert "naming to docker.io/library/app:latest done" in out.stderr


def test_a_dockerfile_alone_on_stdin(lamina):
    out = lamina("build", "-q", "-t", "alone", "-",
                 stdin=b"FROM busybox\nRUN echo hi > /hi\nCMD [\"cat\", \"/hi\"]\n")
    assert out.stdout.startswith("sha256:")
    copy = lamina("build", "-", stdin=b"FROM busybox\nCOPY x /x\n", check=False)
    assert copy.returncode == 1 and "there is no build context" in copy.stderr


def test_a_tar_context_on_stdin(lamina, image_files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello.txt /\n"),
                           ("hello.txt", b"from a tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    lamina("build", "-q", "-t", "fromtar", "-", stdin=buf.getvalue())
    assert image_files("fromtar")["hello.txt"][4] == b"from a tar\n"


def test_a_missing_base_image_is_pulled_or_the_error_says_how_to_get_it(build, tmp_path):
    from lamina.api.build import BuildError
    with pytest.raises(BuildError) as failed:
        build(tmp_path, "FROM nosuchimage:1\nRUN true\n", pull=False)
    assert failed.value.line == 1 and "lamina load" in str(failed.value)
    with pytest.raises(BuildError,
                       match=r"pulling it failed: 127\.0\.0\.1:9/nosuch:1: cannot reach 127\."):
        build(tmp_path, "FROM 127.0.0.1:9/nosuch:1\nRUN true\n")


def test_what_a_killed_build_left_is_removed_by_the_next(build, store, tmp_path):
    stale = store.root / "builds" / "killed"
    (stale / "merged").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "lamina-test", str(stale / "merged")], check=True)
    build(tmp_path, "FROM busybox\n")
    assert not stale.exists()
