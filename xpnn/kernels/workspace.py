"""Scratch buffers the fast paths reuse from call to call instead of asking the allocator.

A convolution's chunk of im2col columns is written, read by one GEMM and dropped, thousands of
times an epoch. A fresh ``np.empty`` for it is cheap while the allocator keeps the memory, but
glibc hands blocks of more than its mmap threshold (at most 32 MiB) back to the kernel at every
free, and the next allocation pays a page fault and a zeroed page for each 4 KiB: 58 MB of
im2col columns in the ResNet example cost ~10 ms per convolution that way. Here a handful of
flat byte buffers are kept and lent out as typed views.

A buffer is free when nothing but this module holds it: every view of it keeps a reference to
it, so its reference count says whether a view lent out earlier (or anything made from one)
is still alive. Nothing has to be given back, and a result that still uses a buffer (a saved
array, an exception's traceback) keeps it from being lent again.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

import numpy as np

Array = Any
KEPT = 6  # buffers kept between calls (a convolution uses two at once: columns and their gradient)
_buffers: list[np.ndarray] = []  # flat uint8 arrays, smallest first
_lock = threading.Lock()  # two threads must not take the same free buffer


def scratch(shape: tuple[int, ...], dtype: Any) -> Array:
    """An uninitialised C-contiguous NumPy array of ``shape`` and ``dtype``, a view of a buffer
    kept here that nothing else uses now (the smallest that fits; a new one where none does)."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    with _lock:
        for buffer in _buffers:
            # free: three references, the list's, the loop's name and getrefcount's argument
            if buffer.nbytes >= size and sys.getrefcount(buffer) <= 3:
                return buffer[:size].view(dtype).reshape(shape)
        buffer = np.empty(max(size, 1), dtype=np.uint8)
        _buffers.append(buffer)
        _buffers.sort(key=lambda b: b.nbytes)
        _evict()
        return buffer[:size].view(dtype).reshape(shape)


def _evict() -> None:
    """Drop free buffers, smallest first, while more than :data:`KEPT` are kept."""
    excess = len(_buffers) - KEPT
    for buffer in list(_buffers):
        if excess <= 0:
            return
        if sys.getrefcount(buffer) <= 4:  # the list, list(...)'s copy, this name, the argument
            _buffers.remove(buffer)
            excess -= 1


def clear() -> None:
    """Forget every kept buffer (their memory returns once no view of them is alive)."""
    with _lock:
        _buffers.clear()
