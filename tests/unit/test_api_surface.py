"""The Python API as a user meets it: one function per command, every name at ``lamina.NAME``
and ``lamina.api.NAME``, typed results, LaminaError errors, cheap to import, documented."""
from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lamina
import lamina.api
import lamina.testing
from lamina.cli.main import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"

# Every command of the CLI (group subcommands as "group sub"), and the API functions that do
# what it does. A command added to the CLI must be added here, with its function.
COMMAND_API = {
    "lint": ["lint"], "build": ["build"], "builder prune": ["prune_cache"],
    "images": ["images"], "image ls": ["images"], "history": ["history"],
    "image history": ["history"], "inspect": ["inspect", "inspect_container"],
    "image inspect": ["inspect"], "tag": ["tag"], "image tag": ["tag"], "rmi": ["remove"],
    "image rm": ["remove"], "image prune": ["prune"], "image analyze": ["analyze", "evaluate"],
    "image verify": ["verify"], "system df": ["disk_usage"], "system check": ["check"],
    "system info": ["info"], "info": ["info"],
    "save": ["save"], "load": ["load"], "import": ["import_image"],
    "bootstrap": ["bootstrap_busybox", "bootstrap_debian"],
    "pull": ["pull", "pull_all_tags", "remote_tags"], "push": ["push", "push_all_tags"],
    "login": ["login"], "logout": ["logout"],
    "run": ["run", "create_container", "start_container"], "create": ["create_container"],
    "start": ["start_container", "container_logs", "wait_container"],
    "stop": ["stop_container"], "restart": ["restart_container"], "kill": ["kill_container"],
    "wait": ["wait_container"], "rm": ["remove_container"], "ps": ["list_containers"],
    "logs": ["container_logs"], "port": ["container_port"], "exec": ["exec_run"],
    "cp": ["copy_to_container", "copy_from_container"], "export": ["export_container"],
    "commit": ["commit_container"],
    "container inspect": ["inspect_container"], "container prune": ["prune_containers"],
    "volume create": ["create_volume"], "volume ls": ["list_volumes"],
    "volume inspect": ["inspect_volume"], "volume rm": ["remove_volume"],
    "volume prune": ["prune_volumes"],
}
# The container group repeats top-level commands under these names.
CONTAINER_GROUP = {"ls": "ps", "commit": "commit", "cp": "cp", "export": "export",
                   "create": "create", "exec": "exec", "kill": "kill", "logs": "logs",
                   "port": "port", "restart": "restart", "rm": "rm", "run": "run",
                   "start": "start", "stop": "stop", "wait": "wait"}


def _commands() -> list[str]:
    """Every command and group subcommand of the CLI parser, aliases left out."""
    found = []
    for name, sub in build_parser().commands().items():
        subs = sub.commands()
        found += [f"{name} {s}" for s in subs] if subs else [name]
    return found


def _public_functions() -> list[str]:
    return [n for n in lamina.api.__all__ if inspect.isfunction(getattr(lamina.api, n))]


def test_every_command_has_its_api_function():
    missing = []
    for command in _commands():
        group, _, sub = command.partition(" ")
        key = CONTAINER_GROUP.get(sub, command) if group == "container" and sub in \
            CONTAINER_GROUP else command
        if key not in COMMAND_API:
            missing.append(command)
            continue
        for name in COMMAND_API[key]:
            assert name in lamina.api.__all__, f"{command}: lamina.api.{name} is missing"
            assert callable(getattr(lamina.api, name))
    assert missing == [], (f"commands without an API function: {missing}; add the function "
                           "to lamina.api and the command to COMMAND_API")


def test_every_name_is_the_same_at_lamina_and_lamina_api():
    for name in lamina.api.__all__:
        assert getattr(lamina, name) is getattr(lamina.api, name), name
        assert name in dir(lamina) and name in lamina.__all__
    with pytest.raises(AttributeError, match="no attribute 'no_such_function'"):
        lamina.no_such_function


def test_results_are_dataclasses_and_errors_are_lamina_errors():
    for name in lamina.api.__all__:
        value = getattr(lamina.api, name)
        if not inspect.isclass(value) or value is lamina.Store:
            continue
        if issubclass(value, BaseException):
            assert issubclass(value, lamina.LaminaError), name
        else:
            assert dataclasses.is_dataclass(value), f"{name} is not a dataclass"


def test_names_stay_functions_when_submodules_of_the_same_name_are_imported():
    code = ("import lamina, lamina.build.builder, lamina.api.images, lamina.api.check\n"
            "import lamina.api.build\n"
            "from lamina.build.progress import PlainProgress\n"
            "assert callable(lamina.build) and lamina.build is lamina.api.build\n"
            "assert callable(lamina.api.images) and lamina.images is lamina.api.images\n"
            "assert callable(lamina.api.check) and lamina.check is lamina.api.check\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", ["lamina", "lamina.api", "lamina.testing"])
def test_importing_is_cheap(module):
    """``import lamina`` loads none of the heavy parts; a function loads its own on first use."""
    heavy = ("lamina.build.", "lamina.runtime.", "lamina.registry.", "lamina.store.",
             "lamina.layer.", "lamina.dockerfile.", "lamina.image.", "lamina.cli.")
    code = (f"import sys, {module}\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('lamina'))))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert [m for m in out if m.startswith(heavy) or m + "." in heavy] == []


def test_a_function_imports_its_module_on_first_use():
    code = ("import sys, lamina\n"
            "assert 'lamina.dockerfile.lint' not in sys.modules\n"
            "assert lamina.lint('FROM scratch\\n').problems == []\n"
            "assert 'lamina.dockerfile.lint' in sys.modules\n"
            "assert 'lamina.runtime.containers' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_function_is_documented_with_an_example():
    text = DOCS.read_text()
    sections = dict(re.findall(r"^### (.+?)\n(.*?)(?=^##)", text + "\n##", re.M | re.S))
    names = [*_public_functions(), "temporary_store", "random_image", "make_image",
             "image_files", "FakeRegistry", "FaultProxy"]
    for name in names:
        title = next((t for t in sections if re.match(rf"{re.escape(name)}\b", t)), None)
        assert title is not None, f"docs/api.md has no '### {name}' section"
        body = sections[title]
        assert re.search(rf"^{re.escape(name)}\(", body, re.M), \
            f"docs/api.md, {name}: no signature"
        assert "```python" in body, f"docs/api.md, {name}: no example"


def test_testing_names_resolve_lazily():
    for name in lamina.testing.__all__:
        assert getattr(lamina.testing, name) is not None
    with pytest.raises(AttributeError):
        lamina.testing.no_such_fake
