"""Layer write and apply, side by side with GNU tar (targets: within 1.5x, peak RSS < 150 MB).

Run (as root): .venv/bin/python bench/layer_bench.py [--mb 300] [--files 20000] [--runs 3] [--dir D]
Builds a tree of --files files (--mb in all; mostly small files, a few large ones; half random
bytes, half text, so gzip has work to do), then times, each in a child process whose peak RSS
comes from wait4():
- write: write_layer into a LayerBlobWriter (none, gzip, zstd) to a blob file, both digests,
  against `tar -c` piped through sha256sum, gzip -6 -n / zstd -3 and tee to a blob file;
- apply: apply_layer of that tar, with the diff ID computed on the way, against `tar -x`
  (--xattrs, -p), and the same from the gzip blob.
The page cache is warm (the tree is read once first) and `sync` runs before every timed step;
the median of --runs is shown. Peak RSS includes the ~10 MB of the forking parent.
Everything is created under one temporary directory, removed at the end.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAR_X = "tar --xattrs --xattrs-include='*' --numeric-owner -xpf"


def make_tree(root: Path, total_mb: int, files: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 8)).hex().encode() for _ in range(4096)]
    text = b" ".join(rng.choice(words) for _ in range(1_000_000))
    pool = (rng.randbytes(len(text)) + text) * 2          # half random, half text-like
    # Sizes: 95% small (log-uniform 100 B .. 64 KB), the rest share what is left.
    small = [int(10 ** rng.uniform(2, 4.8)) for _ in range(int(files * 0.95))]
    left = max(total_mb * 1_000_000 - sum(small), 0)
    large_n = files - len(small)
    sizes = small + [left // large_n] * large_n
    rng.shuffle(sizes)
    for i, size in enumerate(sizes):
        d = root / f"d{i % 20:02d}" / f"e{(i // 20) % 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        offset = rng.randrange(0, len(pool) // 2)
        with open(d / f"f{i:05d}", "wb") as f:
            while size:
                chunk = pool[offset:offset + min(size, len(pool) // 2)]
                f.write(chunk)
                size -= len(chunk)


def timed(argv: list[str] | str, *, shell: bool = False) -> tuple[float, int]:
    """Wall time and peak RSS (bytes, the child and what it waited for) of one command."""
    os.sync()  # no writeback left over from the previous step
    start = time.perf_counter()
    proc = subprocess.Popen(argv, shell=shell, executable="/bin/bash" if shell else None,
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {argv}")
    return elapsed, usage.ru_maxrss * 1024


def child(op: str, compression: str, src: str, dst: str) -> None:
    """The lamina side of one measurement (or the tree), run in its own process."""
    from lamina.layer import (
        DigestReader, LayerBlobWriter, apply_layer, open_decompressed, write_layer,
    )
    if op == "tree":
        make_tree(Path(dst), int(src), int(compression))
    elif op == "write":
        with open(dst, "wb") as sink:
            with LayerBlobWriter(sink, None if compression == "none" else compression) as w:
                write_layer(Path(src), w)
        print(w.info, file=sys.stderr)
    else:
        with open(src, "rb") as blob:
            tar = DigestReader(open_decompressed(blob))
            apply_layer(tar, Path(dst))
        print(tar.digest, file=sys.stderr)


def median_of(runs: int, step) -> tuple[float, int]:
    results = [step() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to put the temporary tree")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lamina-layer-bench-", dir=args.dir))
    py = [sys.executable, __file__, "--child"]
    try:
        tree = work / "tree"
        t0 = time.perf_counter()
        # In a child: the parent stays small, and forked children inherit its RSS high-water mark.
        subprocess.run(py + ["tree", str(args.files), str(args.mb), str(tree)], check=True)
        print(f"tree: {args.files} files, {args.mb} MB, made in {time.perf_counter() - t0:.1f} s")
        subprocess.run(f"tar -C {tree} -cf - . | cat > /dev/null", shell=True, check=True)

        rows = []
        pipes = {"none": "cat", "gzip": "gzip -6 -n", "zstd": "zstd -3 -q -c"}
        for comp, compressor in pipes.items():
            blob = work / f"blob.{comp}"
            ours = median_of(args.runs, lambda: timed(py + ["write", comp, str(tree), str(blob)]))
            digest_both = "" if comp == "none" else "tee >(sha256sum >/dev/null) | "
            theirs = median_of(args.runs, lambda: timed(
                f"tar -C {tree} -cf - . | {digest_both}{compressor} | tee {work}/tar.{comp} "
                "| sha256sum", shell=True))
            suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[comp]
            rows.append((f"write tar{suffix} + digests",
                         ours, theirs, f"tar -c | {compressor} | sha256sum"))

        for comp, untar in (("none", TAR_X), ("gzip", TAR_X.replace("-xpf", "-xzpf"))):
            blob, dest = work / f"blob.{comp}", work / "dest"

            def ours_step():
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                return timed(py + ["apply", comp, str(blob), str(dest)])

            def theirs_step():
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                return timed(f"{untar} {blob} -C {dest}", shell=True)

            rows.append((f"apply tar{'' if comp == 'none' else '.gz'} (+ diff ID)",
                         median_of(args.runs, ours_step), median_of(args.runs, theirs_step),
                         untar.split(" -")[0] + " -x"))

        print(f"\n{'operation':28} {'lamina':>8} {'baseline':>9} {'ratio':>6} "
              f"{'lamina RSS':>11} {'base RSS':>9}  baseline")
        for name, (ot, orss), (tt, trss), what in rows:
            print(f"{name:28} {ot:7.2f}s {tt:8.2f}s {ot / tt:5.2f}x {orss / 2**20:9.0f}MB "
                  f"{trss / 2**20:7.0f}MB  {what}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
