"""RUN as Docker runs it: shell and exec forms, heredocs, SHELL, USER, WORKDIR, the
environment, and RUN --mount (secret, cache, bind, tmpfs), --network."""
from __future__ import annotations

import json

import pytest

from lamina.api.build import BuildError

pytest_plugins = ["tests.conftest_build"]   # store, build, lamina, image_files


def test_forms_environment_user_and_workdir(store, build, tmp_path, image_files):
    build(tmp_path, "FROM busybox\nENV A=from-env\nARG B=from-arg\nWORKDIR /w\n"
                    "RUN echo \"$A $B $(pwd)\" > out\n"
                    "RUN [\"/bin/sh\", \"-c\", \"id -u > /w/uid\"]\n"
                    "USER app\nRUN id -un > /tmp/user\n"
                    "SHELL [\"/bin/sh\", \"-xc\"]\nRUN true > /tmp/shell\n", tags=["t"])
    files = image_files("t")
    assert files["w/out"][4] == b"from-env from-arg /w\n"
    assert files["w/uid"][4] == b"0\n"
    assert files["tmp/user"][4] == b"app\n" and files["tmp/user"][2] == 1000
    config = store.image("t").config()
    assert config.config.shell == ("/bin/sh", "-xc") and config.config.user == "app"
    assert "B=from-arg" not in (config.config.env or ())   # ARGs stay out of the image


def test_heredocs(build, tmp_path, image_files):
    build(tmp_path, "FROM busybox\n"
                    "RUN <<EOF\necho one > /one\necho two >> /one\nEOF\n"
                    "RUN <<EOF\n#!/bin/sh\necho script $0 > /script\nEOF\n"
                    "RUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB\n", tags=["t"])
    files = image_files("t")
    assert files["one"][4] == b"one\ntwo\n"
    assert files["script"][4] == b"script /dev/pipes/EOF\n"
    assert files["a"][4] == b"first\n" and files["b"][4] == b"second\n"
    assert "dev/pipes" not in files


def test_secret_is_readable_in_the_step_and_nowhere_else(store, build, tmp_path, image_files):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = ("FROM busybox\n"
                  "RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /len && "
                  "cat /run/secrets/token | tr a-z A-Z | head -c 3 > /prefix\n"
                  "RUN --mount=type=secret,id=token,env=TOKEN test \"${#TOKEN}\" = 12\n")
    built = build(ctx, dockerfile, tags=["t"], secrets={"token": secret})
    files = image_files("t")
    assert files["len"][4] == b"12\n" and files["prefix"][4] == b"S3C"
    assert not any(p.startswith("run") for p in files)
    # Not in any layer, nor the config and its history, nor the build cache.
    image = store.image("t")
    for desc in image.layers():
        with image.open_blob(desc) as blob:
            assert b"s3cr3t-value" not in blob.read()
    assert b"s3cr3t-value" not in image.config_bytes()
    for path in (store.root / "buildcache").rglob("*"):
        if path.is_file():
            assert b"s3cr3t-value" not in path.read_bytes(), path
    # A changed secret does not change the cache key; a missing one fails the step.
    secret.write_text("another-value")
    assert build(ctx, dockerfile, secrets={"token": secret}).cached() == [True, True]
    with pytest.raises(BuildError, match="secret token not found"):
        build(ctx, "FROM busybox\nRUN --mount=type=secret,id=token,required true\n")
    assert built.cached() == [False, False]


def test_cache_mount_persists_between_builds_and_stays_out_of_layers(build, tmp_path, image_files):
    step = "RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && " \
           "cat /var/cache/app/log > /seen"
    build(tmp_path, f"FROM busybox\n{step}\n", tags=["t"])
    assert image_files("t")["seen"][4] == b"run\n"
    build(tmp_path, f"FROM busybox\nENV AGAIN=1\n{step}\n", tags=["t"])
    files = image_files("t")
    assert files["seen"][4] == b"run\nrun\n"
    assert "var/cache" not in files      # the mount point left no trace


def test_bind_and_tmpfs_mounts(build, tmp_path, image_files):
    (tmp_path / "input.txt").write_text("from the context\n")
    build(tmp_path, "FROM busybox\n"
                    "RUN --mount=type=bind,target=/ctx cat /ctx/input.txt > /copied\n"
                    "RUN --mount=type=bind,target=/ctx,rw echo x > /ctx/written\n"
                    "RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && "
                    "grep -q ' /scratch tmpfs' /proc/mounts && echo ok > /tmpfs\n", tags=["t"])
    files = image_files("t")
    assert files["copied"][4] == b"from the context\n" and files["tmpfs"][4] == b"ok\n"
    assert not (tmp_path / "written").exists()   # rw bind writes are thrown away
    assert "ctx" not in files and "scratch" not in files


def test_network_modes(build, tmp_path, image_files):
    build(tmp_path, "FROM busybox\nRUN ls /sys/class/net > /ifaces\n", tags=["t"],
          network="none")
    assert image_files("t")["ifaces"][4] == b"lo\n"
    build(tmp_path, "FROM busybox\nRUN ls /sys/class/net > /ifaces\n", tags=["t"])
    assert b"eth0" in image_files("t")["ifaces"][4]   # the default: a bridge


def test_history_and_config_of_metadata_instructions(store, build, tmp_path):
    build(tmp_path, "FROM busybox\nLABEL a=b\nUSER app\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
                    "HEALTHCHECK --interval=30s --retries=3 CMD true\nMAINTAINER me\n"
                    "ENTRYPOINT [\"sh\"]\nCMD echo hi\n", tags=["t"])
    config = store.image("t").config()
    entries = [(h.created_by, h.empty_layer) for h in config.history[1:]]
    assert entries == [
        ("LABEL a=b", True), ("USER app", True), ("VOLUME [/data]", True),
        ("STOPSIGNAL SIGINT", True),
        ("HEALTHCHECK {Test:[CMD-SHELL true] Interval:30s Timeout:0s StartPeriod:0s "
         "StartInterval:0s Retries:3}", True),
        ("MAINTAINER me", True), ('ENTRYPOINT ["sh"]', True),
        ('CMD ["/bin/sh" "-c" "echo hi"]', True)]
    c = json.loads(store.image("t").config_bytes())["config"]
    assert c["Entrypoint"] == ["sh"] and c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["Labels"] == {"a": "b"} and c["Volumes"] == {"/data": {}}
    assert c["StopSignal"] == "SIGINT" and c["Healthcheck"]["Retries"] == 3
    assert config.author == "me"


def test_entrypoint_drops_the_base_cmd(store, build, tmp_path):
    build(tmp_path, "FROM busybox\nENTRYPOINT [\"echo\"]\n", tags=["t"])
    assert store.image("t").config().config.cmd is None
