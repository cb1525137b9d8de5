"""build.sandbox's in-process output capture closes only the descriptors it made: one opened
inside the block (which may take the number its pipe had) stays open after it."""
from __future__ import annotations

import os

from lamina.build.sandbox import _captured_output


def test_a_descriptor_opened_in_the_block_outlives_it(tmp_path):
    seen: list[bytes] = []
    with _captured_output(seen.append) as tail:
        fd = os.open(tmp_path / "mine", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
        os.write(1, b"to the pipe\n")
    try:
        os.fstat(fd)                      # still open: the capture did not close it
        assert os.write(fd, b"x") == 1
    finally:
        os.close(fd)
    assert list(tail) == ["to the pipe"] and b"".join(seen) == b"to the pipe\n"
    assert (tmp_path / "mine").read_bytes() == b"x"
