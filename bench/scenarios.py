"""The scenarios of issue 8, S1..S8 and the floors, each tool in turn on the same machine.

The tools take turns run by run (lamina, docker, buildah, podman, then the next run in a rotated
order), so a burst of load from the rest of a shared machine falls on every tool alike instead of
on whichever tool happened to be measured then: the ratios are what the targets are about.

Each scenario returns rows ``Row(scenario, tool, times, peak_kb, note)``; ``run.py`` turns them
into bench/RESULTS.md. A peer that fails in a scenario gets a row with the error as its note,
and the others go on.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

SEVEN_STEPS = """\
FROM busybox
RUN echo building && echo data > /data.txt
COPY app.txt /app/
ENV GREETING=hi
WORKDIR /app
EXPOSE 8080
CMD ["sh", "-c", "echo $GREETING from $(cat /app/app.txt)"]
"""
COPY_CONTEXT = "FROM busybox\nCOPY . /ctx/\n"
WRITE_200MB = "FROM busybox\nRUN dd if=/dev/zero of=/f bs=1M count=200\n"
BIG_IMAGE = "FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=200\n"
# podman and buildah ask for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by default; this host
# (no CAP_SYS_RESOURCE in the bounding set) refuses that, and even its own hard limits, so they
# get lower ones; nothing the scenarios run comes near them
ULIMIT = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
BUILDERS = ("lamina", "docker", "buildah", "podman")


@dataclass
class Row:
    scenario: str
    tool: str
    times: list[float] = field(default_factory=list)
    peak_kb: int = 0          # highest ru_maxrss of the measured commands (lamina's only)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


class StepFailed(RuntimeError):
    pass


def timed(argv: list[str], env: dict | None = None, cwd: Path | None = None,
          log: Path | None = None, preexec=None) -> tuple[float, int]:
    """Run argv; return (seconds, peak RSS in KiB of the child and its waited-for children)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, preexec_fn=preexec)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-400:] if log and log.exists() else ""
        raise StepFailed(f"exit {proc.returncode}: {' '.join(map(str, argv))[:200]}\n{tail}")
    return elapsed, usage.ru_maxrss


def quiet(argv: list[str], env: dict | None = None, cwd: Path | None = None,
          log: Path | None = None, preexec=None) -> None:
    timed(argv, env=env, cwd=cwd, log=log, preexec=preexec)


@dataclass
class Bench:
    """What every scenario needs: the tools, where to work, how many runs."""
    work: Path
    runs: int
    lamina: list[str]                  # the lamina command (argv prefix)
    lamina_env: dict
    dockerd: object | None             # peers.Dockerd, started, or None
    podman: object | None              # peers.Containers for podman, or None
    buildah: object | None             # peers.Containers for buildah, or None
    registry: object | None            # peers.Registry (not started), or None
    unavailable: dict                  # tool -> why it is missing
    log: Path = None
    progress: callable = print
    cgroup_view: callable = None       # preexec_fn for buildah, podman, crun (hybrid hosts)

    # -- commands of each tool ------------------------------------------------------------
    def available(self, tool: str) -> bool:
        return tool not in self.unavailable

    def build_argv(self, tool: str, ctx: Path, tag: str, no_cache: bool) -> list[str]:
        nc = ["--no-cache"] if no_cache else []
        if tool == "lamina":
            return [*self.lamina, "build", "-q", "--network", "none", *nc, "-t", tag, str(ctx)]
        if tool == "docker":
            return self.dockerd.cmd("build", "-q", "--network", "none", *nc, "-t", tag, str(ctx))
        if tool == "buildah":
            return self.buildah.buildah("build", "-q", "--layers", "--network", "none", *ULIMIT,
                                        "--pull-never", *nc, "-t", tag, str(ctx))
        if tool == "podman":
            return self.podman.podman("build", "-q", "--layers", "--network", "none", *ULIMIT,
                                      "--pull-never", *nc, "-t", tag, str(ctx))
        raise ValueError(tool)

    def env(self, tool: str) -> dict:
        if tool == "lamina":
            return self.lamina_env
        if tool == "docker":
            return {**os.environ, "DOCKER_BUILDKIT": os.environ.get("BENCH_DOCKER_BUILDKIT", "1")}
        return dict(os.environ)

    def preexec(self, tool: str):
        return self.cgroup_view if tool in ("buildah", "podman", "crun") else None

    def build(self, tool: str, ctx: Path, tag: str, no_cache: bool) -> tuple[float, int]:
        return timed(self.build_argv(tool, ctx, tag, no_cache), env=self.env(tool), log=self.log,
                     preexec=self.preexec(tool))

    def measure(self, scenario: str, steps: dict, runs: int, warmup: bool = False) -> list[Row]:
        """Run each tool's ``step(i) -> (seconds, peak_kb)`` ``runs`` times, the tools taking
        turns (the order rotated every run); ``warmup`` runs each step once first, unmeasured
        (``step(-1)``). A failure ends that tool's row; the others go on."""
        rows = {tool: Row(scenario, tool) for tool in steps}
        live = []
        for tool, step in steps.items():
            if not self.available(tool):
                rows[tool].note = self.unavailable[tool]
                continue
            if warmup and not self._attempt(rows[tool], step, -1):
                continue
            live.append(tool)
        for i in range(runs):
            turn = i % len(live) if live else 0
            for tool in live[turn:] + live[:turn]:
                if not rows[tool].note:
                    self._attempt(rows[tool], steps[tool], i)
        for row in rows.values():
            med = f"{row.median:.3f} s" if row.times else "-"
            self.progress(f"    {scenario:<10} {row.tool:<8} {med} {row.note[:120]}")
        return list(rows.values())

    @staticmethod
    def _attempt(row: Row, step, i: int) -> bool:
        os.sync()   # no tool pays for the dirty pages of an earlier one (lamina fsyncs)
        try:
            secs, peak = step(i)
        except Exception as err:   # noqa: BLE001 - a peer's failure is a result, not a crash
            row.note = f"failed: {str(err).strip()[:300]}"
            return False
        if i >= 0:
            row.times.append(secs)
            if row.tool == "lamina":
                row.peak_kb = max(row.peak_kb, peak)
        return True


def _context(work: Path, name: str, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = work / name
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for rel, text in (files or {}).items():
        (ctx / rel).write_text(text)
    return ctx


# -- S1, S2, S3: the 7-step Dockerfile ------------------------------------------------------
def s1_s2_s3(b: Bench) -> list[Row]:
    ctxs = {tool: _context(b.work / "s123", tool, SEVEN_STEPS, {"app.txt": "lamina\n"})
            for tool in BUILDERS}

    def build(no_cache: bool):
        return {tool: (lambda i, tool=tool: b.build(tool, ctxs[tool], f"bench-s1-{tool}",
                                                    no_cache=no_cache)) for tool in BUILDERS}

    def changed(tool: str):
        def step(i: int) -> tuple[float, int]:
            (ctxs[tool] / "app.txt").write_text(f"lamina run {i} {time.time_ns()}\n")
            return b.build(tool, ctxs[tool], f"bench-s1-{tool}", no_cache=False)
        return step

    return [*b.measure("S1 cold", build(no_cache=True), b.runs, warmup=True),
            *b.measure("S2 no-op", build(no_cache=False), b.runs, warmup=True),
            *b.measure("S3 1 file", {tool: changed(tool) for tool in BUILDERS}, b.runs)]


# -- S4: a 300 MB, 20,000-file context ------------------------------------------------------
def make_context_tree(root: Path, files: int = 20_000, total_mb: int = 300) -> None:
    """In a child process, so the runner's RSS (inherited by every child) stays small."""
    code = (
        "import os,sys\n"
        "root,files,mb=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])\n"
        "size=mb*1024*1024//files\n"
        "for i in range(files):\n"
        "    d=os.path.join(root,f'd{i//500:03d}')\n"
        "    os.makedirs(d,exist_ok=True)\n"
        "    with open(os.path.join(d,f'f{i:05d}.bin'),'wb') as f: f.write(os.urandom(size))\n")
    subprocess.run([sys.executable, "-c", code, str(root), str(files), str(total_mb)], check=True)


def s4(b: Bench) -> list[Row]:
    rows = []
    src = b.work / "s4" / "context"
    if not src.exists():
        b.progress("    making the S4 context: 20,000 files, 300 MB")
        make_context_tree(src)
        (src / "Dockerfile").write_text(COPY_CONTEXT)
    runs = max(1, min(b.runs, 3))
    dst = b.work / "s4" / "copy"

    def floor(i: int) -> tuple[float, int]:
        """The floor: copy the tree and hash every file."""
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["sync"])
        return timed(["sh", "-c", f"cp -a {src} {dst} && find {dst} -type f -print0 "
                      f"| xargs -0 sha256sum > /dev/null"])

    def build(no_cache: bool):
        return {tool: (lambda i, tool=tool: b.build(tool, src, f"bench-s4-{tool}",
                                                    no_cache=no_cache)) for tool in BUILDERS}

    rows += b.measure("S4 cold", {**build(no_cache=True), "floor: cp -a + sha256sum": floor},
                      runs)
    shutil.rmtree(dst, ignore_errors=True)
    rows += b.measure("S4 no-op", build(no_cache=False), b.runs)
    return rows


# -- S5: a RUN writing 200 MB ---------------------------------------------------------------
def s5(b: Bench) -> list[Row]:
    runs = max(1, min(b.runs, 3))
    ctxs = {tool: _context(b.work / "s5", tool, WRITE_200MB) for tool in BUILDERS}
    out = b.work / "s5" / "f"
    steps = {tool: (lambda i, tool=tool: b.build(tool, ctxs[tool], f"bench-s5-{tool}",
                                                 no_cache=True)) for tool in BUILDERS}
    steps["floor: dd"] = lambda i: timed(["dd", "if=/dev/zero", f"of={out}", "bs=1M",
                                          "count=200"])
    rows = b.measure("S5 200 MB", steps, runs)
    out.unlink(missing_ok=True)
    return rows


# -- S6: run --rm busybox true --------------------------------------------------------------
def make_bundle(b: Bench, busybox_tar: Path) -> Path:
    """An OCI bundle of the busybox base for bare crun: rootfs from the saved tarball."""
    bundle = b.work / "s6" / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(busybox_tar) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer), mode="r:*") as inner:
                inner.extractall(rootfs, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def s6(b: Bench, busybox_tar: Path) -> list[Row]:
    cmds = {
        "lamina": lambda: [*b.lamina, "run", "--rm", "--network", "none", "busybox", "true"],
        "docker": lambda: b.dockerd.cmd("run", "--rm", "--pull", "never", "--network", "none",
                                        "busybox", "true"),
        "podman": lambda: b.podman.podman("run", "--rm", "--pull", "never", "--network", "none", *ULIMIT, "busybox",
                                          "true"),
    }
    steps = {tool: (lambda i, tool=tool, cmd=cmd: timed(cmd(), env=b.env(tool), log=b.log,
                                                        preexec=b.preexec(tool)))
             for tool, cmd in cmds.items()}
    failed = []
    try:
        bundle = make_bundle(b, busybox_tar)
        steps["floor: crun run"] = lambda i: timed(
            ["crun", "run", "--bundle", str(bundle), f"bench-crun-{os.getpid()}"],
            log=b.log, preexec=b.preexec("crun"))
    except Exception as err:   # noqa: BLE001
        failed.append(Row("S6 run", "floor: crun run", note=f"failed: {err}"))
    return [*b.measure("S6 run", steps, b.runs, warmup=True), *failed]


# -- S7: push and pull of a 200 MB image ----------------------------------------------------
def s7(b: Bench) -> list[Row]:
    if b.registry is None:
        return [Row("S7 push", "lamina", note=b.unavailable.get("docker-registry", "no registry"))]
    runs = max(1, min(b.runs, 3))
    ctx = _context(b.work / "s7", "big", BIG_IMAGE)
    b.progress("    building the 200 MB image for S7")
    quiet(b.build_argv("lamina", ctx, "bench-big:1", no_cache=True), env=b.lamina_env, log=b.log)
    oci = b.work / "s7" / "oci"
    reg = b.registry
    pushes, pulls, spushes, spulls = (Row("S7 push", "lamina"), Row("S7 pull", "lamina"),
                                      Row("S7 push", "skopeo"), Row("S7 pull", "skopeo"))
    tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
    try:
        for i in range(runs):
            reg.start()                                 # an empty registry: every blob uploads
            os.sync()
            ref = f"{reg.address}/bench/big:{i}"
            quiet([*b.lamina, "tag", "bench-big:1", ref], env=b.lamina_env, log=b.log)
            secs, peak = timed([*b.lamina, "push", "-q", ref], env=b.lamina_env, log=b.log)
            pushes.times.append(secs)
            pushes.peak_kb = max(pushes.peak_kb, peak)
            quiet([*b.lamina, "rmi", ref], env=b.lamina_env, log=b.log)
            # skopeo pulls what lamina pushed, into a fresh OCI layout (blobs kept compressed)
            shutil.rmtree(oci, ignore_errors=True)
            if "skopeo" not in b.unavailable:
                secs, _ = timed(["skopeo", "copy", "-q", *tls, f"docker://{ref}", f"oci:{oci}:big"],
                                log=b.log)
                spulls.times.append(secs)
            # lamina pulls it into an empty store
            fresh = Path(tempfile.mkdtemp(prefix="pull-", dir=b.work))
            secs, peak = timed([*b.lamina, "pull", "-q", ref],
                               env={**b.lamina_env, "LAMINA_ROOT": str(fresh)}, log=b.log)
            pulls.times.append(secs)
            pulls.peak_kb = max(pulls.peak_kb, peak)
            shutil.rmtree(fresh, ignore_errors=True)
            # skopeo pushes the same blobs to an empty registry
            if "skopeo" not in b.unavailable:
                reg.start()
                secs, _ = timed(["skopeo", "copy", "-q", *tls, f"oci:{oci}:big",
                                 f"docker://{reg.address}/bench/big:{i}"], log=b.log)
                spushes.times.append(secs)
            b.progress(f"    S7 run {i + 1}/{runs}: lamina push {pushes.times[-1]:.2f} s, "
                       f"pull {pulls.times[-1]:.2f} s; skopeo push "
                       f"{spushes.times[-1] if spushes.times else float('nan'):.2f} s, pull "
                       f"{spulls.times[-1] if spulls.times else float('nan'):.2f} s")
    except Exception as err:   # noqa: BLE001
        for row in (pushes, pulls, spushes, spulls):
            row.note = row.note or f"failed: {str(err).strip()[:300]}"
        b.progress(f"    S7 failed: {err}")
    finally:
        reg.stop()
        shutil.rmtree(oci, ignore_errors=True)
    for row in (spushes, spulls):
        if "skopeo" in b.unavailable:
            row.note = b.unavailable["skopeo"]
    if pushes.times:
        pushes.note = ("the first push compresses the build's plain layer (gzip) and keeps the "
                       "result, later pushes reuse it: the max is the first push; skopeo copies "
                       "already-compressed blobs from an OCI layout")
    pulls.note = "into an empty LAMINA_ROOT each time"
    spulls.note = "to a fresh OCI layout (blobs stay compressed)"
    return [pushes, spushes, pulls, spulls]


# -- S8: parse a 10,000-line Dockerfile (in one child process) ------------------------------
def s8(b: Bench) -> list[Row]:
    code = (
        "import sys,time,json\n"
        f"sys.path.insert(0,{str(HERE)!r})\n"
        "from parse_dockerfile import make_dockerfile\n"
        "from lamina.dockerfile.stages import load_dockerfile\n"
        "data=make_dockerfile(10_000)\n"
        "ts=[]\n"
        f"for _ in range({b.runs}):\n"
        "    t0=time.perf_counter(); load_dockerfile(data); ts.append(time.perf_counter()-t0)\n"
        "print(json.dumps(ts))\n")
    row = Row("S8 parse", "lamina")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=b.lamina_env, capture_output=True,
                             text=True, check=True).stdout
        row.times = json.loads(out.strip().splitlines()[-1])
        row.note = "parse tree + typed stages, in process"
    except subprocess.CalledProcessError as err:
        row.note = f"failed: {err.stderr.strip()[-300:]}"
    b.progress(f"    S8 parse   lamina   {row.median or 0:.3f} s")
    return [row]
