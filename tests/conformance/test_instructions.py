"""Upstream vectors for typed instructions (shared/conformance/instructions/, README section 4).

Every file of that folder is used; ``test_every_vector_file_is_used`` fails when a new one
appears without tests here. Cases given as Dockerfile text go through lamina's parser first.
"""
from __future__ import annotations

import json
import re

import pytest

from lamina.dockerfile.ast import Node
from lamina.dockerfile.bflags import BFlags
from lamina.dockerfile.instructions import (
    FLAGS, Arg, Copy, From, Healthcheck, Run, handle_json_args, parse_instruction,
)
from lamina.dockerfile.values import parse_device
from lamina.errors import DockerfileError
from tests.conftest import CONFORMANCE

VECTORS = CONFORMANCE / "instructions"
USED_FILES = {
    "bflags.json", "flags_by_instruction.derived.json", "handle_json_args.json",
    "healthcheck_interval.json", "parse_instruction_errors.json", "parse_instruction_nodes.json",
    "parse_instruction_success.json", "run_device.json", "smoke_no_crash.json",
    "stage_names.json",
}


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_bytes())


def parse_children(text: str) -> list[Node]:
    parser = pytest.importorskip("lamina.dockerfile.parser")
    return parser.parse(text).root.children


def make_node(value: str, args: list[str], *, json_form: bool = False, flags: list[str] = (),
              original: str = "") -> Node:
    """An instruction node built by hand, as upstream's node-based tests do."""
    head = None
    for arg in reversed(args):
        head = Node(value=arg, next=head)
    return Node(value=value, next=head, json=json_form, flags=list(flags), original=original,
                start_line=1)


def check_error(err: DockerfileError, case: dict) -> None:
    if "error_equals" in case:
        assert err.message == case["error_equals"]
    else:
        assert case["error_contains"] in err.message


def test_every_vector_file_is_used():
    assert {p.name for p in VECTORS.iterdir() if p.suffix == ".json"} == USED_FILES


# -- bflags.json --------------------------------------------------------------------------------

BFLAG_CASES = load("bflags.json")["cases"]


@pytest.mark.parametrize("case", BFLAG_CASES,
                         ids=[f"{i}:{' '.join(c['args']) or 'no-args'}"
                              for i, c in enumerate(BFLAG_CASES)])
def test_bflags(case):
    flags = BFlags(case["args"])
    declared = {}
    for name, (kind, default) in case["defs"].items():
        declared[name] = (flags.add_bool(name, default) if kind == "bool"
                          else flags.add_string(name, default))
    if not case["ok"]:
        with pytest.raises(DockerfileError) as info:
            flags.parse()
        check_error(info.value, case)
        return
    flags.parse()
    for name, value in case.get("values", {}).items():
        assert declared[name].value == value
    if "used" in case:
        assert sorted(flags.used()) == case["used"]


# -- flags_by_instruction.derived.json ----------------------------------------------------------

FLAG_TABLE = load("flags_by_instruction.derived.json")["instructions"]
ALL_INSTRUCTIONS = load("smoke_no_crash.json")["instructions"]


def expected_flags(keyword: str) -> dict[str, str]:
    # The table writes a few kinds with a note: "string(duration)", "string (default|...)".
    table = FLAG_TABLE.get(keyword, {})
    return {name: kind.split("(")[0].strip() for name, kind in table.items()}


@pytest.mark.parametrize("keyword", [i.upper() for i in ALL_INSTRUCTIONS])
def test_instruction_accepts_exactly_the_flags_of_the_table(keyword):
    assert FLAGS.get(keyword, {}) == expected_flags(keyword)


# Arguments each instruction accepts, so that only the flag can be wrong.
VALID_ARGS = {"ENV": ["a", "b", "="], "LABEL": ["a", "b", "="], "FROM": ["a"],
              "HEALTHCHECK": ["CMD", "true"], "MAINTAINER": ["a"], "STOPSIGNAL": ["a"],
              "USER": ["a"], "WORKDIR": ["a"]}


@pytest.mark.parametrize("keyword", [i.upper() for i in ALL_INSTRUCTIONS])
def test_flags_not_in_the_table_are_unknown(keyword):
    # Behaviour, not just the table: every flag some instruction takes is refused by the others.
    foreign = {f for k in FLAG_TABLE if k != "others" for f in FLAG_TABLE[k]}
    for flag in sorted(foreign - set(expected_flags(keyword))):
        node = make_node(keyword.lower(), VALID_ARGS.get(keyword, ["a", "b"]),
                         flags=[f"--{flag}=x"])
        with pytest.raises(DockerfileError) as info:
            parse_instruction(node)
        assert info.value.message == f"unknown flag: --{flag}"


@pytest.mark.parametrize("keyword", sorted(k for k in FLAG_TABLE if k != "others"))
def test_flags_in_the_table_are_known(keyword):
    for flag, kind in expected_flags(keyword).items():
        word = f"--{flag}" if kind == "bool" else f"--{flag}=x"
        node = make_node(keyword.lower(), VALID_ARGS.get(keyword, ["a", "b"]), flags=[word])
        try:
            parse_instruction(node)
        except DockerfileError as err:  # "x" is a bad value for some; it must not be unknown
            assert not err.message.startswith("unknown flag"), err.message


# -- handle_json_args.json ----------------------------------------------------------------------

JSON_ARGS_CASES = load("handle_json_args.json")["cases"]


@pytest.mark.parametrize("case", JSON_ARGS_CASES, ids=[c["name"] for c in JSON_ARGS_CASES])
def test_handle_json_args(case):
    json_form = bool((case["attributes"] or {}).get("json"))
    assert handle_json_args(case["args"], json_form) == case["expected"]


# -- healthcheck_interval.json ------------------------------------------------------------------

INTERVAL_CASES = load("healthcheck_interval.json")["cases"]


@pytest.mark.parametrize("case", INTERVAL_CASES,
                         ids=[f"{c['flag']}={c['value']}" for c in INTERVAL_CASES])
def test_healthcheck_interval(case):
    node = make_node("healthcheck", ["CMD", "true"], flags=[f"--{case['flag']}={case['value']}"])
    if case.get("ok"):
        assert isinstance(parse_instruction(node), Healthcheck)
        return
    with pytest.raises(DockerfileError) as info:
        parse_instruction(node)
    check_error(info.value, case)


# -- parse_instruction_errors.json --------------------------------------------------------------

ERROR_CASES = load("parse_instruction_errors.json")["cases"]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["name"] for c in ERROR_CASES])
def test_parse_instruction_errors(case):
    node = parse_children(case["dockerfile"])[0]
    with pytest.raises(DockerfileError) as info:
        parse_instruction(node)
    check_error(info.value, case)
    assert info.value.line == node.start_line


# -- parse_instruction_nodes.json ---------------------------------------------------------------

NODE_CASES = load("parse_instruction_nodes.json")["cases"]


@pytest.mark.parametrize("case", NODE_CASES, ids=[c["name"] for c in NODE_CASES])
def test_parse_instruction_nodes(case):
    spec = case["node"]
    node = make_node(spec["value"], spec["args"], original=spec.get("original", ""),
                     json_form=bool((spec.get("attributes") or {}).get("json")))
    if "expect" not in case:
        with pytest.raises(DockerfileError) as info:
            parse_instruction(node)
        check_error(info.value, case)
        return
    instruction = parse_instruction(node)
    assert list(instruction.test) == case["expect"]["health.test"]


# -- parse_instruction_success.json -------------------------------------------------------------

SUCCESS = load("parse_instruction_success.json")


@pytest.mark.parametrize("case", SUCCESS["run_flags_used"],
                         ids=[c["dockerfile"] for c in SUCCESS["run_flags_used"]])
def test_run_flags_used(case):
    run = parse_instruction(parse_children(case["dockerfile"])[0])
    assert isinstance(run, Run)
    assert sorted(run.flags_used) == case["flags_used"]


def comment_tree(text: str) -> dict:
    """Stages and meta args (ARGs before the first FROM), grouped the way upstream's
    instructions.Parse does, as plain data: only what the comment vectors look at."""
    def arg_data(arg: Arg) -> dict:
        return {"args": [{"key": a.key, "doc_comment": a.doc_comment} for a in arg.args]}

    tree: dict = {"stages": [], "meta_args": []}
    for node in parse_children(text):
        instruction = parse_instruction(node)
        if isinstance(instruction, From):
            tree["stages"].append({"doc_comment": instruction.doc_comment, "commands": []})
        elif tree["stages"]:
            assert isinstance(instruction, Arg)
            tree["stages"][-1]["commands"].append(arg_data(instruction))
        else:
            assert isinstance(instruction, Arg)
            tree["meta_args"].append(arg_data(instruction))
    return tree


def resolve(tree: dict, path: str):
    """Follow a path like ``stages[0].commands[1].args[0]``."""
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        tree = tree[m.group(1)]
        if m.group(2) is not None:
            tree = tree[int(m.group(2))]
    return tree


COMMENTS = SUCCESS["comments_detection"]


@pytest.mark.parametrize("path, expected", list(COMMENTS["expect"].items()),
                         ids=list(COMMENTS["expect"]))
def test_comments_detection(path, expected):
    assert resolve(comment_tree(COMMENTS["dockerfile"]), path) == expected


COPY_CASES = SUCCESS["copy_heredoc"]["cases"]


@pytest.mark.parametrize("case", COPY_CASES, ids=[c["dockerfile"] for c in COPY_CASES])
def test_copy_heredoc(case):
    copy = parse_instruction(parse_children(case["dockerfile"])[0])
    assert isinstance(copy, Copy)
    assert copy.dest == case["dest_path"]
    assert list(copy.sources) == (case["source_paths"] or [])
    assert [{"path": c.path, "data": c.data, "expand": c.expand}
            for c in copy.source_contents] == (case["source_contents"] or [])


RUN_CASES = SUCCESS["run_heredoc"]["cases"]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c["dockerfile"] for c in RUN_CASES])
def test_run_heredoc(case):
    run = parse_instruction(parse_children(case["dockerfile"])[0])
    assert isinstance(run, Run)
    assert run.prepend_shell == case["prepend_shell"]
    assert list(run.cmd_line) == case["cmd_line"]
    assert [{"name": f.name, "data": f.data, "chomp": f.chomp}
            for f in run.files] == (case["files"] or [])


# -- run_device.json ----------------------------------------------------------------------------

DEVICE_CASES = load("run_device.json")["cases"]


@pytest.mark.parametrize("case", DEVICE_CASES, ids=[c["input"] for c in DEVICE_CASES])
def test_run_device(case):
    if "expected" not in case:
        with pytest.raises(DockerfileError) as info:
            parse_device(case["input"])
        check_error(info.value, case)
        return
    device = parse_device(case["input"])
    assert {"name": device.name, "required": device.required} == case["expected"]


# -- smoke_no_crash.json ------------------------------------------------------------------------

SMOKE = load("smoke_no_crash.json")


@pytest.mark.parametrize("text", [
    SMOKE["template"].format(instruction=name, suffix=suffix)
    for name in SMOKE["instructions"] for suffix in SMOKE["suffixes"]])
def test_smoke_no_crash(text):
    parser = pytest.importorskip("lamina.dockerfile.parser")
    try:
        children = parser.parse(text).root.children
    except DockerfileError:
        return  # a parse error is an acceptable outcome; a crash is not
    for node in children:
        try:
            parse_instruction(node)
        except DockerfileError:
            pass


# -- stage_names.json ---------------------------------------------------------------------------

STAGE_CASES = load("stage_names.json")["cases"]


@pytest.mark.parametrize("case", STAGE_CASES, ids=[" ".join(c["args"]) for c in STAGE_CASES])
def test_stage_names(case):
    node = make_node("from", case["args"])
    if "error_equals" in case:
        with pytest.raises(DockerfileError) as info:
            parse_instruction(node)
        check_error(info.value, case)
        return
    stage = parse_instruction(node)
    assert (stage.stage_name or "") == case["name"]
