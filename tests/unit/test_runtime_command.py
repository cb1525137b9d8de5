"""Docker's ENTRYPOINT/CMD rules: the Dockerfile reference's table, cell by cell, and `run`."""
from __future__ import annotations

import pytest

from lamina.runtime.command import config_form, resolve_command
from lamina.runtime.errors import ContainerError

# The table "Understand how CMD and ENTRYPOINT interact" of the Dockerfile reference. Rows are
# CMD, columns ENTRYPOINT, each in the Dockerfile's shell form (a str), exec form (a list), or
# absent (None); a cell is the argv the container runs, or None for Docker's error.
ENTRYPOINTS = [None, "exec_entry p1_entry", ["exec_entry", "p1_entry"]]
CMDS = [None, ["exec_cmd", "p1_cmd"], "exec_cmd p1_cmd"]
TABLE = {
    (None, None): None,
    (None, "exec_entry p1_entry"): ["/bin/sh", "-c", "exec_entry p1_entry"],
    (None, ("exec_entry", "p1_entry")): ["exec_entry", "p1_entry"],
    (("exec_cmd", "p1_cmd"), None): ["exec_cmd", "p1_cmd"],
    (("exec_cmd", "p1_cmd"), "exec_entry p1_entry"):
        ["/bin/sh", "-c", "exec_entry p1_entry", "exec_cmd", "p1_cmd"],
    (("exec_cmd", "p1_cmd"), ("exec_entry", "p1_entry")):
        ["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"],
    ("exec_cmd p1_cmd", None): ["/bin/sh", "-c", "exec_cmd p1_cmd"],
    ("exec_cmd p1_cmd", "exec_entry p1_entry"):
        ["/bin/sh", "-c", "exec_entry p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"],
    ("exec_cmd p1_cmd", ("exec_entry", "p1_entry")):
        ["exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"],
}


def _key(value):
    return tuple(value) if isinstance(value, list) else value


def _image(entrypoint, cmd) -> dict:
    config = {}
    if entrypoint is not None:
        config["Entrypoint"] = config_form(entrypoint)
    if cmd is not None:
        config["Cmd"] = config_form(cmd)
    return config


@pytest.mark.parametrize("cmd", CMDS, ids=["no-cmd", "cmd-exec", "cmd-shell"])
@pytest.mark.parametrize("entrypoint", ENTRYPOINTS, ids=["no-ep", "ep-shell", "ep-exec"])
def test_the_dockerfile_reference_table(entrypoint, cmd):
    expected = TABLE[_key(cmd), _key(entrypoint)]
    if expected is None:
        with pytest.raises(ContainerError, match="no command specified") as err:
            resolve_command(_image(entrypoint, cmd))
        assert err.value.exit_code == 125
    else:
        # A shell-form ENTRYPOINT gets CMD as $0, $1...: the shell ignores it, as the table says.
        assert resolve_command(_image(entrypoint, cmd)) == expected


def test_shell_form_runs_through_bin_sh_c():
    assert config_form("echo $HOME") == ["/bin/sh", "-c", "echo $HOME"]
    assert config_form(["echo", "$HOME"]) == ["echo", "$HOME"]
    assert config_form("dir", shell=["cmd", "/S", "/C"]) == ["cmd", "/S", "/C", "dir"]


def test_run_command_replaces_cmd_and_keeps_entrypoint():
    image = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}
    assert resolve_command(image, command=["migrate", "--all"]) == ["/entry.sh", "migrate", "--all"]
    assert resolve_command({"Cmd": ["sh"]}, command=["echo", "hi"]) == ["echo", "hi"]


def test_entrypoint_override_drops_the_image_cmd():
    image = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}
    assert resolve_command(image, entrypoint="/bin/date") == ["/bin/date"]
    assert resolve_command(image, entrypoint="/bin/echo", command=["x"]) == ["/bin/echo", "x"]
    assert resolve_command(image, entrypoint=["/bin/sh", "-c"], command=["id"]) == \
        ["/bin/sh", "-c", "id"]


def test_entrypoint_string_is_one_word_like_the_docker_cli():
    assert resolve_command({}, entrypoint="/bin/sh -c") == ["/bin/sh -c"]


@pytest.mark.parametrize("cleared", ["", [""], []])
def test_empty_entrypoint_clears_it(cleared):
    image = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}
    assert resolve_command(image, entrypoint=cleared, command=["ls", "/"]) == ["ls", "/"]
    with pytest.raises(ContainerError, match="no command specified"):
        resolve_command(image, entrypoint=cleared)


@pytest.mark.parametrize("image", [{}, {"Cmd": []}, {"Cmd": None, "Entrypoint": None},
                                   {"Entrypoint": []}])
def test_nothing_to_run_is_dockers_error(image):
    with pytest.raises(ContainerError) as err:
        resolve_command(image)
    assert err.value.message == "no command specified"
