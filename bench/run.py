"""make bench: lamina side by side with Docker, Buildah, Podman and Skopeo (issue 8).

Run: .venv/bin/python bench/run.py [--only S1,S6] [--runs N] [--layers]

Installs the peers from Debian's packages if missing, starts a private dockerd (own data-root,
own socket, no iptables, no bridge) and a docker-registry on 127.0.0.1, gives every tool the
same busybox base (``lamina bootstrap busybox`` then ``lamina save``, loaded by each peer),
runs the scenarios S1..S8 and the floors, writes bench/RESULTS.md, and removes all it made.
``--layers`` also runs the older layer benchmark against GNU tar (bench/layer_bench.py).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402
import scenarios  # noqa: E402
from scenarios import Bench, Row  # noqa: E402

REPO = HERE.parent
VENV_LAMINA = Path(sys.executable).with_name("lamina")
ALL = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"]


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lamina_command() -> tuple[list[str], str]:
    """The lamina the user runs: the virtual environment's script (``make setup`` makes it)."""
    if subprocess.run([str(VENV_LAMINA), "--version"], capture_output=True).returncode != 0:
        raise SystemExit(f"{VENV_LAMINA} does not start: run `make setup` first")
    return [str(VENV_LAMINA)], ""


def machine() -> list[str]:
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    fs = subprocess.run(["df", "--output=fstype", "/var/tmp"],
                        capture_output=True, text=True).stdout.split()[-1:]
    return [f"- nproc: {os.cpu_count()} ({cpu})", f"- memory: {mem}",
            f"- kernel: {platform.release()}",
            f"- work dir file system (/var/tmp): {fs[0] if fs else '?'}",
            f"- load average now (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
            " (other developers share this machine: medians are of a busy host)",
            f"- Python: {platform.python_version()}"]


def versions(lamina: list[str], dockerd_host: str | None) -> list[str]:
    out = [f"- lamina: {peers.version([*lamina, '--version'])}"]
    if dockerd_host:
        server = peers.version([peers.DOCKER_CLIENT, "-H", dockerd_host, "version", "--format",
                                "{{.Server.Version}}"])
        out.append(f"- docker: {peers.version([peers.DOCKER_CLIENT, '--version'])} "
                   f"(dockerd {server}, BuildKit "
                   f"{'on' if os.environ.get('BENCH_DOCKER_BUILDKIT', '1') == '1' else 'off'})")
    else:
        out.append(f"- docker: {peers.version([peers.DOCKER_CLIENT, '--version'])} (not started)")
    for tool in ("buildah", "podman", "skopeo", "crun", "docker-registry"):
        out.append(f"- {tool}: {peers.version([tool, '--version'])}")
    return out


# -- targets -----------------------------------------------------------------------------
PEERS = ("docker", "buildah", "podman")


def _med(rows: list[Row], scenario: str, tool: str) -> float | None:
    for r in rows:
        if r.scenario == scenario and r.tool == tool:
            return r.median
    return None


def _fastest_peer(rows, scenario) -> tuple[str, float] | None:
    meds = [(t, _med(rows, scenario, t)) for t in PEERS]
    meds = [(t, m) for t, m in meds if m is not None]
    return min(meds, key=lambda x: x[1]) if meds else None


def targets(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of the issue."""
    out = []

    def ratio(name, scenario, limit, peer):
        ours = _med(rows, scenario, "lamina")
        if peer == "fastest":
            found = _fastest_peer(rows, scenario)
            peer_name, theirs = found if found else ("no peer", None)
        else:
            peer_name, theirs = peer, _med(rows, scenario, peer)
        if ours is None or theirs is None:
            out.append((name, f"lamina {_fmt(ours)}, {peer_name} {_fmt(theirs)}", "not measured"))
            return
        r = ours / theirs
        out.append((name, f"{r:.2f}x {peer_name} ({_fmt(ours)} vs {_fmt(theirs)})",
                    "met" if r <= limit else "MISSED"))

    def absolute(name, scenario, limit):
        ours = _med(rows, scenario, "lamina")
        if ours is None:
            out.append((name, "-", "not measured"))
        else:
            out.append((name, _fmt(ours), "met" if ours < limit else "MISSED"))

    ratio("S1 cold build <= 0.7x fastest peer", "S1 cold", 0.7, "fastest")
    ratio("S2 no-op rebuild <= 0.7x docker", "S2 no-op", 0.7, "docker")
    ratio("S3 one file changed <= 0.5x fastest peer", "S3 1 file", 0.5, "fastest")
    ratio("S4 cold 300 MB context <= 0.4x fastest peer", "S4 cold", 0.4, "fastest")
    absolute("S4 no-op rebuild < 0.5 s", "S4 no-op", 0.5)
    ratio("S5 RUN writing 200 MB <= 0.8x docker", "S5 200 MB", 0.8, "docker")
    ratio("S6 run --rm true <= 0.5x docker", "S6 run", 0.5, "docker")
    ours, crun = _med(rows, "S6 run", "lamina"), _med(rows, "S6 run", "floor: crun run")
    if ours is None or crun is None:
        out.append(("S6 within 60 ms of bare crun", f"lamina {_fmt(ours)}, crun {_fmt(crun)}",
                    "not measured"))
    else:
        out.append(("S6 within 60 ms of bare crun", f"+{(ours - crun) * 1000:.0f} ms "
                    f"({_fmt(ours)} vs {_fmt(crun)})", "met" if ours - crun <= 0.060 else "MISSED"))
    ratio("S7 push <= 1.0x skopeo", "S7 push", 1.0, "skopeo")
    ratio("S7 pull <= 1.0x skopeo", "S7 pull", 1.0, "skopeo")
    absolute("S8 parse 10,000 lines < 0.2 s", "S8 parse", 0.2)
    builds = [r for r in rows if r.tool == "lamina" and r.scenario[:2] in ("S1", "S2", "S3",
                                                                         "S4", "S5")]
    peaks = [(r.peak_kb, r.scenario) for r in builds if r.peak_kb]
    if peaks:
        kb, where = max(peaks)
        out.append(("peak memory of any lamina build < 200 MB", f"{kb / 1024:.0f} MB ({where})",
                    "met" if kb < 200 * 1024 else "MISSED"))
    else:
        out.append(("peak memory of any lamina build < 200 MB", "-", "not measured"))
    return out


def _fmt(secs: float | None) -> str:
    if secs is None:
        return "-"
    return f"{secs * 1000:.0f} ms" if secs < 1 else f"{secs:.2f} s"


def write_results(path: Path, rows: list[Row], head: list[str]) -> None:
    lines = ["# lamina benchmarks, side by side (issue 8)", "",
             f"Written by `make bench` (bench/run.py) on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "", *head, ""]
    lines += ["## Targets", "", "| target | measured (medians) | verdict |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(rows)]
    lines += ["", "## Scenarios", "",
              "Median and spread (min–max) of the wall time of each command as a user runs it "
              "(the docker client against its daemon; buildah and podman with their own storage). "
              "The tools take turns run by run, in a rotated order, so load from the rest of the "
              "machine falls on all of them alike. Ratio = lamina's median / the tool's median. Peak memory: highest `ru_maxrss` of "
              "the lamina command (wait4 on the child), the runner's own small RSS being its "
              "floor.", ""]
    order = []
    for r in rows:
        if r.scenario not in order:
            order.append(r.scenario)
    for scenario in order:
        group = [r for r in rows if r.scenario == scenario]
        ours = _med(rows, scenario, "lamina")
        lines += [f"### {scenario}", "",
                  "| tool | median | min–max | runs | lamina / tool | lamina peak memory | note |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in group:
            med = r.median
            spread = f"{_fmt(min(r.times))}–{_fmt(max(r.times))}" if r.times else "-"
            ratio = (f"{ours / med:.2f}x" if ours is not None and med and r.tool != "lamina"
                     else "")
            peak = f"{r.peak_kb / 1024:.0f} MB" if r.peak_kb else ""
            note = r.note.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r.tool} | {_fmt(med)} | {spread} | {len(r.times)} | {ratio} | "
                         f"{peak} | {note} |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ALL), help="scenarios to run, e.g. S1,S6")
    ap.add_argument("--runs", type=int, default=5, help="runs of each measurement (slow "
                    "scenarios S4 cold, S5, S7 do at most 3)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    ap.add_argument("--layers", action="store_true", help="also run bench/layer_bench.py")
    args = ap.parse_args()
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}

    work = Path(tempfile.mkdtemp(prefix="lamina-bench-", dir="/var/tmp"))
    log = work / "commands.log"
    progress(f"work dir {work}; scenarios {','.join(sorted(only))}; {args.runs} runs")
    unavailable = peers.ensure_installed(log=progress)
    if "dockerd" in unavailable:
        unavailable["docker"] = unavailable["dockerd"]
    lamina, lamina_note = lamina_command()
    if lamina_note:
        progress(lamina_note)
    lamina_env = {**os.environ, "LAMINA_ROOT": str(work / "lamina")}
    dockerd = podman = buildah = registry = None
    hybrid = peers.needs_cgroup_workaround()
    rows: list[Row] = []
    head_notes = []
    if peers.needs_cgroup_workaround():
        head_notes += ["Note: this host has hybrid cgroups; crun refuses them, so buildah's, "
                       "podman's and the bare crun's commands run in a private mount namespace "
                       "without /sys/fs/cgroup/unified, as lamina's runtime calls do "
                       "(lamina.runtime.crun). podman and buildah get `--ulimit nofile=1024:1024 "
                       "--ulimit nproc=4096:4096`, as this host refuses their defaults (1048576). "
                       "Every base image comes from the tarball `lamina save busybox` wrote "
                       "(docker/podman `--pull never`, buildah/podman build `--pull-never`).", ""]
    status = 0
    try:
        progress("base image: lamina bootstrap busybox, lamina save")
        busybox_tar = work / "busybox.tar"
        scenarios.quiet([*lamina, "bootstrap", "busybox"], env=lamina_env, log=log)
        scenarios.quiet([*lamina, "save", "busybox", "-o", str(busybox_tar)], env=lamina_env,
                        log=log)
        needs_peers = only & {"S1", "S2", "S3", "S4", "S5", "S6"}
        if needs_peers and "docker" not in unavailable:
            try:
                progress("starting dockerd (private data-root and socket) and loading busybox")
                dockerd = peers.Dockerd(work / "docker")
                dockerd.start()
                scenarios.quiet(dockerd.cmd("load", "-i", str(busybox_tar)), log=log)
            except Exception as err:   # noqa: BLE001
                unavailable["docker"] = f"could not start dockerd here: {str(err)[:300]}"
        if needs_peers and "podman" not in unavailable:
            try:
                podman = peers.Containers(work / "podman")
                (podman.root / "tmp").mkdir(parents=True)
                scenarios.quiet(podman.podman("load", "-i", str(busybox_tar)), log=log,
                                preexec=peers.private_cgroup_view if hybrid else None)
            except Exception as err:   # noqa: BLE001
                unavailable["podman"] = f"could not load the base: {str(err)[:300]}"
        if needs_peers and "buildah" not in unavailable:
            try:
                buildah = peers.Containers(work / "buildah")
                scenarios.quiet(buildah.buildah("pull", "-q", f"docker-archive:{busybox_tar}"),
                                log=log)
            except Exception as err:   # noqa: BLE001
                unavailable["buildah"] = f"could not load the base: {str(err)[:300]}"
        if "S7" in only and "docker-registry" not in unavailable:
            registry = peers.Registry(work / "registry")
        b = Bench(work=work, runs=args.runs, lamina=lamina, lamina_env=lamina_env,
                  dockerd=dockerd, podman=podman, buildah=buildah, registry=registry,
                  unavailable=unavailable, log=log, progress=progress,
                  cgroup_view=peers.private_cgroup_view if hybrid else None)
        plan = [({"S1", "S2", "S3"}, "S1-S3: the 7-step Dockerfile", lambda: scenarios.s1_s2_s3(b)),
                ({"S4"}, "S4: 300 MB, 20,000-file context", lambda: scenarios.s4(b)),
                ({"S5"}, "S5: RUN writing 200 MB", lambda: scenarios.s5(b)),
                ({"S6"}, "S6: run --rm busybox true", lambda: scenarios.s6(b, busybox_tar)),
                ({"S7"}, "S7: push and pull 200 MB, local registry", lambda: scenarios.s7(b)),
                ({"S8"}, "S8: parse a 10,000-line Dockerfile", lambda: scenarios.s8(b))]
        for keys, title, fn in plan:
            if keys & only:
                progress(f"==> {title}")
                try:
                    new = fn()
                except Exception:   # noqa: BLE001 - write what we have
                    progress(traceback.format_exc())
                    status = 1
                    continue
                keep = {s for s in keys & only}
                rows += [r for r in new if r.scenario.split()[0] in keep]
                # write as we go: a partial table beats none
                write_results(Path(args.out), rows, _head(lamina, lamina_note, dockerd,
                                                          unavailable, head_notes))
        if args.layers:
            subprocess.call([sys.executable, str(HERE / "layer_bench.py")])
    finally:
        head = _head(lamina, lamina_note, dockerd, unavailable, head_notes)
        write_results(Path(args.out), rows, head)
        progress(f"wrote {args.out}")
        progress("cleaning up")
        if registry:
            registry.stop()
        if dockerd:
            dockerd.stop()
        for c in (podman, buildah):
            if c:
                c.cleanup()
        peers._unmount_under(work)
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for t, m, v in targets(rows):
        print(f"  {v:<12} {t}: {m}")
    return status


def _head(lamina, lamina_note, dockerd, unavailable, notes) -> list[str]:
    head = ["## Machine", "", *machine(), "", "## Versions", "",
            *versions(lamina, dockerd.host if dockerd and dockerd.proc else None), ""]
    if lamina_note:
        head += [f"Note: {lamina_note}.", ""]
    if unavailable:
        head += ["## Peers not measured", ""]
        head += [f"- {tool}: {why}" for tool, why in unavailable.items()]
        head.append("")
    head += notes
    return head


if __name__ == "__main__":
    raise SystemExit(main())
