"""make bench: run lamina's benchmarks one after another and print their tables.

The side-by-side comparison with Docker, Buildah and Podman (issue 8) grows here; for now:
S8 (parsing a 10,000-line Dockerfile) and layer creation/application against GNU tar.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("S8: parse a 10,000-line Dockerfile", ["parse_dockerfile.py"]),
    ("Layers: create and apply 300 MB / 20,000 files vs tar", ["layer_bench.py"]),
]


def main() -> int:
    failed = 0
    for title, argv in BENCHES:
        print(f"==> {title}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]])
        if rc != 0:
            print(f"    failed with exit status {rc}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
