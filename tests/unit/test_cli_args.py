"""lamina's own command-line parser (lamina.cli.args): Docker's syntax, argparse's errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lamina.cli.args import REMAINDER, ArgumentParser, ArgumentTypeError, Namespace
from lamina.cli.main import COMMANDS, build_parser

LAMINA = Path(sys.executable).with_name("lamina")


def _port(text: str) -> int:
    if not text.isdigit():
        raise ArgumentTypeError(f"invalid port {text!r}: expected a number")
    return int(text)


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(text)
    return text == "true"


def runlike() -> ArgumentParser:
    """A parser shaped as ``lamina run``'s."""
    p = ArgumentParser(prog="lamina run", description="Run a thing")
    p.add_argument("-d", "--detach", action="store_true", help="in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="a terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable")
    p.add_argument("-p", "--publish", action="append", default=[], help="publish a port")
    p.add_argument("--name", help="a name")
    p.add_argument("--network", "--net", default="bridge", metavar="MODE", help="network")
    p.add_argument("--cpus", type=float, help="CPUs")
    p.add_argument("--pids-limit", type=int, metavar="N", help="processes")
    p.add_argument("--port", type=_port, help="a port")
    p.add_argument("--progress", choices=("auto", "plain"), default="auto", help="progress")
    p.add_argument("-H", "--human", type=_bool, nargs="?", const=True, default=True,
                   metavar="true|false", help="human sizes")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]", help="the command")
    return p


def fails(parser: ArgumentParser, argv: list[str], capsys) -> str:
    """The usage error's stderr, after checking it is one (exit status 2, usage first)."""
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {parser.prog}")    # the usage of the (sub)command at fault
    assert ": error: " in err
    return err


# Values and flags


def test_defaults_when_nothing_is_given():
    args = runlike().parse_args(["busybox"])
    assert args == Namespace(detach=False, interactive=False, tty=False, env=[],
                             publish=[], name=None, network="bridge", cpus=None,
                             pids_limit=None, port=None, progress="auto", human=True,
                             image="busybox", command=[])


def test_long_options_take_their_value_after_a_space_or_an_equals_sign():
    a = runlike().parse_args(["--name", "web", "--network=none", "busybox"])
    assert (a.name, a.network) == ("web", "none")
    assert runlike().parse_args(["--net", "host", "x"]).network == "host"
    assert runlike().parse_args(["--name=a=b", "x"]).name == "a=b"
    assert runlike().parse_args(["--name=", "x"]).name == ""


def test_short_options_take_their_value_attached_or_after_a_space():
    a = runlike().parse_args(["-p8080:80", "-eA=B", "-e", "C=D", "-e=E", "busybox"])
    assert a.publish == ["8080:80"]
    assert a.env == ["A=B", "C=D", "E"]


def test_bundled_short_flags_and_a_last_one_with_a_value():
    a = runlike().parse_args(["-it", "busybox"])
    assert (a.interactive, a.tty, a.detach) == (True, True, False)
    a = runlike().parse_args(["-dit", "busybox"])
    assert (a.interactive, a.tty, a.detach) == (True, True, True)
    a = runlike().parse_args(["-itp8080:80", "busybox"])
    assert (a.interactive, a.tty, a.publish) == (True, True, ["8080:80"])
    a = runlike().parse_args(["-ite", "K=V", "busybox"])
    assert a.env == ["K=V"]


def test_repeated_append_options_collect_and_never_share_the_default():
    parser = runlike()
    first = parser.parse_args(["-e", "A=1", "--env", "B=2", "-eC=3", "x"])
    assert first.env == ["A=1", "B=2", "C=3"]
    second = parser.parse_args(["x"])
    assert second.env == [] and first.env == ["A=1", "B=2", "C=3"]


def test_types_convert_and_negative_numbers_are_values():
    a = runlike().parse_args(["--cpus", "0.5", "--pids-limit", "-1", "x"])
    assert (a.cpus, a.pids_limit) == (0.5, -1)
    assert runlike().parse_args(["--cpus", "-.5", "x"]).cpus == -0.5
    assert runlike().parse_args(["--port", "80", "x"]).port == 80


def test_a_flag_takes_true_or_false_attached_as_docker():
    assert runlike().parse_args(["--detach=false", "x"]).detach is False
    assert runlike().parse_args(["-d=true", "x"]).detach is True


def test_an_optional_value_comes_attached_only():
    assert runlike().parse_args(["-H", "x"]).human is True
    assert runlike().parse_args(["-H", "x"]).image == "x"    # not taken as -H's value
    assert runlike().parse_args(["-H=false", "x"]).human is False
    assert runlike().parse_args(["--human=false", "x"]).human is False
    assert runlike().parse_args(["-Hfalse", "x"]).human is False


def test_remainder_takes_everything_after_the_image_options_included():
    a = runlike().parse_args(["-d", "busybox", "sh", "-c", "echo -n hi", "--name", "x"])
    assert (a.detach, a.image, a.name) == (True, "busybox", None)
    assert a.command == ["sh", "-c", "echo -n hi", "--name", "x"]
    assert runlike().parse_args(["busybox", "-h"]).command == ["-h"]
    assert runlike().parse_args(["busybox", "--", "x"]).command == ["--", "x"]


def test_double_dash_ends_the_options():
    a = runlike().parse_args(["-d", "--", "-weird-image", "-x"])
    assert (a.detach, a.image, a.command) == (True, "-weird-image", ["-x"])


def test_positionals_share_the_words_as_argparse_does():
    p = ArgumentParser(prog="t")
    p.add_argument("first")
    p.add_argument("middle", nargs="*")
    p.add_argument("last")
    p.add_argument("-f", "--force", action="store_true")
    a = p.parse_args(["a", "b", "-f", "c", "d"])
    assert (a.first, a.middle, a.last, a.force) == ("a", ["b", "c"], "d", True)
    a = p.parse_args(["a", "d"])
    assert (a.middle, a.last) == ([], "d")
    q = ArgumentParser(prog="q")
    q.add_argument("path", nargs="?", default=".")
    q.add_argument("names", nargs="+")
    assert q.parse_args(["n"]) == Namespace(path=".", names=["n"])
    assert q.parse_args(["p", "n", "m"]).names == ["n", "m"]
    assert q.parse_args(["-"]).names == ["-"]


def test_dest_and_a_word_with_a_space_that_starts_with_a_dash():
    p = ArgumentParser(prog="t")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout")
    p.add_argument("--format")
    p.add_argument("word", nargs="?")
    assert p.parse_args(["--time", "3"]).timeout == 3
    assert p.parse_args(["--timeout=4"]).timeout == 4
    assert p.parse_args(["--format", "-{{.ID}} x"]).format == "-{{.ID}} x"
    assert p.parse_args(["-a b"]).word == "-a b"


# Errors


def test_an_unknown_option_is_a_usage_error_naming_it(capsys):
    err = fails(runlike(), ["--frobnicate", "x"], capsys)
    assert "lamina run: error: unknown option --frobnicate" in err
    assert "See 'lamina run --help'." in err
    err = fails(runlike(), ["-iz", "x"], capsys)
    assert "unknown option -z (in -iz)" in err


def test_abbreviations_are_not_accepted_but_suggested(capsys):
    err = fails(runlike(), ["--detac", "x"], capsys)
    assert "unknown option --detac; did you mean --detach?" in err
    err = fails(runlike(), ["--pro", "plain", "x"], capsys)
    assert "did you mean --progress?" in err


def test_a_missing_value_is_a_usage_error(capsys):
    assert "option --name needs a value: --name NAME" in fails(runlike(), ["--name"], capsys)
    assert "option -e needs a value: -e KEY=VALUE" in fails(runlike(), ["-e"], capsys)
    # an option where its value should be is not taken as the value
    assert "option --name needs a value" in fails(runlike(), ["--name", "--detach", "x"],
                                                  capsys)


def test_missing_and_extra_positionals(capsys):
    assert "the following arguments are required: IMAGE" in fails(runlike(), ["-d"], capsys)
    p = ArgumentParser(prog="tag")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("target", metavar="TARGET")
    assert "required: SOURCE, TARGET" in fails(p, [], capsys)
    assert "required: TARGET" in fails(p, ["a"], capsys)
    assert "unexpected arguments: c d" in fails(p, ["a", "b", "c", "d"], capsys)


def test_a_required_option(capsys):
    p = ArgumentParser(prog="t")
    p.add_argument("--to", required=True)
    assert "the following arguments are required: --to" in fails(p, [], capsys)
    assert p.parse_args(["--to", "x"]).to == "x"


def test_bad_values_name_the_option(capsys):
    assert "argument --pids-limit: invalid int value: 'many'" in \
        fails(runlike(), ["--pids-limit", "many", "x"], capsys)
    assert "argument --port: invalid port 'http': expected a number" in \
        fails(runlike(), ["--port=http", "x"], capsys)
    assert "argument --progress: invalid choice: 'fancy' (choose from 'auto', 'plain')" in \
        fails(runlike(), ["--progress", "fancy", "x"], capsys)
    assert "option --detach is a flag" in fails(runlike(), ["--detach=maybe", "x"], capsys)
    assert "argument -H/--human: invalid _bool value: 'maybe'" in \
        fails(runlike(), ["-H=maybe", "x"], capsys)


# Help and version


def test_help_lists_every_option_with_its_help_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exited:
        runlike().parse_args(["--network", "none", "-h", "x"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lamina run [OPTIONS] IMAGE [COMMAND [ARG...]]\n")
    assert "Run a thing" in out
    for line in ("-h, --help", "-e, --env KEY=VALUE", "an environment variable",
                 "--network, --net MODE", "--progress {auto,plain}", "-H, --human[=true|false]",
                 "COMMAND [ARG...]", "the command"):
        assert line in out, line


def test_help_wraps_long_text_to_the_terminal(monkeypatch):
    p = ArgumentParser(prog="t")
    p.add_argument("--long", help="word " * 40)
    monkeypatch.setenv("COLUMNS", "60")
    lines = p.format_help().splitlines()
    assert max(map(len, lines)) <= 60
    assert sum("word" in line for line in lines) > 3


def test_version(capsys):
    p = ArgumentParser(prog="lamina")
    p.add_argument("--version", action="version", version="lamina 9.9")
    with pytest.raises(SystemExit) as exited:
        p.parse_args(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == "lamina 9.9\n"


# Commands and command groups


def grouped() -> ArgumentParser:
    top = ArgumentParser(prog="lamina")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    rm = sub.add_parser("rm", help="Remove containers", description="Remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill first")
    rm.add_argument("names", nargs="+", metavar="CONTAINER")
    rm.set_defaults(run="rm")
    volume = sub.add_parser("volume", help="Manage volumes")
    groups = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    ls = groups.add_parser("ls", aliases=["list"], help="List volumes")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.set_defaults(run="volume ls")
    return top


def test_commands_and_nested_groups_with_aliases():
    assert grouped().parse_args([]).command is None
    a = grouped().parse_args(["rm", "-f", "a", "b"])
    assert (a.command, a.force, a.names, a.run) == ("rm", True, ["a", "b"], "rm")
    a = grouped().parse_args(["volume", "list", "-q"])
    assert (a.command, a.volume_command, a.quiet, a.run) == ("volume", "list", True,
                                                             "volume ls")
    assert list(grouped().commands()) == ["rm", "volume"]
    assert list(grouped().commands()["volume"].commands()) == ["ls"]


def test_command_errors(capsys):
    err = fails(grouped(), ["frobnicate"], capsys)
    assert "lamina: error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'rm', " \
           "'volume')" in err
    err = fails(grouped(), ["volume"], capsys)
    assert err.startswith("usage: lamina volume [OPTIONS] COMMAND ...")
    assert "lamina volume: error: the following arguments are required: COMMAND" in err
    err = fails(grouped(), ["rm", "--all", "x"], capsys)
    assert "lamina rm: error: unknown option --all" in err


def test_a_group_help_lists_its_commands(capsys):
    with pytest.raises(SystemExit):
        grouped().parse_args(["volume", "--help"])
    out = capsys.readouterr().out
    assert "usage: lamina volume [OPTIONS] COMMAND ..." in out
    assert "ls (list)" in out and "List volumes" in out


# lamina's own command line


def test_lamina_run_parses_a_docker_command_line():
    argv = ["run", "-it", "--rm", "-p8080:80", "-eA=B", "-e", "C", "-v", "/a:/b:ro",
            "--name=web", "--cpus", "1.5", "--pids-limit", "-1", "busybox", "sh", "-c",
            "echo $A", "--rm"]
    a = build_parser("run").parse_args(argv)
    assert (a.interactive, a.tty, a.rm, a.detach) == (True, True, True, False)
    assert (a.publish, a.env, a.volume, a.name) == (["8080:80"], ["A=B", "C"], ["/a:/b:ro"],
                                                    "web")
    assert (a.cpus, a.pids_limit, a.network) == (1.5, -1, "bridge")
    assert (a.image, a.command) == ("busybox", ["sh", "-c", "echo $A", "--rm"])


def test_every_lamina_option_is_in_its_help():
    def check(parser: ArgumentParser) -> None:
        text = parser.format_help()
        for arg in parser._arguments:
            for flag in arg.flags:
                assert flag in text, (parser.prog, flag)
            if arg.help:
                assert arg.help.split()[0] in text, (parser.prog, arg.help)
        for sub in parser.commands().values():
            check(sub)

    top = build_parser()
    assert set(COMMANDS) <= set(top.commands())
    check(top)


def test_the_run_command_line_does_not_load_argparse():
    code = ("import sys\n"
            "from lamina.cli.main import build_parser\n"
            "build_parser('run').parse_args(['run', '--rm', 'busybox', 'true'])\n"
            "print(sorted({'argparse', 'gettext', 'locale', 'typing'} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr


def test_the_lamina_script_reports_a_usage_error_without_a_traceback():
    out = subprocess.run([str(LAMINA), "run", "--rm", "--detac", "busybox"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: lamina run [OPTIONS] IMAGE [COMMAND [ARG...]]\n")
    assert "lamina run: error: unknown option --detac; did you mean --detach?" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
