"""How many threads the numba loops of :mod:`xpnn.kernels` run on (the count the user set),
and the threads they run on.

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

The parts run on a pool of Python threads (:func:`run`), each calling the one serially
compiled loop, which releases the GIL, on its part; not on numba's ``parallel=True``
threading layers. Those were measured here at 2 threads next to NumPy's OpenBLAS: OpenMP's
workers spin for ~20 ms after each loop (GOMP's spin count times Skylake's 140-cycle
``pause``) on the core an OpenBLAS thread needs next, and OpenBLAS's workers spin after each
GEMM on the core a loop needs: a ResNet step took 14-17 s instead of 0.3-0.6 s. Idle Python
threads sleep on a lock, so a loop and a GEMM never fight for a core; workqueue, numba's
other layer, also sleeps but aborts the process when two threads start loops at once. And
only the serial loop compiles (and caches): no parallel build at the first run.

Small work stays on one thread: waking a thread costs 20-60 us, more than a pass over 64K
floats takes. The count is looked up only for work above :data:`MIN_ELEMENTS` (three C calls,
about 3 us).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

MIN_ELEMENTS = 1 << 17  # below this many elements a pass takes ~20 us: one thread
_blas: list[Any] | None = None  # threadpoolctl's controllers of NumPy's BLAS, looked up once
_pool: ThreadPoolExecutor | None = None  # the threads that run parts 1.. (part 0: the caller's)
_pool_size = 0


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


def run(loop: Any, parts: int, args: tuple[Any, ...]) -> Any:
    """``loop(*args, begin, end, parts)`` for every part ``0..parts-1``, each on its own thread
    (part 0 on this one), and wait for all; part 0's result. Every part's exception is raised
    (the first), after all parts have stopped writing."""
    if parts <= 1:
        return loop(*args, 0, 1, 1)
    pool = _executor(parts - 1)
    futures = [pool.submit(loop, *(*args, part, part + 1, parts)) for part in range(1, parts)]
    try:
        result = loop(*args, 0, 1, parts)
    finally:
        wait(futures)  # nothing may still write into the arrays when this returns or raises
    for future in futures:
        future.result()  # a part's exception
    return result


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, grown to ``workers`` threads where it has fewer (its threads start lazily)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        # a bigger pool replaces it; the old one's threads end once no caller holds it any more
        _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="xpnn-loop"), workers
    return _pool
