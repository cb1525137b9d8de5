"""The mission's story, end to end through the CLI: a base image made here, an app image built in
layers, its history, a rebuild from the cache, the app served on a published port, a push to a
registry on 127.0.0.1 and a pull back. On busybox (fast), and `make demo` itself on Debian (slow).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.test_run_helpers import (  # noqa: F401  (the session fixture tears the bridge down)
    LAMINA, assert_nothing_left, default_network_teardown, free_port, http_get, needs_runtime,
)

DOCKERFILE = """\
FROM busybox
RUN mkdir -p /www && echo built > /www/built.txt && rm /etc/group
COPY index.html /www/
ENV GREETING=hello
EXPOSE 8080
WORKDIR /www
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def _lamina(root: Path):
    env = {**os.environ, "LAMINA_ROOT": str(root)}

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run([str(LAMINA), *args], capture_output=True, text=True, env=env,
                             timeout=timeout)
        if check:
            assert out.returncode == 0, f"lamina {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out
    return run


def _start_registry(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    storage = tmp_path / "registry"
    storage.mkdir()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("docker-registry did not start") from None
            time.sleep(0.1)


@needs_runtime
@pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry missing "
                    "(make setup installs it)")
def test_the_mission_on_a_busybox_base(tmp_path):
    root = tmp_path / "root"
    lamina = _lamina(root)
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "index.html").write_text("<h1>webapp on busybox</h1>\n")

    lamina("bootstrap", "busybox")
    first = lamina("build", "--progress", "plain", "-t", "mmumshad/my-custom-app", str(context))
    image_id = lamina("images", "-q", "--no-trunc", "mmumshad/my-custom-app").stdout.strip()
    assert image_id.startswith("sha256:")
    assert "CACHED" not in first.stdout + first.stderr

    # History: newest first; RUN and COPY carry bytes, the config-only steps 0B.
    rows = lamina("history", "--format", "{{.CreatedBy}}\t{{.Size}}",
                  "mmumshad/my-custom-app").stdout.splitlines()
    steps = [tuple(r.split("\t")) for r in rows[:6]]
    assert [s[0].split()[0] for s in steps] == ["CMD", "WORKDIR", "EXPOSE", "ENV", "COPY", "RUN"]
    assert [s[1] for s in steps[:4]] == ["0B"] * 4
    assert all(s[1] != "0B" for s in steps[4:])

    # A rebuild takes every step from the cache and gives the same image.
    again = lamina("build", "--progress", "plain", "-t", "mmumshad/my-custom-app", str(context))
    log = again.stdout + again.stderr
    assert log.count("CACHED") >= 2 and not re.search(r"^#\d+ \d+\.\d+ ", log, re.M)
    assert lamina("images", "-q", "--no-trunc", "mmumshad/my-custom-app").stdout.strip() == image_id

    # The deletion in RUN is a whiteout: the file is gone in the container.
    gone = lamina("run", "--rm", "mmumshad/my-custom-app", "ls", "/etc/group", check=False)
    assert gone.returncode != 0

    port = free_port()
    cid = lamina("run", "-d", "-p", f"127.0.0.1:{port}:8080",
                 "mmumshad/my-custom-app").stdout.strip()
    try:
        assert http_get(f"http://127.0.0.1:{port}/index.html") == "<h1>webapp on busybox</h1>\n"
        assert http_get(f"http://127.0.0.1:{port}/built.txt") == "built\n"
    finally:
        lamina("rm", "-f", cid)

    registry, rport = _start_registry(tmp_path)
    try:
        remote = f"127.0.0.1:{rport}/mmumshad/my-custom-app"
        lamina("tag", "mmumshad/my-custom-app", remote)
        lamina("push", remote)
        tags = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{rport}/v2/mmumshad/my-custom-app/tags/list").read())
        assert tags["tags"] == ["latest"]
        # Another machine's store pulls it back: the same image.
        other = _lamina(tmp_path / "other")
        other("pull", remote)
        assert other("images", "-q", "--no-trunc", remote).stdout.strip() == image_id
        served = other("run", "--rm", remote, "cat", "/www/built.txt").stdout
        assert served == "built\n"
    finally:
        registry.terminate()
        registry.wait(timeout=10)
    assert_nothing_left(root)
    assert_nothing_left(tmp_path / "other")


@pytest.mark.slow
@needs_runtime
def test_make_demo_on_a_debian_base(tmp_path):
    """`make demo`'s script on a fresh store: Debian bootstrapped from Debian's packages."""
    env = {**os.environ, "LAMINA_ROOT": str(tmp_path / "root"),
           "DEMO_REGISTRY_PORT": str(free_port()), "PATH": f"{REPO / '.venv/bin'}:"
           + os.environ.get("PATH", "")}
    out = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], capture_output=True,
                         text=True, env=env, timeout=900)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "APP_COLOR is blue" in text
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in text
    assert '"tags":["latest"]' in text
    assert_nothing_left(tmp_path / "root")
