"""How a rank waits for the others: briefly busy, then asleep, never past the timeout.

MPI libraries wait by spinning: MPICH polls its progress engine without pause, so a rank that
waits for a slower one burns a whole core. With more runnable processes than cores (two ranks
and one other busy program on a two-core laptop) the spinning rank steals the time of the very
rank it waits for, and an epoch took 9-18x longer than one process. Every collective of
:class:`~xpnn.distributed.mpi.MPICommunicator` is therefore a non-blocking call (or a flag in
memory the ranks share) completed here: polled for :data:`SPIN_S` (the other rank is usually
microseconds away on an idle machine), then polled between sleeps of :data:`SLEEP_S`, which give
the core to whoever needs it.

The same loop enforces ``init(timeout=)``: a wait longer than the timeout (a rank that left a
collective, caught an exception and skipped ``fit``, or died) calls ``expired(what, waited)``,
which for an MPI job prints who timed out in what and aborts the whole job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SPIN_S = 50e-6  # busy polling first: an idle machine's other rank arrives within this
SLEEP_S = 50e-6  # then sleep between polls (Linux rounds it up to ~60 us: timer slack)
DEFAULT_TIMEOUT_S = 300.0  # init()'s default: no legitimate wait between two ranks lasts minutes
ABORT_GRACE_S = 0.5  # seconds between printing why the job ends and MPI_Abort (output goes first)


class Waiter:
    """Waits for ``done()`` to hold, yielding the core; ``expired(what, waited_s)`` past ``timeout``
    seconds (None: wait for ever). ``expired`` must not return (it raises or ends the job)."""

    def __init__(self, timeout: float | None, expired: Callable[[str, float], None]) -> None:
        self.timeout = timeout
        self.expired = expired

    def wait(self, done: Callable[[], bool], what: str | Callable[[], str]) -> None:
        """Return once ``done()`` is True; ``what`` names the wait in a timeout's message."""
        if done():
            return
        clock, sleep = time.perf_counter, time.sleep
        start = clock()
        spin_until = start + SPIN_S
        deadline = None if self.timeout is None else start + self.timeout
        while not done():
            now = clock()
            if now < spin_until:
                continue
            if deadline is not None and now > deadline:
                self.expired(what() if callable(what) else what, now - start)
                raise AssertionError("Waiter.expired returned")  # it must raise or end the job
            sleep(SLEEP_S)
