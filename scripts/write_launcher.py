"""Write lamina's launcher (``.venv/bin/lamina``, run by scripts/setup.sh after pip's install).

pip's console script starts Python with ``site``, which reads every .pth file of the venv and
runs their ``import`` lines (setuptools' distutils shim): ~5 ms of every command, on a
``lamina run`` that takes ~100. The launcher starts the same Python with -S (no ``site``) and
puts on ``sys.path`` the directories ``site`` would have added (the venv's site-packages,
lamina's source for an editable install), found now by comparing the two paths; then it loads
the bundle of lamina's bytecode (src/lamina_startup.py: ~8 ms of every command). Usage:
``python scripts/write_launcher.py PATH`` with the venv's python; rewrites PATH only if it
changes.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = """#!{python} -S
# Written by scripts/write_launcher.py: pip's script, without `site` (see there), and with
# the modules' bytecode from lamina_startup's bundle.
import sys
sys.path.extend({paths!r})
import lamina_startup
lamina_startup.install()
from lamina.cli.main import main
if __name__ == "__main__":
    sys.exit(main())
"""


def site_paths(python: str) -> list[str]:
    """The sys.path entries ``site`` adds for ``python``, in order."""
    def path(*flags: str) -> list[str]:
        out = subprocess.run([python, *flags, "-c", "import sys; print(sys.path[1:])"],
                             capture_output=True, text=True, check=True, cwd="/")
        return ast.literal_eval(out.stdout)
    bare = set(path("-S"))
    return [p for p in path() if p not in bare]


def main(target: str) -> int:
    python = sys.executable
    text = TEMPLATE.format(python=python, paths=site_paths(python))
    path = Path(target)
    if path.exists() and path.read_text() == text:
        return 0
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
