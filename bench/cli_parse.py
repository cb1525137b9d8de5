"""The command line's share of a command's start-up: importing lamina.cli.main, building one
command's parser and parsing its arguments, each run in a fresh ``python -S`` process.

Run: .venv/bin/python bench/cli_parse.py [--runs N] [--src DIR]

``--src`` measures another source tree (e.g. a copy of an older commit's ``src``). The lamina
package is imported before the clock starts: every command imports it anyway.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = {
    "run": ["run", "--rm", "--network", "none", "busybox", "true"],
    "build": ["build", "-q", "--network", "none", "-t", "app", "."],
    "image ls": ["image", "ls", "-q"],
}
PROBE = """
import sys, time
sys.path.insert(0, {src!r})
import lamina
t0 = time.perf_counter()
from lamina.cli.main import build_parser
t1 = time.perf_counter()
parser = build_parser({command!r})
t2 = time.perf_counter()
parser.parse_args({argv!r})
t3 = time.perf_counter()
print((t3 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
"""


def measure(src: str, argv: list[str], runs: int) -> list[float]:
    """Median milliseconds of (total, import, build, parse) over ``runs`` fresh processes."""
    code = PROBE.format(src=src, command=argv[0], argv=argv)
    samples = [list(map(float, subprocess.run([sys.executable, "-S", "-c", code], check=True,
                                              capture_output=True, text=True).stdout.split()))
               for _ in range(runs)]
    return [statistics.median(column) for column in zip(*samples)]


def main() -> None:
    args = sys.argv[1:]
    runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 10
    src = args[args.index("--src") + 1] if "--src" in args else str(SRC)
    subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True,
                   stdout=subprocess.DEVNULL)     # measure with .pyc files, as installed
    print(f"{'command':<10}{'total ms':>10}{'import':>10}{'build':>10}{'parse':>10}"
          f"   (median of {runs} processes)")
    for name, argv in CASES.items():
        total, imported, built, parsed = measure(src, argv, runs)
        print(f"{name:<10}{total:>10.2f}{imported:>10.2f}{built:>10.2f}{parsed:>10.2f}")


if __name__ == "__main__":
    main()
