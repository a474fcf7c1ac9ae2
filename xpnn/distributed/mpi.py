"""The MPI communicator: :class:`~xpnn.distributed.communicator.Communicator` over mpi4py.

Every collective works in place on the array's own memory where it has a host view (a
writeable NumPy array, a torch CPU tensor through DLPack): ``Allreduce(MPI.IN_PLACE, ...)``
and ``Bcast`` read and write that memory, so averaging a flat gradient buffer costs one
scaling pass and one MPI call, no copy. Other arrays are copied to the host and back.
Where every rank runs on one node, the gradient average goes through memory the ranks share
(:mod:`xpnn.distributed.shared_memory`; ``shared_memory = False`` turns it off).
mpi4py is never imported here: :func:`~xpnn.distributed.init` passes its ``MPI`` module in.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.distributed.host_buffers import host_view
from xpnn.distributed.shared_memory import NodeReducer
from xpnn.errors import DistributedError

Array = Any


class MPICommunicator:
    """The :class:`~xpnn.distributed.communicator.Communicator` of an mpi4py communicator
    (``COMM_WORLD`` from :func:`~xpnn.distributed.init`). Supports NumPy and torch (CPU) arrays."""

    supported_backends: tuple[str, ...] | None = ("numpy", "torch")
    shared_memory: bool = True  # gradient averages through node-shared memory where all ranks share one

    def __init__(self, mpi: Any, comm: Any) -> None:
        self.mpi, self.comm = mpi, comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.node: NodeReducer | None = NodeReducer.create(mpi, comm)  # collective: init() on every rank

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

    def allreduce_sum(self, array: Array) -> Array:
        buffer, own = self._host(array, "allreduce_sum")
        self.comm.Allreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)
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
        self.comm.Allreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)
        return array if own else backend.move_like(buffer, array)

    def broadcast(self, array: Array, root: int = 0) -> Array:
        buffer, own = self._host(array, "broadcast")
        self.comm.Bcast(buffer, root=root)
        return array if own else backend.move_like(buffer, array)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size})"
