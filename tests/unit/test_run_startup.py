"""Start-up of ``lamina run``: the launcher without ``site`` (scripts/write_launcher.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_launcher_runs_lamina_without_site(tmp_path):
    launcher = tmp_path / "lamina"
    subprocess.run([sys.executable, str(REPO / "scripts" / "write_launcher.py"), str(launcher)],
                   check=True)
    assert launcher.read_text().splitlines()[0] == f"#!{sys.executable} -S"
    out = subprocess.run([str(launcher), "--version"], capture_output=True, text=True)
    assert (out.returncode, out.stdout.strip()) == (0, "lamina 0.1.0")
    # What pip's script finds, it finds: zstandard in site-packages, lamina's source.
    paths = next(line for line in launcher.read_text().splitlines()
                 if line.startswith("sys.path.extend"))
    probe = subprocess.run([sys.executable, "-S", "-c", f"import sys\n{paths}\n"
                            "import zstandard, lamina\nprint('site' in sys.modules)"],
                           capture_output=True, text=True)
    assert (probe.returncode, probe.stdout) == (0, "False\n"), probe.stderr


def test_loading_the_run_and_build_modules_imports_none_of_the_slow_ones():
    """Start-up time: the modules `lamina run` and `lamina build` load leave out typing,
    inspect (dataclasses' docstring fallback), argparse, OpenSSL's hashlib and datetime, each
    1-7 ms (lamina/__init__.py, image/digest.py, cli/args.py). Imports inside functions are
    not seen here: the e2e test of a whole build and run is."""
    code = ("import sys\n"
            "import lamina.cli.main, lamina.cli.run, lamina.cli.build\n"
            "import lamina.api.containers, lamina.runtime.run, lamina.runtime.monitor\n"
            "import lamina.api.build, lamina.build.builder, lamina.build.steps\n"
            "slow = {'typing', 'inspect', 'argparse', '_hashlib', 'datetime', 'gettext'}\n"
            "print(sorted(slow & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "src")})
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr
