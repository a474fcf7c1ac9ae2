"""The gradient all-reduce of ranks on one node, through memory they share (MPI-3 windows).

MPI's ``Allreduce`` of a 0.94 MB gradient between two processes of one machine copies it
through the library's own shared cells: the sender copies in, the receiver copies out, and
the reduced half travels back the same way (0.20-0.23 ms here). Where the gradient buffer
itself lies in a window every rank of the node maps (``MPI_Win_allocate_shared``), each rank
sums its own ``1/size`` slice of every rank's buffer, in rank order, and writes that sum into
every buffer: one read and one write of the data per rank, no staging copies (0.09-0.12 ms).

The flat gradient buffer moves into such a window once (``adopt``): the first all-reduce of a
buffer whose owner can switch to another array allocates the window, and the owner (the
optimizer's flat group) uses it from then on, so backward writes each gradient straight into
shared memory. Every call first agrees, in one all-reduce of a few integers, on which path all
ranks take: a rank whose buffer is not shared (another model, a repacked group) sends every
rank down MPI's own ``Allreduce``, never into a collective the others do not call.

Memory: the MPI "unified" model, synchronised as the standard prescribes
(``MPI_Win_sync``, then a collective, then ``MPI_Win_sync``). Windows live until MPI ends:
one per adopted buffer (an optimizer's flat gradients: a repacked group adopts a new one and
the old one stays), never freed while anything may write into them. For more than two ranks
the rank-order sum can differ in the last bit from MPI's own reduction order; every rank still
holds the same bits. The sum of one element is computed by one rank and copied to all, so every rank
holds the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FIELDS = 5  # shared-buffer index, eligible, adopt, length, dtype code


class NodeReducer:
    """The all-reduce of :class:`~xpnn.distributed.mpi.MPICommunicator` where every rank of
    ``comm`` lies on one node; :meth:`create` returns None elsewhere (ranks on several nodes)."""

    def __init__(self, mpi: Any, comm: Any, node: Any, complete: Callable[[Any, str], None]) -> None:
        self.mpi, self.comm, self.node, self.complete = mpi, comm, node, complete
        self.rank, self.size = int(node.Get_rank()), int(node.Get_size())
        self.windows: list[tuple[Any, list[np.ndarray]]] = []  # per shared buffer: window, every rank's array

    @classmethod
    def create(cls, mpi: Any, comm: Any, complete: Callable[[Any, str], None]) -> NodeReducer | None:
        """Collective over ``comm``: the reducer where all its ranks share one node, else None.
        ``complete(request, what)`` waits for a non-blocking MPI request (the communicator's)."""
        node = comm.Split_type(mpi.COMM_TYPE_SHARED, key=comm.Get_rank())
        if node.Get_size() != comm.Get_size() or comm.Get_size() < 2:
            node.Free()
            return None
        return cls(mpi, comm, node, complete)

    def _index(self, buffer: np.ndarray) -> int:
        for index, (_, arrays) in enumerate(self.windows):
            if buffer is arrays[self.rank]:
                return index
        return -1

    def allreduce_sum(self, buffer: np.ndarray, adopt: bool, enabled: bool = True) -> np.ndarray | None:
        """The element-wise sum over ranks in shared memory: ``buffer`` itself (a shared one),
        a new shared buffer holding it (``adopt``: the caller switches to it), or None where
        the ranks did not all qualify or one has it ``enabled=False`` (then the caller runs
        MPI's ``Allreduce``). Collective: every rank calls it, whatever its own answers."""
        eligible = enabled and type(buffer) is np.ndarray and buffer.ndim == 1 and buffer.dtype in _DTYPES
        eligible = eligible and buffer.flags.c_contiguous and buffer.flags.writeable
        code = _DTYPES.index(buffer.dtype) if eligible else -1
        index = self._index(buffer) if eligible else -1
        if index >= 0:
            self.windows[index][0].Sync()  # this rank's stores (backward, the weight) before the collective
        mine = np.array([index, eligible, adopt, buffer.size, code], dtype=np.int64)
        both = np.concatenate([mine, -mine])  # one MIN all-reduce gives every field's min and max
        self.complete(
            self.comm.Iallreduce(self.mpi.IN_PLACE, both, op=self.mpi.MIN), "the gradient all-reduce"
        )
        low, high = both[:_FIELDS], -both[_FIELDS:]
        if low[0] == high[0] and low[0] >= 0:  # every rank passed its part of one shared buffer
            self._sum_in_place(int(low[0]))
            return buffer
        if not (low[1] and low[2] and low[3] == high[3] and low[4] == high[4]):
            return None
        index = self._allocate(buffer.size, buffer.dtype)
        window, arrays = self.windows[index]
        shared = arrays[self.rank]
        shared[...] = buffer
        window.Sync()
        self.barrier()  # every rank's gradient is in its shared buffer before any rank sums
        self._sum_in_place(index)
        return shared

    def barrier(self) -> None:
        self.complete(self.node.Ibarrier(), "the gradient all-reduce (node barrier)")

    def allocate_flags(self, count: int) -> tuple[Any, list[np.ndarray]]:
        """A window of ``count`` int64 zeros per rank (collective over the node): the flag table
        of :class:`~.shared_buckets.SharedBuckets`. Returns it and every rank's array."""
        window = self.mpi.Win.Allocate_shared(count * 8, 8, comm=self.node)
        window.Lock_all()
        tables = [
            np.frombuffer(window.Shared_query(rank)[0], dtype=np.int64, count=count)
            for rank in range(self.size)
        ]
        tables[self.rank][...] = 0
        window.Sync()
        self.barrier()  # every rank's zeros are in place before any rank reads a flag
        window.Sync()
        return window, tables

    def index_of(self, buffer: np.ndarray) -> int:
        """The window whose array of this rank is ``buffer``, or -1."""
        return self._index(buffer) if type(buffer) is np.ndarray else -1

    def _allocate(self, size: int, dtype: np.dtype) -> int:
        """A new window of ``size`` elements per rank (collective over the node)."""
        item = dtype.itemsize
        window = self.mpi.Win.Allocate_shared(size * item, item, comm=self.node)
        window.Lock_all()  # a shared lock for good: Win_sync is valid from now on
        arrays = []
        for rank in range(self.size):
            memory, _ = window.Shared_query(rank)
            arrays.append(np.frombuffer(memory, dtype=dtype, count=size))
        self.windows.append((window, arrays))
        return len(self.windows) - 1

    def _sum_in_place(self, index: int) -> None:
        """Every rank's buffer of window ``index`` becomes their sum: this rank adds up its slice
        ``[n * rank // size, n * (rank + 1) // size)`` in rank order and writes it into all."""
        window, arrays = self.windows[index]
        n = arrays[0].size
        start, stop = n * self.rank // self.size, n * (self.rank + 1) // self.size
        window.Sync()  # the agreement all-reduce was the collective: see every rank's gradient
        total = arrays[0][start:stop]
        for other in arrays[1:]:
            np.add(total, other[start:stop], out=total)
        for other in arrays[1:]:
            other[start:stop] = total
        window.Sync()
        self.barrier()  # every slice is summed and written before any rank reads the result
        window.Sync()
