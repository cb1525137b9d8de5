"""atheris: layer apply on random tar-ish bytes, into a small tmpfs (needs root; run it
through fuzz/run.sh, which mounts that tmpfs).

Nothing may be written outside the target: a sentinel directory beside it is checked after
every input. The tmpfs keeps any input from filling the host's disk.
"""
import io
import os
import shutil
import tempfile

import atheris

with atheris.instrument_imports():
    from lamina.layer import apply_layer, open_decompressed

from common import main

# fuzz/run.sh mounts a 64 MiB tmpfs here and unmounts it at the end (libFuzzer leaves
# without running Python's exit handlers, so this process could not).
SCRATCH = os.environ.get("LAMINA_FUZZ_SCRATCH", "")
if not os.path.ismount(SCRATCH):
    raise SystemExit("run through fuzz/run.sh: LAMINA_FUZZ_SCRATCH must be a tmpfs mount")
for leftover in os.listdir(SCRATCH):
    shutil.rmtree(os.path.join(SCRATCH, leftover))
OUTSIDE = os.path.join(SCRATCH, "outside")
os.mkdir(OUTSIDE)


def target(data: bytes) -> None:
    dest = tempfile.mkdtemp(dir=SCRATCH)
    try:
        apply_layer(open_decompressed(io.BytesIO(data)), dest)
    finally:
        shutil.rmtree(dest)
        assert os.listdir(OUTSIDE) == [], "a layer wrote outside its target"
        assert os.listdir(SCRATCH) == ["outside"], os.listdir(SCRATCH)


if __name__ == "__main__":
    main(target)
