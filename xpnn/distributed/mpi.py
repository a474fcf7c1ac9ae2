"""The MPI communicator: :class:`~xpnn.distributed.communicator.Communicator` over mpi4py.

Every collective works in place on the array's own memory where it has a host view (a
writeable NumPy array, a torch CPU tensor through DLPack): ``Allreduce(MPI.IN_PLACE, ...)``
and ``Bcast`` read and write that memory, so averaging a flat gradient buffer costs one
scaling pass and one MPI call, no copy. Other arrays are copied to the host and back.
Where every rank runs on one node, the gradient average goes through memory the ranks share
(:mod:`xpnn.distributed.shared_memory`; ``shared_memory = False`` turns it off).

Every collective is non-blocking (``Iallreduce``, ``Ibcast``, ...) and completed by
:class:`~xpnn.distributed.waiting.Waiter`: a waiting rank yields its core, and a wait longer
than the timeout prints which rank timed out in what and aborts the job. The start of every
``fit``, ``evaluate`` and ``predict`` meets on :meth:`MPICommunicator.control`, a duplicate of
the communicator that nothing else uses: a rank that enters ``evaluate`` while another is still
inside ``fit`` never matches one of fit's collectives (MPI would pair an all-reduce of metrics
with one of gradients: ``Message truncated``, or wrong sums); it waits, and the timeout ends it.
mpi4py is never imported here: :func:`~xpnn.distributed.init` passes its ``MPI`` module in.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from xpnn import backend
from xpnn.distributed.buckets import BUCKET_ELEMENTS
from xpnn.distributed.host_buffers import contiguous, gather_buffers, host_values, host_view
from xpnn.distributed.shared_memory import NodeReducer
from xpnn.distributed.waiting import ABORT_GRACE_S, DEFAULT_TIMEOUT_S, Waiter
from xpnn.errors import DistributedError

Array = Any


class MPICommunicator:
    """The :class:`~xpnn.distributed.communicator.Communicator` of an mpi4py communicator
    (``COMM_WORLD`` from :func:`~xpnn.distributed.init`). Supports NumPy and torch (CPU) arrays."""

    supported_backends: tuple[str, ...] | None = ("numpy", "torch")
    shared_memory: bool = True  # gradient averages through node-shared memory where all ranks share one
    overlap: bool = True  # fit starts each gradient bucket's all-reduce during backward
    bucket_elements: int = BUCKET_ELEMENTS  # about how many gradients make a bucket

    def __init__(
        self, mpi: Any, comm: Any, timeout: float | None = DEFAULT_TIMEOUT_S, *, control: bool = True
    ) -> None:
        """Collective over ``comm`` (every rank calls it: :func:`~xpnn.distributed.init` does).
        ``timeout``: seconds a collective may wait for the other ranks (None: for ever)."""
        self.mpi, self.comm = mpi, comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.waiter = Waiter(timeout, self._expired)
        self.where: Callable[[], str] | None = None  # fit sets it: "fit, epoch 2, batch 17 of 118"
        # fit's gradient all-reduce: time not hidden behind backward, steps, path and buckets (overlap.py)
        self.stats: dict[str, float] = {
            "exposed_allreduce_s": 0.0,
            "steps": 0,
            "bucket_path": -1,
            "buckets": 0,
        }
        self._mpi_error: Any = getattr(mpi, "Exception", ())
        self.node: NodeReducer | None = NodeReducer.create(mpi, comm, self.complete) if control else None
        self._control = MPICommunicator(mpi, comm.Dup(), timeout, control=False) if control else self

    @property
    def timeout(self) -> float | None:
        return self.waiter.timeout

    def control(self) -> MPICommunicator:
        """The communicator of the start-of-operation handshakes (see the module docstring)."""
        return self._control

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Wait until ``done()`` holds (a flag in shared memory), as :meth:`complete` waits."""
        self.waiter.wait(done, lambda: self._context(what))

    def complete(self, request: Any, what: str) -> None:
        """Wait for a non-blocking MPI ``request`` (yielding the core; the timeout ends the job)."""
        try:
            self.waiter.wait(request.Test, lambda: self._context(what))
        except self._mpi_error as error:  # e.g. ranks in different collectives
            raise DistributedError(
                f"rank {self.rank} of {self.size}: {self._context(what)} failed: {error}"
            ) from None

    def _context(self, what: str) -> str:
        return what if self.where is None else f"{what} ({self.where()})"

    def _expired(self, what: str, waited: float) -> None:
        """A wait ran past the timeout: say who and where on stderr, then end every rank."""
        sys.stdout.flush()
        print(
            f"xpnn.distributed: rank {self.rank} of {self.size} timed out after {waited:.1f} s "
            f"(timeout={self.timeout:g} s) in {what}: the other ranks never joined it (a rank left "
            "fit or skipped it, or is stuck); ending the job",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(ABORT_GRACE_S)  # the launcher forwards output asynchronously: let it go first
        self.comm.Abort(1)
        os._exit(1)  # MPICH's Abort may return where the other ranks have already finalized

    def _host(self, array: Array, what: str) -> tuple[Any, bool]:
        """(host buffer, whether it is ``array``'s own memory)."""
        view = host_view(array)
        if view is not None:
            return view, True
        name = backend.backend_name(array)
        if name not in ("numpy", "torch"):
            raise DistributedError(
                f"MPICommunicator.{what}: arrays of backend {name!r} are not supported "
                "(expected numpy or torch on the CPU; NCCL for GPUs is not implemented)"
            )
        return backend.to_host(array), False

    def _sum(self, buffer: Any, what: str) -> None:
        self.complete(self.comm.Iallreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM), what)

    def allreduce_sum(self, array: Array) -> Array:
        buffer, own = self._host(array, "allreduce_sum")
        self._sum(buffer, "allreduce_sum")
        return array if own else backend.move_like(buffer, array)

    def allreduce_mean(self, array: Array, weight: float | None = None, *, adopt: bool = False) -> Array:
        """See :meth:`Communicator.allreduce_mean`. ``adopt``: the caller can switch to another
        array of the same shape (an optimizer's flat gradient buffer): the result may then be a
        new node-shared buffer, which the caller uses instead of ``array`` from then on."""
        buffer, own = self._host(array, "allreduce_mean")
        scale = 1.0 / self.size if weight is None else float(weight)
        if scale != 1.0:
            buffer *= scale  # our own buffer (a flat gradient): scaled in place, no temporary
        if self.node is not None:  # collective on every rank; shared_memory=False on any rank: MPI's
            summed = self.node.allreduce_sum(buffer, adopt and own and buffer is array, self.shared_memory)
            if summed is not None:
                return array if summed is buffer else summed
        self._sum(buffer, "the gradient all-reduce")
        return array if own else backend.move_like(buffer, array)

    def iallreduce_sum(self, buffer: Any) -> Any:
        """Start the in-place sum over ranks of a host buffer (a gradient bucket); returns the
        request, which :meth:`complete` waits for."""
        return self.comm.Iallreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)

    def broadcast(self, array: Array, root: int = 0) -> Array:
        buffer, own = self._host(array, "broadcast")
        self.complete(self.comm.Ibcast(buffer, root=root), f"broadcast from rank {root}")
        return array if own else backend.move_like(buffer, array)

    def allgather(self, array: Array) -> Array:
        """Every rank's ``array`` concatenated along axis 0 in rank order (only axis 0 may differ)."""
        host = contiguous(backend.to_host(array))
        rows, counts = host_values([host.shape[0]], "int64"), host_values([0] * self.size, "int64")
        self.complete(self.comm.Iallgather(rows, counts), "allgather")
        out, sizes, offsets = gather_buffers(host, counts)
        self.complete(self.comm.Iallgatherv(host, [out, (sizes, offsets)]), "allgather")
        return backend.move_like(out, array)

    def barrier(self) -> None:
        self.complete(self.comm.Ibarrier(), "barrier")

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size})"
