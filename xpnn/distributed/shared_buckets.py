"""Gradient buckets reduced in node-shared memory while backward runs, with no MPI call per step.

Where the flat gradient buffers already live in MPI-3 windows every rank of the node maps
(:mod:`.shared_memory`: backward writes each gradient there), a bucket needs no message at all:
each rank marks it ready in a small shared flag table once its part is final and scaled; a rank
that finds a bucket ready on every rank sums its own ``1/size`` slice of it over the ranks, in
rank order, writes the sum into every rank's buffer and marks it done. Ranks do this whenever
they pass by (after each gradient backward finalises, and in the step's final wait), so the
sums interleave with backward and a rank waits only for what is still missing.

The flags hold the step's generation number (1, 2, ... on every rank), so they never need
resetting: bucket ``b`` is ready on rank ``r`` when ``ready[r, b] >= generation``. Memory
ordering follows the MPI "unified" model: ``MPI_Win_sync`` between writing data and raising a
flag, and between seeing a flag and reading data. A rank reads another's buffer only after its
ready flag and writes into it only before its own done flag; the next step's gradients are
written only after every done flag of this step, so no write races a read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xpnn.distributed.buckets import Bucket


class SharedBuckets:
    """Buckets of flat gradient buffers held in :class:`~.shared_memory.NodeReducer` windows."""

    def __init__(self, node: Any, windows: Sequence[int], buckets: Sequence[Bucket],
                 wait: Callable[[Callable[[], bool], str], None]) -> None:  # fmt: skip
        """``windows[i]``: the node window holding flat buffer ``i``; ``wait(done, what)``: the
        communicator's yielding, timed wait. Collective over the node (allocates the flags)."""
        self.node, self.wait = node, wait
        self.rank, self.size = node.rank, node.size
        self.parts = [self._part(node.windows[windows[b.buffer]], b) for b in buckets]
        count = len(buckets)
        self.flags_window, tables = node.allocate_flags(2 * count)
        self.ready = [table[:count] for table in tables]  # per rank: generation each bucket was ready
        self.done = [table[count:] for table in tables]  # per rank: generation it summed its slice
        self.generation = 1
        self.summed = [False] * count  # this rank's slice of the bucket summed, this step

    def _part(self, window: tuple[Any, list[Any]], bucket: Bucket) -> tuple[Any, list[Any], slice]:
        """(window, every rank's view of the bucket, this rank's slice of it)."""
        handle, arrays = window
        n = bucket.stop - bucket.start
        mine = slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)
        return handle, [a[bucket.start : bucket.stop] for a in arrays], mine

    def start(self, index: int, weight: float) -> None:
        """This rank's bucket ``index`` is final: scale it by ``weight``, flag it ready."""
        handle, views, _ = self.parts[index]
        if weight != 1.0:
            views[self.rank] *= weight
        handle.Sync()  # the data before the flag
        self.ready[self.rank][index] = self.generation
        self.flags_window.Sync()

    def progress(self) -> None:
        """Sum this rank's slice of every bucket that every rank has flagged ready."""
        self.flags_window.Sync()
        for index, summed in enumerate(self.summed):
            if not summed and all(table[index] >= self.generation for table in self.ready):
                self._sum(index)

    def _sum(self, index: int) -> None:
        handle, views, mine = self.parts[index]
        handle.Sync()  # see every rank's data behind its flag
        total = views[0][mine]
        for other in views[1:]:
            total += other[mine]  # in place, into this rank's own buffer
        for other in views[1:]:
            other[mine] = total
        handle.Sync()
        self.done[self.rank][index] = self.generation
        self.flags_window.Sync()
        self.summed[index] = True

    def finish(self) -> None:
        """Wait until every rank summed its slice of every bucket (all were started)."""
        self.wait(self._complete, "the gradient all-reduce (node-shared buckets)")
        for handle, _, _ in self.parts:
            handle.Sync()
        self.generation += 1
        self.summed = [False] * len(self.summed)

    def _complete(self) -> bool:
        self.progress()
        return all(self.summed) and all(int(table.min()) >= self.generation for table in self.done)
