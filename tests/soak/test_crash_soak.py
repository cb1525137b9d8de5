"""Crash soak (issue 9, item 1): ``kill -9`` of ``lamina build``, ``pull``, ``push``, ``run``,
``prune`` and ``rmi`` at random moments; after each, the next lamina commands (``ps -a``,
which cleans up after dead supervisors, then ``system check``) find a clean store, every image
there before is whole and still named, and nothing of lamina's is left on the host: no mount
under the state root, no runtime container, no network namespace, iptables rule or network
record of a container of this trial, no veth on lamina's bridge without its other end.

``LAMINA_SOAK_TRIALS`` trials (20 by default, ``make soak`` runs 200), ``LAMINA_SOAK_SEED``
to replay a run. Traffic goes to a docker-registry on 127.0.0.1 and into the containers'
own namespaces only. The figures are printed at the end.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lamina.api import import_image
from lamina.api.registry import push
from lamina.runtime import netns
from lamina.runtime.crun import Runtime
from lamina.store import Store
from tests.conftest_build import CAN_BUILD, busybox_layer  # noqa: F401
from tests.e2e.test_run_helpers import default_network_teardown  # noqa: F401
from tests.helpers_images import Step, make_image
from tests.integration.test_registry_distribution import Distribution

LAMINA = Path(sys.executable).with_name("lamina")
TRIALS = int(os.environ.get("LAMINA_SOAK_TRIALS", "20"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CAN_BUILD or shutil.which("docker-registry") is None
                       or not Path("/usr/lib/cni/bridge").exists(),
                       reason="needs root, crun, busybox-static, CNI and docker-registry"),
]

# op -> the shortest kill window in seconds; each is widened to the time the command took
# once, un-killed, at the start (so that most kills land mid-way, at a uniform moment)
WINDOWS = {"build": 0.5, "pull": 0.2, "push": 0.2, "run": 0.5, "prune": 0.15, "rmi": 0.15}


def lamina(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "LAMINA_ROOT": str(root), "DOCKER_CONFIG": str(root.parent / "docker")}
    return subprocess.Popen([str(LAMINA), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    _, err = proc.communicate(timeout=timeout)
    return err.decode(errors="replace")


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root))]


def ids_in(root: Path) -> set[str]:
    """Containers of this root a trial may have made: runs' and builds' RUN steps."""
    ids = {p.stem for p in (root / "networks").glob("*.json*")}
    ids |= {p.name for p in (root / "containers").glob("[0-9a-f]*")}
    return {i.removesuffix(".json") for i in ids}


def leftovers(root: Path, ids: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    found["mounts"] = mounts_under(root)
    found["runtime containers"] = [c["id"] for c in Runtime().list()
                                   if str(c.get("bundle", "")).startswith(str(root))
                                   or c["id"] in ids]
    found["netns"] = [n for n in ids if (netns.NETNS_DIR / f"lamina-{n}").exists()]
    found["network records"] = sorted(p.name for p in (root / "networks").glob("*.json*"))
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found["iptables rules"] = [line for line in rules.splitlines()
                               if any(i in line for i in ids)]
    links = subprocess.run(["ip", "-o", "link", "show", "master", "lamina0"],
                           capture_output=True, text=True).stdout.splitlines()
    found["orphan veths"] = [line.split(":")[1].strip() for line in links
                             if "veth" in line and "link-netns" not in line]
    return {k: v for k, v in found.items() if v}


def reap_orphaned_creates(root: Path) -> int:
    """Find (and kill, so one failure does not cascade) a `crun create` that outlived the
    lamina that started it, and the runtime state it registered after the clean-up: the race
    that PR_SET_PDEATHSIG on the runtime's `create` closed. Returns how many were found."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"create" in argv and any(str(root).encode() in a for a in argv):
            os.kill(int(pid), 9)
            found.add(argv[-2].decode() if len(argv) > 1 else "")
    runtime = Runtime()
    for c in runtime.list():
        bundle = str(c.get("bundle", ""))
        if bundle.startswith(str(root / "containers")) and c.get("status") == "created" \
                and not (root / "containers" / c["id"]).exists():
            found.add(c["id"])
    for cid in found:
        if cid and runtime.state(cid) is not None:
            runtime.delete(cid, force=True)
    return len(found)


def test_kill_9_during_build_pull_push_run_prune(tmp_path, busybox_layer, record_property,
                                                request):
    seed = int(os.environ.get("LAMINA_SOAK_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    root = tmp_path / "root"
    store = Store.open(root)
    import_image(io.BytesIO(busybox_layer), "busybox:latest", changes=['CMD ["sh"]'],
                 store=store)
    make_image(store, layers=2, tag="keep/a:1", seed="a")
    make_image(store, [Step("ADD noise /", {"noise": rng.randbytes(2_000_000)})],
               tag="keep/noise:1")
    before = {e.name: e.descriptor.digest for e in store.index.list() if e.name}
    blobs = {name: [store.image(name).digest(), store.image(name).manifest().config.digest,
                    *(layer.digest for layer in store.image(name).layers())]
             for name in before}

    registry = Distribution(tmp_path / "registry")
    request.addfinalizer(registry.stop)
    source = Store.open(tmp_path / "source")
    remote = f"{registry.host}/soak/pulled:1"
    make_image(source, [Step(f"ADD n{i} /", {f"n{i}": rng.randbytes(1_500_000)})
                        for i in range(3)], tag=remote)
    push(remote, store=source)

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.bin").write_bytes(rng.randbytes(1_000_000))
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nARG T\n"
        "RUN echo $T > /trial && head -c 1000000 /dev/urandom > /noise && sleep 0.5\n"
        "COPY data.bin /data.bin\nRUN sleep 0.2 && cat /trial /data.bin > /both\n")

    def prepare(op: str, trial: int) -> list[str]:
        """What trial ``trial`` of ``op`` runs (made ready by commands that are not killed)."""
        names = [e.name for e in Store.open(root).index.list() if e.name]
        if op == "pull" and remote in names:   # so that the pull has work to do
            assert finish(lamina(root, "rmi", remote)) == ""
        if op == "push":   # a new tag, pushed
            assert finish(lamina(root, "tag", "keep/noise:1",
                                 f"{registry.host}/soak/pushed:{trial}")) == ""
            return ["push", f"{registry.host}/soak/pushed:{trial}"]
        built = [n for n in names if n.startswith("docker.io/soak/b")]
        return {
            "build": ["build", "--build-arg", f"T={trial}", "-t", f"soak/b{trial}:1", str(ctx)],
            "pull": ["pull", remote],
            "run": ["run", "--rm", "busybox", "sh", "-c", "echo up; sleep 0.6"],
            "prune": ["builder", "prune", "-f"] if trial % 2 else ["image", "prune", "-f"],
            "rmi": ["rmi", rng.choice(built)] if built else ["image", "prune", "-f"],
        }[op]

    # How long each command takes here: the kill comes at a uniform moment of that time.
    windows = {}
    for n, op in enumerate(WINDOWS):
        args = prepare(op, 10_000 + n)
        began = time.monotonic()
        proc = lamina(root, *args)
        err = finish(proc)
        assert proc.returncode == 0, f"lamina {' '.join(args)}: {err}"
        windows[op] = max(time.monotonic() - began, WINDOWS[op])

    outcomes: Counter[tuple[str, str]] = Counter()
    began = time.monotonic()
    try:
        for trial in range(TRIALS):
            op = rng.choice(list(WINDOWS))
            args = prepare(op, trial)
            proc = lamina(root, *args)
            time.sleep(rng.uniform(0, windows[op]))
            proc.kill()
            err = finish(proc)
            outcome = "killed" if proc.returncode == -9 else "finished"
            assert proc.returncode in (0, -9), \
                f"trial {trial}: lamina {' '.join(args)} failed (seed {seed}):\n{err}"
            outcomes[(op, outcome)] += 1
            ids = ids_in(root)

            # The next lamina commands: ps cleans up after dead supervisors; then check.
            for command in (["ps", "-a", "-q"], ["system", "check"]):
                p = lamina(root, *command)
                err = finish(p)
                assert p.returncode == 0, \
                    f"trial {trial} ({op}, {outcome}, seed {seed}): lamina {command}: {err}"
            orphans = reap_orphaned_creates(root)
            assert orphans == 0, \
                f"trial {trial} ({op}, {outcome}, seed {seed}): an orphaned `crun create` was left"
            left = leftovers(root, ids)
            assert left == {}, f"trial {trial} ({op}, {outcome}, seed {seed}): left {left}"
            store = Store.open(root)
            for name, digest in before.items():
                assert store.index.get(name).digest == digest, (trial, op, name)
                for blob in blobs[name]:
                    store.content.verify(blob)
            if trial % 10 == 9:
                store.gc()
    finally:
        reap_orphaned_creates(root)
        env = {**os.environ, "LAMINA_ROOT": str(root)}
        for cid in ids_in(root):   # whatever a failed trial left: cleaned, so others are not
            subprocess.run([str(LAMINA), "rm", "-f", cid], capture_output=True, env=env)
        subprocess.run([str(LAMINA), "ps", "-a", "-q"], capture_output=True, env=env)
    killed = sum(n for (_, outcome), n in outcomes.items() if outcome == "killed")
    per_op = ", ".join(f"{op} {outcomes[(op, 'killed')]}/{outcomes[(op, 'killed')] + outcomes[(op, 'finished')]}"
                       for op in WINDOWS)
    line = (f"crash soak (seed {seed}): {TRIALS} trials in {time.monotonic() - began:.0f}s, "
            f"{killed} killed mid-way ({per_op} killed/run), {TRIALS} held: system check "
            f"clean, {len(before)} images intact, nothing left behind")
    print("\n" + line)
    record_property("lamina_line", line)
    assert killed >= TRIALS // 3, outcomes
