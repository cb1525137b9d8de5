"""Typed instructions: behaviour the upstream vectors do not cover."""
from __future__ import annotations

import pytest

from lamina.dockerfile.instructions import (
    Add, ArgSpec, Cmd, Copy, Entrypoint, Env, Expose, From, Healthcheck, Label, Onbuild, Run,
    Shell, Volume, parse_instruction,
)
from lamina.dockerfile.values import Mount, PortSpec, parse_duration, parse_mount, parse_port_spec
from lamina.errors import DockerfileError

parser = pytest.importorskip("lamina.dockerfile.parser")


def one(text: str, file: str = "Dockerfile"):
    """The typed form of the last instruction of ``text``."""
    return parse_instruction(parser.parse(text).root.children[-1], file)


def error_of(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        one(text)
    return info.value


def mount_error(spec: str) -> str:
    with pytest.raises(DockerfileError) as info:
        parse_mount(spec)
    return info.value.message


def upper(word: str) -> str:
    return word.upper()


# -- RUN --mount ----------------------------------------------------------------------------------

def test_bind_mount_is_the_default_type_and_read_only():
    m = parse_mount("target=/src,source=app,from=build")
    assert m == Mount("bind", target="/src", source="app", from_="build", read_only=True)


def test_bind_mount_read_write_forms():
    assert not parse_mount("target=/src,rw").read_only
    assert not parse_mount("target=/src,readwrite=true").read_only
    assert parse_mount("target=/src,rw=0").read_only
    assert parse_mount("dst=/src,ro=True").read_only


def test_cache_mount_is_writable_and_shared_by_default():
    m = parse_mount("type=cache,target=/root/.cache")
    assert (m.type, m.read_only, m.sharing) == ("cache", False, "shared")


def test_cache_mount_options():
    m = parse_mount("type=cache,id=pip,target=/c,sharing=LOCKED,mode=0755,uid=1000,gid=1001")
    assert (m.id, m.sharing, m.mode, m.uid, m.gid) == ("pip", "locked", 0o755, 1000, 1001)


def test_tmpfs_mount_size_in_bytes():
    m = parse_mount("type=tmpfs,destination=/tmp,size=64m")
    assert (m.type, m.target, m.read_only, m.size) == ("tmpfs", "/tmp", False, 64 * 1024**2)


def test_secret_mount():
    m = parse_mount("type=secret,id=npmrc,target=/root/.npmrc,required,mode=0400")
    assert (m.type, m.id, m.target, m.required, m.mode, m.read_only) == (
        "secret", "npmrc", "/root/.npmrc", True, 0o400, True)
    assert parse_mount("type=secret,id=token,env=TOKEN").env == "TOKEN"


def test_ssh_mount():
    assert parse_mount("type=ssh") == Mount("ssh", read_only=True)
    assert parse_mount("type=ssh,id=github,required=false").required is False


def test_mount_options_may_come_before_the_type():
    assert parse_mount("required,type=secret,id=x").required
    assert parse_mount("size=1g,type=tmpfs,target=/t").size == 1024**3


@pytest.mark.parametrize("spec, message", [
    ("type=volume", 'unsupported mount type "volume"'),
    ("type=cache,target", "invalid field 'target' must be a key=value pair"),
    ("type=cache,targte=/x", "unexpected key 'targte' in 'targte=/x'"),
    ("target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=cache,target=/x,sharing=everyone", 'unsupported sharing value "everyone"'),
    ("type=cache,target=/x,mode=0999", "invalid value 0999 for mode"),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("type=cache,target=/x,gid=4294967296", "invalid value 4294967296 for gid"),
    ("target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,target=/x,uid=0", 'uid not allowed for "tmpfs" type mounts'),
    ("target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=cache,target=/x,size=1m", "unexpected key 'size' for mount type 'cache'"),
    ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
    ("target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
    ("type=secret,id=a,sharing=locked", "secret mount should not define sharing"),
    ("type=secret,id=a,from=stage", "secret mount should not have a from"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=cache,from=$STAGE,target=/x", "'from' doesn't support variable expansion, "
                                         "define alias stage instead"),
    ("", "failed to parse csv mounts: empty value"),
])
def test_mount_errors(spec, message):
    assert mount_error(spec) == message


def test_mount_errors_suggest_the_nearest_word():
    with pytest.raises(DockerfileError) as info:
        parse_mount("type=cahce")
    assert info.value.hint == "did you mean cache?"
    with pytest.raises(DockerfileError) as info:
        parse_mount("type=cache,traget=/x")
    assert info.value.hint == "did you mean target?"


def test_mount_values_with_variables_wait_for_expansion():
    run = one("FROM a\nRUN --mount=type=$KIND,target=$HOME/.cache,uid=${UID} make")
    assert run.mounts[0].target == "$HOME/.cache"   # text kept; typed values not read yet
    env = {"KIND": "cache", "HOME": "/root", "UID": "1000"}
    expanded = run.expand(lambda w: w.replace("${UID}", env["UID"]).replace(
        "$KIND", env["KIND"]).replace("$HOME", env["HOME"]))
    assert expanded.mounts == (Mount("cache", target="/root/.cache", read_only=False,
                                     sharing="shared", uid=1000),)


def test_mount_errors_after_expansion_point_at_the_instruction():
    run = one("FROM a\n\nRUN --mount=type=cache,target=/c,uid=$U make")
    with pytest.raises(DockerfileError) as info:
        run.expand(lambda w: w.replace("$U", "nobody"))
    assert info.value.message == "invalid value nobody for uid"
    assert (info.value.line, info.value.column) == (3, 1)


def test_mount_from_may_end_with_a_dollar():
    # Only "$" followed by something is a variable.
    assert parse_mount("from=stage$,target=/x").from_ == "stage$"


# -- RUN flags ------------------------------------------------------------------------------------

def test_run_defaults():
    run = one("FROM a\nRUN make")
    assert run == Run(("make",), True)
    assert (run.network, run.security, run.mounts, run.devices) == ("default", "sandbox", (), ())


def test_run_network_security_and_devices():
    run = one("FROM a\nRUN --network=none --security=insecure --device=nvidia.com/gpu=all x")
    assert (run.network, run.security) == ("none", "insecure")
    assert run.devices[0].name == "nvidia.com/gpu=all"
    assert set(run.flags_used) == {"network", "security", "device"}


@pytest.mark.parametrize("flag, message", [
    ("--network=bridge", 'invalid network mode "bridge"'),
    ("--network=", 'invalid network mode ""'),
    ("--security=privileged", 'security "privileged" is not valid'),
    ("--mnt=type=cache", "unknown flag: --mnt"),
])
def test_run_flag_errors(flag, message):
    assert error_of(f"FROM a\nRUN {flag} x").message == message


def test_unknown_flag_suggests_the_nearest_flag():
    assert error_of("FROM a\nRUN --mnt=type=cache x").hint == "did you mean --mount?"


def test_exec_form_run():
    run = one('FROM a\nRUN ["echo", "$HOME"]')
    assert (run.cmd_line, run.prepend_shell) == (("echo", "$HOME"), False)


# -- expansion ------------------------------------------------------------------------------------

def test_expand_leaves_command_bodies_alone():
    run = one("FROM a\nRUN echo $x <<EOF\n$x\nEOF")
    expanded = run.expand(upper)
    assert expanded.cmd_line == run.cmd_line and expanded.files == run.files
    for text in ("CMD echo $x", "ENTRYPOINT echo $x", 'SHELL ["sh", "$x"]',
                 "HEALTHCHECK CMD echo $x", "ONBUILD RUN echo $x", "MAINTAINER $x"):
        instruction = one("FROM a\n" + text)
        assert instruction.expand(upper) is instruction


def test_expand_copy():
    copy = one("FROM a\nCOPY --from=$s --chown=$u --chmod=$m --exclude=$e $src <<EOF $dst\n$x\nEOF")
    expanded = copy.expand(upper, heredoc_fn=str.title)
    assert (expanded.from_, expanded.chown, expanded.chmod) == ("$S", "$U", "$M")
    assert (expanded.sources, expanded.dest) == (("$SRC",), "$DST")
    assert expanded.exclude == ("$e",)          # Docker takes --exclude literally
    assert expanded.source_contents[0].data == "$X\n"
    assert copy.expand(upper).source_contents == copy.source_contents


def test_expand_skips_quoted_heredocs():
    copy = one("FROM a\nCOPY <<'EOF' /dst\n$x\nEOF")
    assert copy.expand(upper, heredoc_fn=upper).source_contents[0].data == "$x\n"


def test_expand_add():
    add = one("FROM a\nADD --checksum=$sum --keep-git-dir --unpack=false $url /d")
    expanded = add.expand(upper)
    assert (expanded.checksum, expanded.sources, expanded.keep_git_dir, expanded.unpack) == (
        "$SUM", ("$URL",), True, False)
    assert one("FROM a\nADD x /d").unpack is None


def test_expand_from_keeps_the_stage_name():
    stage = one("FROM --platform=$p $image AS Build")
    assert stage == From("$image", "build", "$p")
    assert stage.expand(upper) == From("$IMAGE", "build", "$P")


def test_expand_env_label_arg():
    assert one("FROM a\nENV $k=$v").expand(upper).pairs == (("$K", "$V"),)
    assert one("FROM a\nLABEL $k=$v").expand(upper).pairs == (("$K", "$V"),)
    arg = one("FROM a\nARG a=$v b")
    assert arg.expand(upper).args == (ArgSpec("A", "$V"), ArgSpec("B", None))


def test_expand_single_value_instructions():
    for text, attr in (("USER $u", "user"), ("WORKDIR $w", "path"),
                       ("STOPSIGNAL $s", "signal")):
        assert getattr(one("FROM a\n" + text).expand(upper), attr) == text.split()[1].upper()
    assert one('FROM a\nVOLUME ["$a", "$b"]').expand(upper).volumes == ("$A", "$B")


def test_expand_expose_splits_words():
    expose = one("FROM a\nEXPOSE $ports 22")
    assert expose.expand(lambda w: "80 443/udp" if w == "$ports" else w).ports == (
        "80", "443/udp", "22")


# -- EXPOSE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, spec", [
    ("80", PortSpec(80, 80, "tcp")),
    ("53/udp", PortSpec(53, 53, "udp")),
    ("53/UDP", PortSpec(53, 53, "udp")),
    ("8000-8010/tcp", PortSpec(8000, 8010, "tcp")),
    ("9/sctp", PortSpec(9, 9, "sctp")),
    ("80/", PortSpec(80, 80, "tcp")),
    ("127.0.0.1:8080:80/udp", PortSpec(80, 80, "udp")),
])
def test_port_specs(text, spec):
    assert parse_port_spec(text) == spec


@pytest.mark.parametrize("text", ["", "http", "80/http", "70000", "10-5", "80-", "-80", "1_000",
                                  "80/tcp/x", "+80"])
def test_bad_port_specs(text):
    with pytest.raises(DockerfileError) as info:
        parse_port_spec(text)
    assert info.value.message.startswith("invalid ")


def test_port_ranges_expand_to_one_key_per_port():
    assert parse_port_spec("8000-8002").ports() == ["8000/tcp", "8001/tcp", "8002/tcp"]
    assert str(parse_port_spec("8000-8002")) == "8000-8002/tcp"


def test_expose_keeps_ports_as_written_and_reports_bad_ones_at_the_instruction():
    expose = one("FROM a\n  EXPOSE 443 80/tcp bad", file="app.Dockerfile")
    assert expose == Expose(("443", "80/tcp", "bad"))
    with pytest.raises(DockerfileError) as info:
        expose.port_specs()
    assert str(info.value).startswith('app.Dockerfile:2:3: invalid port "bad"')


# -- HEALTHCHECK ----------------------------------------------------------------------------------

def test_healthcheck_shell_and_exec_forms():
    assert one("FROM a\nHEALTHCHECK CMD curl -f http://localhost/").test == (
        "CMD-SHELL", "curl -f http://localhost/")
    assert one('FROM a\nHEALTHCHECK CMD ["curl", "-f", "x"]').test == ("CMD", "curl", "-f", "x")
    assert one("FROM a\nHEALTHCHECK none").test == ("NONE",)


def test_healthcheck_options():
    check = one("FROM a\nHEALTHCHECK --interval=1m30s --timeout=10s --start-period=0 "
                "--start-interval=500ms --retries=5 CMD true")
    second = 1_000_000_000
    assert check == Healthcheck(("CMD-SHELL", "true"), 90 * second, 10 * second, 0,
                                second // 2, 5)


@pytest.mark.parametrize("text, message", [
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CHECK x", 'Unknown type "CHECK" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=three CMD x", 'invalid value for --retries: "three"'),
    ("HEALTHCHECK --timeout=10 CMD x", 'invalid duration "10" for --timeout'),
    ("HEALTHCHECK --timeout=-5s CMD x", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --interval=1s --interval=2s CMD x", "duplicate flag specified: --interval"),
])
def test_healthcheck_errors(text, message):
    assert error_of("FROM a\n" + text).message == message


@pytest.mark.parametrize("text, nanos", [
    ("0", 0), ("-0", 0), ("1ns", 1), ("1.5us", 1500), ("1\u00b5s", 1000), ("2ms", 2_000_000),
    (".5s", 500_000_000), ("1h2m3s", 3_723_000_000_000), ("-1s", -1_000_000_000),
])
def test_go_durations(text, nanos):
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "1", "s", ".s", "1sec", "1m30", "1e3s", "3000000h"])
def test_bad_go_durations(text):
    with pytest.raises(DockerfileError):
        parse_duration(text)


# -- the other instructions -----------------------------------------------------------------------

def test_copy_flags():
    copy = one("FROM a\nCOPY --from=build --parents --link --exclude=*.md --exclude=.git "
               "--chmod=644 a b /dst/")
    assert copy == Copy(("a", "b"), "/dst/", chmod="644", link=True,
                        exclude=("*.md", ".git"), from_="build", parents=True)
    assert error_of("FROM a\nCOPY --chown=a --chown=b x y").message == (
        "duplicate flag specified: --chown")
    assert error_of("FROM a\nCOPY --link=maybe x y").message == (
        "expecting boolean value for flag --link, not: maybe")


def test_copy_json_form_sources_are_paths():
    copy = one('FROM a\nCOPY ["<<EOF", "/dst"]')
    assert (copy.sources, copy.source_contents) == (("<<EOF",), ())


def test_add_rejects_copy_only_flags():
    assert error_of("FROM a\nADD --from=x a b").message == "unknown flag: --from"
    assert isinstance(one("FROM a\nADD --keep-git-dir=true https://x/y.git /src"), Add)


def test_env_and_label_forms():
    assert one("FROM a\nENV A=1 B=\"two words\"") == Env((("A", "1"), ("B", '"two words"')))
    assert one("FROM a\nENV PATH /usr/bin:/bin") == Env((("PATH", "/usr/bin:/bin"),), legacy=True)
    assert one("FROM a\nLABEL version=1") == Label((("version", "1"),))


def test_arg_defaults():
    assert one("FROM a\nARG A B=2 C=").args == (ArgSpec("A"), ArgSpec("B", "2"), ArgSpec("C", ""))
    assert error_of("FROM a\nARG =x").message == "ARG names can not be blank"


def test_volume_forms():
    assert one("FROM a\nVOLUME /a /b") == Volume(("/a", "/b"))
    assert one('FROM a\nVOLUME ["/a", "/b c"]') == Volume(("/a", "/b c"))
    assert error_of('FROM a\nVOLUME ["/a", " "]').message == (
        "VOLUME specified can not be an empty string")


def test_shell_needs_json():
    assert one('FROM a\nSHELL ["/bin/bash", "-c"]') == Shell(("/bin/bash", "-c"))
    err = error_of("FROM a\nSHELL /bin/bash -c")
    assert err.message == "SHELL requires the arguments to be in JSON form"
    assert "JSON array" in err.hint
    assert error_of("FROM a\nSHELL []").message == "SHELL requires at least one argument"


def test_cmd_and_entrypoint():
    assert one("FROM a\nCMD echo hi") == Cmd(("echo hi",), True)
    assert one('FROM a\nCMD ["a", "b"]') == Cmd(("a", "b"), False)
    assert one("FROM a\nENTRYPOINT []") == Entrypoint((), False)


def test_onbuild_keeps_the_trigger_text_with_heredocs():
    assert one("FROM a\nonbuild RUN echo hi") == Onbuild("RUN echo hi")
    assert one("FROM a\nONBUILD COPY <<EOF /x\nhi\nEOF").expression == "COPY <<EOF /x\nhi\nEOF"
    assert error_of("FROM a\nONBUILD MAINTAINER me").message == (
        "MAINTAINER isn't allowed as an ONBUILD trigger")


def test_unknown_instruction_suggests_the_nearest():
    err = error_of("FROM a\nRUNN make")
    assert (err.message, err.hint) == ("unknown instruction: RUNN", "did you mean RUN?")
    assert error_of("FROM a\nXYZZY").hint is None


def test_errors_point_at_the_instruction():
    with pytest.raises(DockerfileError) as info:
        one("FROM a\n\n   COPY onlyone", file="build/Dockerfile.dev")
    assert (info.value.file, info.value.line, info.value.column) == ("build/Dockerfile.dev", 3, 4)


def test_instructions_keep_their_node_but_compare_by_meaning():
    a, b = one("FROM a\nUSER bob"), one("FROM a\n\nUSER   bob")
    assert a == b and hash(a) == hash(b)
    assert (a.line, b.line, a.original) == (2, 3, "USER bob")
    assert a.error("no such user").location() == "Dockerfile:2:1"


def test_stage_doc_comment():
    stage = one("# build compiles everything\nFROM golang AS build")
    assert stage.doc_comment == "compiles everything"


def test_mount_last_required_wins():
    assert parse_mount("type=secret,id=x,required,required=false").required is False
    assert mount_error("target=/x,required=false") == (
        "unexpected key 'required' for mount type 'bind'")


def test_mount_text_values_with_variables_skip_cross_checks_until_expanded():
    # ${S:-} may expand to nothing, so "both source and id" cannot be decided yet.
    m = parse_mount("type=secret,id=x,source=${S:-}")
    assert m.source == "${S:-}"
    assert parse_mount(m.spec, lambda w: "" if w == "${S:-}" else w).source == ""
