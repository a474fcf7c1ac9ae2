"""How many threads the numba loops of :mod:`xpnn.kernels` run on: the count the user set.

A user limits threads in one of three places: BLAS's pool (``threadpoolctl.threadpool_limits``,
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` read when NumPy's OpenBLAS loads), numba's own
(``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), and the cores the process may run on
(``taskset``, ``os.sched_setaffinity``). A loop here runs on the smallest of those counts, so
it never uses more threads than the GEMMs around it: the loops and the GEMMs take turns (a
step calls one, then the other), and together they never ask for more cores than the user
gave. One thread runs the serial loop, the same machine code as before threads came.

A loop splits its work into ``parts`` contiguous pieces, one per thread, each computing whole
outputs (planes of an image, rows, columns, ranges of a flat buffer) in the serial loop's
order: the bits do not depend on the thread count. The only loops whose sums change order
with it say so and document their tolerance.

Small work stays on one thread: waking a pool costs 2-30 us (numba's workqueue and OpenMP
layers measured here), more than a pass over 64K floats takes. The count is looked up only
for work above :data:`MIN_ELEMENTS` (three C calls, about 3 us).
"""

from __future__ import annotations

import os
from typing import Any

MIN_ELEMENTS = 1 << 17  # below this many elements a pass takes ~20 us: one thread
_blas: list[Any] | None = None  # threadpoolctl's controllers of NumPy's BLAS, looked up once


def _blas_controllers() -> list[Any]:
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController  # optional: without it, numba's count
        except ImportError:
            _blas = []
        else:
            _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas


def count() -> int:
    """The threads a loop may use now: the least of numba's count, each BLAS pool's count and
    the cores this process may run on (at least 1)."""
    import numba  # reached only from loops that run where numba imported

    threads = numba.get_num_threads()
    for controller in _blas_controllers():
        blas = controller.get_num_threads()
        if blas is not None and blas >= 1:
            threads = min(threads, int(blas))
    if threads > 1 and hasattr(os, "sched_getaffinity"):  # Linux; elsewhere numba's count knows
        threads = min(threads, len(os.sched_getaffinity(0)))
    return max(1, threads)


def parts_for(elements: int) -> int:
    """How many pieces a pass over ``elements`` values splits into: 1 for small work, else
    :func:`count`."""
    return 1 if elements < MIN_ELEMENTS else count()
