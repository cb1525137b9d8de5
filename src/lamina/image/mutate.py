"""New images from old ones: pure functions that return a new config, or a config and manifest.

Values never change in place: each function takes an image config and returns another.

- ``append_layer``: a layer on top, its diff ID in ``rootfs`` and its step in ``history``.
- ``apply_changes``: ``--change`` lines (``docker import``/``commit``): the metadata
  instructions Docker allows there, read by the Dockerfile parser and applied in order, with
  variables expanded in the environment the config has at each step, as Docker does.
- ``assemble``: the config bytes and the OCI manifest of a new image.
"""
from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence
from types import MappingProxyType

from ..dockerfile import instructions as ins
from ..dockerfile.parser import parse
from ..dockerfile.shell import ShellLex
from ..errors import DockerfileError
from . import mediatypes as mt
from .config import ConfigError, ContainerConfig, Healthcheck, History, ImageConfig
from .descriptor import Descriptor
from .digest import sha256_digest
from .manifest import Manifest, build_manifest

# What ``--change`` may be: moby's validCommitCommands.
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                       "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
DEFAULT_SHELL = ("/bin/sh", "-c")


def append_layer(config: ImageConfig, diff_id: str, history: History) -> ImageConfig:
    """``config`` with one more layer on top, made by the step ``history`` describes."""
    if history.empty_layer:
        raise ValueError("the history entry of a layer cannot be an empty_layer one")
    rootfs = dataclasses.replace(config.rootfs, diff_ids=(*config.rootfs.diff_ids, diff_id))
    return dataclasses.replace(config, rootfs=rootfs, history=(*config.history, history))


def apply_changes(config: ImageConfig, changes: Sequence[str]) -> ImageConfig:
    """``config`` with Dockerfile instructions applied, as ``docker import --change`` does.

    The lines are read as one Dockerfile (so a parse error names ``--change`` and the line,
    which is the change's position). Raises DockerfileError for a line Docker would refuse.
    """
    if not changes:
        return config
    parsed = parse("\n".join(changes), file="--change")
    nodes = parsed.root.children
    for node in nodes:
        if node.value.upper() not in CHANGE_INSTRUCTIONS:
            raise DockerfileError(f"{node.value} is not a valid change command",
                                  file="--change", line=node.start_line,
                                  hint="--change takes " + ", ".join(CHANGE_INSTRUCTIONS))
    lex = ShellLex(parsed.escape_token)
    container = config.config or ContainerConfig()
    cmd_set = False  # ENTRYPOINT clears CMD, unless a CMD came before it in the same changes
    for node in nodes:
        instruction = ins.parse_instruction(node, file="--change")
        env = container.env or ()
        try:
            instruction = instruction.expand(lambda word: lex.process_word(word, env))
        except DockerfileError as err:
            raise err.at("--change", node.start_line) from None
        if isinstance(instruction, ins.Entrypoint) and not cmd_set:
            container = dataclasses.replace(container, cmd=None)
        container = _apply(container, instruction)
        cmd_set = cmd_set or (isinstance(instruction, ins.Cmd) and bool(instruction.cmd_line))
    return dataclasses.replace(config, config=container)


def assemble(config: ImageConfig | bytes, layers: Sequence[Descriptor]) -> tuple[bytes, Manifest]:
    """The config bytes and OCI manifest of a new image with ``layers`` (bottom first).

    An ``ImageConfig`` is written as canonical JSON; raw bytes are kept as they are, so an
    image read from elsewhere keeps its ID (the digest of its config).
    """
    raw = config.to_json() if isinstance(config, ImageConfig) else config
    parsed = config if isinstance(config, ImageConfig) else ImageConfig.parse(raw)
    if len(parsed.rootfs.diff_ids) != len(layers):
        raise ConfigError(f"the config lists {len(parsed.rootfs.diff_ids)} layers (diff IDs) but "
                          f"the image has {len(layers)}",
                          hint="give one layer per diff ID, bottom layer first")
    config_desc = Descriptor(mt.OCI_CONFIG, sha256_digest(raw), len(raw))
    return raw, build_manifest(config_desc, layers)


def _apply(c: ContainerConfig, i: ins.Instruction) -> ContainerConfig:
    """One metadata instruction, already expanded, applied as Docker's dispatchers do."""
    replace = dataclasses.replace
    if isinstance(i, ins.Cmd):
        return replace(c, cmd=_command(c, i.cmd_line, i.prepend_shell))
    if isinstance(i, ins.Entrypoint):
        return replace(c, entrypoint=_command(c, i.cmd_line, i.prepend_shell))
    if isinstance(i, ins.Env):
        env = list(c.env or ())
        for key, value in i.pairs:
            entry = f"{key}={value}"
            at = next((n for n, e in enumerate(env) if e.partition("=")[0] == key), None)
            if at is None:
                env.append(entry)
            else:
                env[at] = entry
        return replace(c, env=tuple(env))
    if isinstance(i, ins.Expose):
        ports = {port for spec in i.port_specs() for port in spec.ports()}
        return replace(c, exposed_ports=tuple(sorted(ports | set(c.exposed_ports or ()))))
    if isinstance(i, ins.Label):
        return replace(c, labels=MappingProxyType({**(c.labels or {}), **dict(i.pairs)}))
    if isinstance(i, ins.Onbuild):
        return replace(c, on_build=(*(c.on_build or ()), i.expression))
    if isinstance(i, ins.User):
        return replace(c, user=i.user)
    if isinstance(i, ins.Volume):
        if "" in i.volumes:
            raise i.error("VOLUME specified can not be an empty string")
        return replace(c, volumes=tuple(sorted(set(i.volumes) | set(c.volumes or ()))))
    if isinstance(i, ins.Workdir):
        if not i.path:
            raise i.error("WORKDIR requires a path", hint="give the folder, like WORKDIR /app")
        # A relative WORKDIR continues from the current one; Docker cleans only that case.
        path = i.path if i.path.startswith("/") else posixpath.normpath(
            posixpath.join("/", c.working_dir or "", i.path))
        return replace(c, working_dir=path)
    if isinstance(i, ins.StopSignal):
        _check_signal(i)
        return replace(c, stop_signal=i.signal)
    if isinstance(i, ins.Healthcheck):
        # Docker omits the zero values: they mean "use the default".
        return replace(c, healthcheck=Healthcheck(
            test=i.test, interval=i.interval or None, timeout=i.timeout or None,
            start_period=i.start_period or None, start_interval=i.start_interval or None,
            retries=i.retries or None))
    raise i.error(f"{i.keyword} cannot change an image config",
                  hint="only " + ", ".join(CHANGE_INSTRUCTIONS) + " can")


def _command(c: ContainerConfig, line: tuple[str, ...], prepend_shell: bool) -> tuple[str, ...]:
    """CMD/ENTRYPOINT: the shell form runs through the image's SHELL (default /bin/sh -c)."""
    if prepend_shell and line:
        return (*(c.shell or DEFAULT_SHELL), *line)
    return line


def _check_signal(i: ins.StopSignal) -> None:
    """Docker's ParseSignal: a number above 0, or a name with or without SIG, any case."""
    import signal   # here: only STOPSIGNAL needs it (its enums cost every build 0.4 ms)

    text = i.signal
    if text.isdigit():
        if int(text) > 0:
            return
    elif "SIG" + text.upper().removeprefix("SIG") in signal.Signals.__members__:
        return
    raise i.error(f"Invalid signal: {text}", hint="use a signal name like SIGTERM, or its number")
