"""Container records, names, lookups, locks, logs and the pure parts of the container commands
(no runtime needed: the real lifecycle is in tests/e2e/test_run_*.py)."""
from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lamina.cli.ps import command_text, ports_text, status_text
from lamina.cli.run import environment, parse_mount, read_env_file
from lamina.errors import LaminaError, UsageError
from lamina.runtime import containers as containers_module
from lamina.runtime.containers import (Container, ContainerConflictError, ContainerStore,
                                       LogWriter, NoSuchContainerError, new_id, now,
                                       parse_extra_host, parse_signal, read_log, run_lowers)
from lamina.runtime.errors import ContainerError
from lamina.runtime.monitor import _with_extra_hosts
from lamina.runtime.network import LOCALHOST_ENTRIES, NetworkAttachment
from lamina.runtime.options import RunOptions
from lamina.runtime.ports import PortMapping


def record(name: str = "", **changes) -> Container:
    base = Container(id=new_id(), name=name, image="busybox", image_id="sha256:" + "1" * 64,
                     image_digest="sha256:" + "2" * 64, created=now(), argv=("sleep", "9"),
                     image_config={"Env": ["PATH=/bin"]},
                     options=json.loads(json.dumps(dataclasses.asdict(RunOptions()))))
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(tmp_path) -> ContainerStore:
    return ContainerStore(tmp_path)


# --- records and lookups ----------------------------------------------------------------------

def test_record_round_trips_through_json():
    c = record("web", publish=(PortMapping(8080, host_port=80).to_json(),), lowers=("/a", "/b"),
               extra_hosts=("db:10.0.0.1",), network={"ports": [PortMapping(80).to_json()]})
    again = Container.from_json(c.to_json())
    assert again == c
    assert again.run_options == RunOptions() and again.ports == (PortMapping(80),)


def test_create_names_and_finds_by_name_id_and_prefix(store):
    a = store.create(record("alpha"))
    b = store.create(record())
    assert b.name and b.name != "alpha" and "_" in b.name       # adjective_noun
    assert store.get("alpha") == a and store.get("/alpha") == a
    assert store.get(a.id) == a and store.get(b.id[:10]) == b
    assert [c.id for c in store.list()] == [b.id, a.id]         # newest first
    with pytest.raises(NoSuchContainerError) as missing:
        store.get("nope")
    assert missing.value.exit_code == 1 and "No such container: nope" in str(missing.value)


def test_an_ambiguous_prefix_and_a_taken_name_are_refused(store):
    first = store.create(record("one", id="ab" + "0" * 62))
    store.create(record("two", id="ab" + "1" * 62))
    with pytest.raises(ContainerConflictError, match="multiple IDs found with provided prefix"):
        store.get("ab")
    assert store.get("ab0") == first
    with pytest.raises(ContainerError, match='The container name "/one" is already in use'):
        store.create(record("one"))


def test_update_writes_a_new_record(store):
    c = store.create(record("w"))
    updated = store.update(c.id, status="running", pid=42)
    assert (updated.status, updated.pid) == ("running", 42)
    assert store.load(c.id) == updated and c.status == "created"
    with pytest.raises(NoSuchContainerError):
        store.update(new_id(), status="running")


def test_delete_removes_the_directory_and_the_gc_root(tmp_path):
    from lamina.store import Roots, Store
    containers = ContainerStore(tmp_path, Store.open(tmp_path))
    c = containers.create(record("gone"))
    containers.store.roots.put("container-" + c.id, Roots(images=frozenset({c.image_digest})))
    containers.delete(c)
    assert containers.load(c.id) is None
    assert not (tmp_path / "roots" / f"container-{c.id}.json").exists()


# --- the monitor lock --------------------------------------------------------------------------

def test_lock_tells_supervised_and_wait_gets_the_code(store):
    c = store.create(record("sup"))
    assert not store.supervised(c.id)
    held = store.lock(c.id)
    assert held is not None
    assert store.supervised(c.id) and store.lock(c.id) is None
    assert store.wait(c.id, timeout=0.05) is None          # still held
    store.update(c.id, status="exited", exit_code=3)
    os.close(held)
    assert store.wait(c.id) == 3


def test_wait_reads_the_code_from_the_lock_file_when_the_record_went(store):
    c = store.create(record("rm"))
    held = store.lock(c.id)
    os.pwrite(held, b"9\n", 0)
    lock_copy = os.open(store.path(c.id) / "monitor.lock", os.O_RDONLY)
    os.close(held)
    (store.path(c.id) / "state.json").unlink()             # as --rm does
    assert store.wait(c.id) == 9
    os.close(lock_copy)


def test_sweep_cleans_unsupervised_running_containers_and_their_networks(store, monkeypatch):
    cleaned, released = [], []
    monkeypatch.setattr(ContainerStore, "_clean_up", lambda self, c: cleaned.append(c.name))
    monkeypatch.setattr(ContainerStore, "_has_leftovers", lambda self, c: False)
    monkeypatch.setattr("lamina.runtime.network.cleanup_stale",
                        lambda root, live_container_ids: released.append(set(live_container_ids)))
    dead = store.create(record("dead", status="running"))
    alive = store.create(record("alive", status="running"))
    store.create(record("stopped", status="exited"))
    orphan = new_id()                                       # its container is gone
    (store.root / "networks").mkdir()
    for cid in (dead.id, alive.id, orphan):
        (store.root / "networks" / f"{cid}.json").write_text("{}")
    held = store.lock(alive.id)
    try:
        assert store.sweep() == [dead.id]
    finally:
        os.close(held)
    assert cleaned == ["dead"] and released == [{alive.id}]


# --- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, number", [("TERM", 15), ("SIGKILL", 9), ("usr1", 10), ("9", 9),
                                          (2, 2)])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["NOPE", "0", "999", ""])
def test_parse_signal_refuses_unknown_ones(bad):
    with pytest.raises(ContainerError, match="invalid signal"):
        parse_signal(bad)


def test_parse_extra_host():
    assert parse_extra_host("db:10.0.0.1") == ("db", "10.0.0.1")
    assert parse_extra_host("db=10.0.0.1") == ("db", "10.0.0.1")
    assert parse_extra_host("v6:::1") == ("v6", "::1")
    assert parse_extra_host("gw:host-gateway") == ("gw", "host-gateway")
    for bad in ("nocolon", "db:", "db:not-an-ip"):
        with pytest.raises(ContainerError):
            parse_extra_host(bad)


def test_extra_hosts_go_between_localhost_and_the_containers_own_line():
    bridge = NetworkAttachment("x", "bridge", "/run/netns/x", ip_address="10.90.0.2",
                               gateway="10.90.0.1",
                               hosts_entries=LOCALHOST_ENTRIES + ("10.90.0.2\tx",))
    hosts = _with_extra_hosts(bridge, ("db:10.0.0.5", "host:host-gateway")).hosts_entries
    assert hosts == LOCALHOST_ENTRIES + ("10.0.0.5\tdb", "10.90.0.1\thost", "10.90.0.2\tx")
    none = NetworkAttachment("x", "none", "/run/netns/x", hosts_entries=LOCALHOST_ENTRIES)
    assert _with_extra_hosts(none, ("h:host-gateway",)).hosts_entries[-1] == "127.0.0.1\th"


def test_parse_mount(tmp_path):
    assert parse_mount(f"type=bind,source={tmp_path},target=/data") == \
        ("bind", f"{tmp_path}:/data")
    assert parse_mount(f"type=bind,src={tmp_path},dst=/d,readonly,bind-propagation=rshared") \
        == ("bind", f"{tmp_path}:/d:ro,rshared")
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770") == \
        ("tmpfs", "/t:size=1048576,mode=1770")
    assert parse_mount("type=tmpfs,destination=/t") == ("tmpfs", "/t")
    with pytest.raises(UsageError, match="bind source path does not exist"):
        parse_mount("type=bind,source=/no/such/path,target=/x")
    assert parse_mount("source=named,target=/x") == ("volume", "named:/x")
    with pytest.raises(UsageError, match="target is required"):
        parse_mount(f"type=bind,source={tmp_path}")
    with pytest.raises(UsageError, match="unknown key 'colour'"):
        parse_mount("type=tmpfs,target=/t,colour=red")


def test_env_file_and_env_flags(tmp_path, monkeypatch):
    path = tmp_path / "env"
    path.write_text("\ufeff# a comment\n  SPACED=kept as is \nQUOTED=\"q\"\n\nFROM_HOST\nUNSET\n")
    monkeypatch.setenv("FROM_HOST", "here")
    monkeypatch.setenv("SHELL_VAR", "shell")
    monkeypatch.delenv("UNSET", raising=False)
    assert read_env_file(str(path)) == ["SPACED=kept as is ", 'QUOTED="q"', "FROM_HOST=here"]
    assert environment([str(path)], ["QUOTED=flag", "SHELL_VAR", "UNSET"])[-3:] == \
        ["QUOTED=flag", "SHELL_VAR=shell", "UNSET"]
    path.write_text("BAD KEY=1\n")
    with pytest.raises(UsageError, match="invalid variable name"):
        read_env_file(str(path))
    with pytest.raises(UsageError, match="No such file"):
        read_env_file(str(tmp_path / "missing"))


# --- the log ----------------------------------------------------------------------------------

def test_log_lines_streams_partial_and_long_lines(tmp_path):
    log = tmp_path / "log"
    writer = LogWriter(log)
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"o\n" + b"x" * (LogWriter.MAX_LINE + 5))
    writer.close()
    entries, end = read_log(log)
    assert [(e.stream, e.text) for e in entries] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"),
        ("stdout", "x" * LogWriter.MAX_LINE), ("stdout", "xxxxx")]
    assert end == log.stat().st_size
    assert all(e.time.endswith("Z") and len(e.time) == 30 for e in entries)


def test_read_log_tail_and_follow_offsets(tmp_path):
    log = tmp_path / "log"
    writer = LogWriter(log)
    for i in range(5):
        writer.write("stdout", f"line {i}\n".encode())
    assert [e.text for e in read_log(log, tail=2)[0]] == ["line 3\n", "line 4\n"]
    assert read_log(log, tail=0)[0] == []
    assert len(read_log(log, tail=50)[0]) == 5
    _, offset = read_log(log, tail=0)
    with open(log, "ab") as f:      # a line still being written is left for the next read
        f.write(json.dumps({"log": "new\n", "stream": "stdout", "time": now()}).encode()
                + b"\n" + b'{"log": "half')
    entries, offset2 = read_log(log, offset=offset)
    assert [e.text for e in entries] == ["new\n"] and offset2 < log.stat().st_size
    assert read_log(tmp_path / "none") == ([], 0)
    writer.close()


# --- a container's directories across runs ----------------------------------------------------

def test_run_lowers_keeps_earlier_uppers_on_top_of_the_image(tmp_path):
    cdir = tmp_path / "c"
    for d in ("upper", "work/work", "merged", "bundle"):
        (cdir / d).mkdir(parents=True)
    (cdir / "upper" / "first").write_text("1")
    assert run_lowers(cdir, ("/img/top", "/img/base")) == [
        cdir / "layers" / "0", Path("/img/top"), Path("/img/base")]
    assert sorted(p.name for p in cdir.iterdir()) == ["layers"]
    (cdir / "upper").mkdir()
    assert run_lowers(cdir, ())[:2] == [cdir / "layers" / "1", cdir / "layers" / "0"]
    assert (cdir / "layers" / "0" / "first").read_text() == "1"


# --- ps ---------------------------------------------------------------------------------------

def test_command_text_quotes_and_cuts_like_docker():
    assert command_text(("sleep", "60"), False) == '"sleep 60"'
    assert command_text(("sh", "-c", "echo hi"), False) == '"sh -c \'echo hi\'"'
    assert command_text(("sh", "-c", "echo hi there you"), False) == '"sh -c \'echo hi ther…"'
    assert command_text(("sh", "-c", "echo hi there you"), True) == \
        '"sh -c \'echo hi there you\'"'


def test_status_text():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    assert status_text(record(), start) == "Created"
    running = record(status="running", started=stamp)
    assert status_text(running, start + timedelta(seconds=3)) == "Up 3 seconds"
    assert status_text(running, start) == "Up Less than a second"
    exited = record(status="exited", exit_code=137, finished=stamp)
    assert status_text(exited, start + timedelta(minutes=2)) == "Exited (137) 2 minutes ago"


def test_ports_text_groups_ranges_and_lists_exposed_ports():
    ports = [PortMapping(80, host_ip="127.0.0.1", host_port=8080),
             PortMapping(9000, "udp", "", 9000), PortMapping(9001, "udp", "", 9001)]
    c = record(status="running", network={"ports": [m.to_json() for m in ports]},
               image_config={"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}})
    assert ports_text(c) == "127.0.0.1:8080->80/tcp, 0.0.0.0:9000-9001->9000-9001/udp, 443/tcp"
    assert ports_text(dataclasses.replace(c, status="exited")) == ""


def test_errors_are_lamina_errors_with_dockers_codes():
    assert issubclass(NoSuchContainerError, LaminaError) and NoSuchContainerError.exit_code == 1
    assert ContainerConflictError.exit_code == 1
    assert containers_module.EXIT_UNKNOWN == 255
