"""Freed memory kept in the process while training (glibc), instead of page faults at every step.

glibc gives a freed block above its mmap threshold back to the kernel, and trims the top of its
heap once more than its trim threshold lies free there. Both rise with the blocks freed, to at
most 32 MiB and 64 MiB: a training step that allocates and frees more than that (a CNN's
activations, gradients and im2col columns) then returns its memory to the kernel at the end of
every step and maps it back in, a page fault and a zeroed page per 4 KiB, during the next. The
CNN of ``benchmarks/conv.py`` (batch 128, one thread) faulted ~3,400 pages a step and took 72 ms
a step instead of 58 (in a process where a PyTorch step had run first it did not fault: its
allocations had already raised the thresholds, so that benchmark's own figures hid this).

:func:`keep_freed_memory` sets glibc's mmap threshold to 32 MiB and its trim threshold to
256 MiB, once per process, at the first training step with the fast paths on
(:func:`xpnn.train.loop.train_step`, so ``fit``): blocks up to 32 MiB come from the heap, and up
to 256 MiB of free heap stays mapped between steps. Nothing numeric changes; the process keeps
its resident memory near its peak, as a training run reaches that peak at every step anyway.
It does nothing off Linux's glibc, where the user set glibc's malloc tunables
(``MALLOC_*_`` variables or ``glibc.malloc`` in ``GLIBC_TUNABLES``: theirs stand), or with the fast
paths off (:func:`xpnn.kernels.enabled`). A loop of your own can call it before its first step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic mmap threshold: blocks up to it from the heap
TRIM_THRESHOLD = 256 << 20  # free heap kept mapped (a CNN step frees ~100 MB at once)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_done: list[bool] = []  # [applied] once tried


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once (see the module docstring); True where they
    are set now, by this call or an earlier one."""
    if not _done:
        _done.append(_apply())
    return _done[0]


def user_set_malloc() -> bool:
    """Whether the environment sets glibc's malloc tunables (the user's choice, left as it is)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in tunables


def _apply() -> bool:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or user_set_malloc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting either one ends glibc's own adjustment of both
    mapped = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return mapped and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
