"""Tune glibc's allocator for commands that stream hundreds of MB through large buffers.

A pull moves each layer through 1 MB ``bytes`` objects (download, file reads, inflate). With
glibc's defaults, freed buffers of that size go back to the kernel (heap trimming, mmap for
large blocks), and the next ones fault their pages in again, zeroed: about one page fault per
4 KB streamed, a quarter of the pull's system time. Raising the trim and mmap thresholds lets
the process reuse the freed memory instead; its peak grows by a few buffers at most.

Process-wide, so only the CLI (which owns the process) calls it; elsewhere it does nothing.
"""
from __future__ import annotations

_M_TRIM_THRESHOLD = -1   # <malloc.h>
_M_MMAP_THRESHOLD = -3
_TRIM = 128 << 20        # keep up to this much freed memory at the top of a heap
_MMAP = 32 << 20         # glibc's largest: blocks below it come from the heaps


def keep_freed_memory() -> None:
    """Best effort: nothing happens on a C library without glibc's ``mallopt``."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_TRIM_THRESHOLD, _TRIM)
    mallopt(_M_MMAP_THRESHOLD, _MMAP)
