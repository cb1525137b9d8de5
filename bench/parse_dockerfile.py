"""S8: parse a 10,000-line Dockerfile (target: under 0.2 s, median of several runs).

Run: .venv/bin/python bench/parse_dockerfile.py [--lines N] [--runs R]
The text mixes what real Dockerfiles hold: multi-stage FROMs, long continued RUNs with comment
lines inside, heredocs, JSON forms, ENV/LABEL/ARG with quotes, COPY with flags.
"""
from __future__ import annotations

import argparse
import statistics
import time

BLOCK = '''\
# stage {i}
ARG BASE{i}=debian:bookworm
FROM ${{BASE{i}}} AS stage{i}
ENV PATH=/opt/bin:$PATH LANG=C.UTF-8 NAME{i}="value with spaces"
LABEL org.opencontainers.image.title="stage {i}" version={i}
RUN set -eux; \\
    apt-get update; \\
    # a comment inside the continuation
    apt-get install -y --no-install-recommends ca-certificates curl; \\
    rm -rf /var/lib/apt/lists/*
COPY --from=stage0 --chown=1000:1000 --chmod=0755 /src/a /src/b /dst/
RUN --mount=type=cache,target=/root/.cache <<EOF
pip install -r requirements.txt
echo built {i}
EOF
WORKDIR /app/{i}
EXPOSE 80{p:02d}/tcp
CMD ["python3", "-m", "app", "--port", "80{p:02d}"]
'''


def make_dockerfile(lines: int) -> bytes:
    parts, count, i = [], 0, 0
    while count < lines:
        block = BLOCK.format(i=i, p=i % 100)
        parts.append(block)
        count += block.count("\n")
        i += 1
    return "".join(parts).encode()


def measure(fn, data: bytes, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    data = make_dockerfile(args.lines)
    from lamina.dockerfile.parser import parse
    from lamina.dockerfile.stages import load_dockerfile

    lines = data.count(b"\n")
    for label, fn in (("parse tree", parse), ("parse tree + typed stages", load_dockerfile)):
        t = measure(fn, data, args.runs)
        print(f"S8 {label}: {lines} lines, median {statistics.median(t) * 1000:.1f} ms, "
              f"min {min(t) * 1000:.1f} ms, max {max(t) * 1000:.1f} ms over {args.runs} runs "
              f"(target: under 200 ms)")


if __name__ == "__main__":
    main()
