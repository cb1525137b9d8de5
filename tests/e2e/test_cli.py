"""The command line as a user drives it: the installed ``lamina`` script, in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.cli.main import COMMANDS
from tests.conftest import CONFORMANCE, REPO

LAMINA = Path(sys.executable).with_name("lamina")
EXAMPLE = REPO / "examples" / "webapp-color"


def lamina(*args: str, stdin: bytes | None = None, cwd: Path | None = None):
    return subprocess.run([str(LAMINA), *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=60)


def test_version():
    from lamina import __version__

    out = lamina("--version")
    assert out.returncode == 0
    assert out.stdout.decode().strip() == f"lamina {__version__}"


def test_help_lists_every_command():
    out = lamina("--help")
    assert out.returncode == 0
    text = out.stdout.decode()
    for name in COMMANDS:
        assert name in text


def test_no_command_prints_help():
    out = lamina()
    assert out.returncode == 0
    assert "usage: lamina" in out.stdout.decode()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(command):
    out = lamina(command, "--help")
    assert out.returncode == 0
    assert f"usage: lamina {command}" in out.stdout.decode()


def test_unknown_command_is_a_usage_error():
    out = lamina("frobnicate")
    assert out.returncode == 2
    assert "invalid choice: 'frobnicate'" in out.stderr.decode()


def test_lint_example_shows_its_stage_and_instructions():
    out = lamina("lint", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "1 stage(s)" in text
    assert "FROM debian:bookworm" in text
    assert "ENTRYPOINT [\"python3\"" in text


def test_lint_given_the_dockerfile_itself_and_with_f(tmp_path):
    (tmp_path / "app.Dockerfile").write_text("FROM busybox\nCMD [\"true\"]\n")
    by_path = lamina("lint", str(tmp_path / "app.Dockerfile"))
    by_flag = lamina("lint", "-f", str(tmp_path / "app.Dockerfile"), str(tmp_path))
    assert by_path.returncode == by_flag.returncode == 0
    assert "FROM busybox" in by_path.stdout.decode()
    assert by_path.stdout == by_flag.stdout


def test_lint_reports_problems_with_position_and_fix(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM Ubuntu\nMAINTAINER me\nRUNN true\n")
    out = lamina("lint", str(tmp_path))
    assert out.returncode == 1
    text = out.stdout.decode()
    where = tmp_path / "Dockerfile"
    assert f"{where}:1:1: error: FROM Ubuntu: invalid reference format: repository name " \
           "(Ubuntu) must be lowercase" in text
    assert "hint: use ubuntu" in text
    assert f"{where}:2:1: warning: Maintainer instruction is deprecated" in text
    assert f"{where}:3:1: error: unknown instruction: RUNN" in text
    assert "did you mean RUN?" in text
    assert "Traceback" not in out.stderr.decode()


def test_lint_reads_stdin():
    out = lamina("lint", "-", stdin=b"FROM scratch\nCOPY a /\n")
    assert out.returncode == 0
    assert "FROM scratch" in out.stdout.decode()


def test_lint_json(tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "ARG V=1\nFROM alpine:$V AS build\nRUN echo hi\nFROM build\nCMD echo done\n")
    out = lamina("lint", "--format", "json", str(tmp_path))
    assert out.returncode == 0
    report = json.loads(out.stdout)
    assert [s["name"] for s in report["stages"]] == ["build", None]
    assert report["stages"][0]["resolved_base"] == "alpine:1"
    assert [i["keyword"] for i in report["stages"][0]["instructions"]] == ["FROM", "RUN"]
    assert [p["rule"] for p in report["problems"]] == ["JSONArgsRecommended"]
    assert report["problems"][0]["line"] == 5


def test_lint_build_arg_resolves_from(tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG TAG=1\nFROM alpine:${TAG}\n")
    out = lamina("lint", "--format", "json", "--build-arg", "TAG=3.20", str(tmp_path))
    assert json.loads(out.stdout)["stages"][0]["resolved_base"] == "alpine:3.20"


@pytest.mark.parametrize("case", ["docker", "escape", "json", "env", "continue-at-eof"])
def test_lint_dump_prints_buildkit_parse_tree(case):
    case_dir = CONFORMANCE / "parser" / "testfiles" / case
    out = lamina("lint", "--dump", "-f", str(case_dir / "Dockerfile"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == (case_dir / "result").read_text(encoding="utf-8")


@pytest.mark.parametrize("args, message", [
    (["lint", "/nonexistent/ctx"], "/nonexistent/ctx: no such file or folder"),
    (["lint", "-f", "/nonexistent/Dockerfile", "."], "no Dockerfile there"),
])
def test_missing_inputs_are_clear_errors(args, message, tmp_path):
    out = lamina(*args, cwd=tmp_path)
    assert out.returncode == 125
    err = out.stderr.decode()
    assert message in err
    assert "Traceback" not in err


def test_context_without_dockerfile(tmp_path):
    out = lamina("lint", str(tmp_path))
    assert out.returncode == 125
    assert f"{tmp_path}/Dockerfile: no Dockerfile there" in out.stderr.decode()


def test_parse_error_is_located_not_a_traceback(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM alpine\nRUN [\"echo\", 1]\n")
    out = lamina("lint", str(tmp_path))
    assert out.returncode == 1
    text = out.stdout.decode() + out.stderr.decode()
    assert f"{tmp_path}/Dockerfile:2" in text
    assert "arrays must be comprised of strings only" in text
    assert "Traceback" not in text


def test_python_m_lamina_works():
    out = subprocess.run([sys.executable, "-m", "lamina", "--version"], capture_output=True,
                         env={**os.environ}, timeout=60)
    assert out.returncode == 0
    assert out.stdout.startswith(b"lamina ")
