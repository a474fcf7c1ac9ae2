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

The threads take the pieces (:data:`PIECES_PER_THREAD` per thread) one at a time, whichever is
free: on a machine shared with other processes, a thread that is not scheduled holds back one
piece at most, and the caller runs the others. (Fixed halves made a 2-thread step wait for the
other half at every loop, as OpenBLAS's GEMMs must.)

Small work stays on one thread: waking a thread costs 20-60 us, more than a pass over 64K
floats takes. The count is looked up only for work above :data:`MIN_ELEMENTS` (three C calls,
about 3 us).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MIN_ELEMENTS = 1 << 17  # below this many elements a pass takes ~20 us: one thread
PIECES_PER_THREAD = 4  # a loop's work in this many pieces per thread, taken by whichever is free
_blas: list[Any] | None = None  # threadpoolctl's controllers of NumPy's BLAS, looked up once
_pool: ThreadPoolExecutor | None = None  # the threads beside the caller's
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
    """``loop(*args, begin, end, pieces)`` over every piece ``0..pieces-1`` of ``pieces =
    parts * PIECES_PER_THREAD``, on ``parts`` threads (this one among them), and wait for all;
    piece 0's result. A part's exception is raised (the first) after every piece has stopped
    writing."""
    if parts <= 1:
        return loop(*args, 0, 1, 1)
    job = _Job(loop, args, parts * PIECES_PER_THREAD)
    pool = _executor(parts - 1)
    for _ in range(parts - 1):
        pool.submit(job.work)
    job.work()
    job.finished.wait()  # nothing may still write into the arrays when this returns or raises
    job.args = ()  # a worker that starts late finds no piece: it need not keep the arrays alive
    if job.errors:
        raise job.errors[0]
    return job.result


class _Job:
    """One loop's pieces, taken one at a time by whichever thread is free: a thread the machine
    does not schedule now (other processes on its core) holds back no more than the piece it
    runs; the caller takes the rest, as a serial loop would."""

    def __init__(self, loop: Any, args: tuple[Any, ...], pieces: int) -> None:
        self.loop, self.args, self.pieces = loop, args, pieces
        self.claim = itertools.count()  # next(): the next free piece, atomic under the GIL
        self.done, self.lock, self.finished = 0, threading.Lock(), threading.Event()
        self.errors: list[BaseException] = []
        self.result: Any = None

    def work(self) -> None:
        while (piece := next(self.claim)) < self.pieces:
            try:
                result = self.loop(*self.args, piece, piece + 1, self.pieces)
                if piece == 0:
                    self.result = result
            except BaseException as error:  # raised on the caller's thread by run()
                self.errors.append(error)
            finally:
                with self.lock:
                    self.done += 1
                    if self.done == self.pieces:
                        self.finished.set()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, grown to ``workers`` threads where it has fewer (its threads start lazily)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        # a bigger pool replaces it; the old one's threads end once no caller holds it any more
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="xpnn-loop", initializer=_block_signals)
        _pool_size = workers
    return _pool


def _block_signals() -> None:
    """A pool thread never receives SIGINT (or SIGTERM): the kernel then delivers Ctrl-C to the
    main thread, whose handler ``fit`` relies on (:mod:`xpnn.train.interrupt`); taken by a
    worker, it was at times lost (a Ctrl-C that did not stop training)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
