"""Freed memory kept in the process while training (glibc), instead of page faults at every step.

glibc gives a freed block above its mmap threshold back to the kernel, and trims the top of its
heap once more than its trim threshold lies free there. Both start low (128 KiB, 256 KiB) and
rise only with the blocks the process has freed so far, to at most 32 MiB and 64 MiB (64-bit):
a training step that allocates and frees tens of MB (a CNN's activations, gradients and im2col
columns) can then return its memory to the kernel at the end of every step and map it back in,
a page fault and a zeroed page per 4 KiB, during the next, depending on what the process did
before. ``benchmarks/memory.py`` (a CNN fitting a small synthetic set) measured 3,384 faults
and 73.0 ms a step against none and 61.4 ms with the thresholds below.

:func:`keep_freed_memory`, called by ``fit`` before its first epoch (a loop of your own can call
it before its first step), sets glibc's mmap threshold to 32 MiB and its trim threshold to
256 MiB, once per process: blocks up to 32 MiB come from the heap, and up to 256 MiB of free heap
stays mapped between steps (larger blocks are still mapped and unmapped each time). Nothing
numeric changes. The setting outlives the ``fit`` that made it: the process keeps its memory
near its peak, as a training run reaches that peak at every step anyway, and freed blocks up to
32 MiB inside the heap are not given back to the kernel while the process runs.

It does nothing off Linux's glibc, under a preloaded allocator (``LD_PRELOAD``), where the user
set any of these four thresholds (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or their ``glibc.malloc.*`` names in
``GLIBC_TUNABLES``: theirs stand), or with the fast paths off (:func:`xpnn.kernels.enabled`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

from xpnn import kernels

MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic mmap threshold on 64-bit
TRIM_THRESHOLD = 256 << 20  # free heap kept mapped: a CNN step frees tens of MB at once
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_THRESHOLDS = ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max")
_done: list[bool] = []  # [whether the thresholds were set] once tried with the fast paths on


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once (see the module docstring); True where they
    are set now, by this call or an earlier one."""
    if not _done:
        if not kernels.enabled():
            return False  # not tried: a later call with the fast paths on still sets them
        _done.append(_apply())
    return _done[0]


def user_set_malloc() -> bool:
    """Whether the environment sets one of glibc's malloc thresholds or preloads another
    allocator (the user's choice, left as it is)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return (
        any(f"MALLOC_{name.upper()}_" in os.environ for name in _THRESHOLDS)
        or any(f"glibc.malloc.{name}" in tunables for name in _THRESHOLDS)
        or "malloc" in os.environ.get("LD_PRELOAD", "")  # jemalloc, tcmalloc: mallopt means nothing
    )


def _apply() -> bool:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or user_set_malloc():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc's soname: no ldconfig lookup
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mapped = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))  # 0 where refused (32-bit)
    return mapped and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
