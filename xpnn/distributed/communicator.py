"""The communicator interface of data-parallel training, its one-process implementation, and
:func:`init`, which picks the implementation for the process at hand.

A communicator is the small set of collectives data-parallel training needs (ChainerMN's
``CommunicatorBase``): an element-wise sum over ranks, a weighted average built on it, a
broadcast from one rank and a barrier. :class:`~xpnn.distributed.mpi.MPICommunicator`
implements it over mpi4py; a NCCL one for GPUs would be a second implementation of the same
:class:`Communicator` protocol. :class:`SingleProcess` is the size-1 case: every call returns
its input at no cost, so code written for N ranks runs unchanged in one process.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from xpnn.distributed.waiting import ABORT_GRACE_S, DEFAULT_TIMEOUT_S
from xpnn.errors import ArgumentError

Array = Any

# Set by every MPI launcher we know (MPICH/Hydra and Slurm's PMI, PMIx, Open MPI): without one
# of them the process was not started by mpiexec, and init() does not even import mpi4py.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


@runtime_checkable
class Communicator(Protocol):
    """What data-parallel training asks of a communicator (MPI today, NCCL later).

    Arrays are those of the model's backend; a result has the argument's shape and dtype
    and is the argument itself wherever the implementation could work in place.
    """

    rank: int
    size: int
    supported_backends: tuple[str, ...] | None  # None: any backend

    def allreduce_sum(self, array: Array) -> Array:
        """The element-wise sum of ``array`` over all ranks, on every rank."""
        ...

    def allreduce_mean(self, array: Array, weight: float | None = None, *, adopt: bool = False) -> Array:
        """``sum over ranks of weight_r * array_r``; ``weight=None`` means ``1 / size`` (the mean).
        With weights summing to 1 over ranks this is a weighted mean (an uneven last batch).
        ``adopt=True``: the caller can switch to another array, so the result may be a new one
        (e.g. in memory the ranks share) that it uses in place of ``array`` from then on."""
        ...

    def broadcast(self, array: Array, root: int = 0) -> Array:
        """Rank ``root``'s ``array`` on every rank (same shape and dtype on every rank)."""
        ...

    def allgather(self, array: Array) -> Array:
        """Every rank's ``array`` concatenated along axis 0 in rank order, on every rank (the
        arrays may differ in length along axis 0 only)."""
        ...

    def barrier(self) -> None:
        """Return once every rank has called it."""
        ...

    def control(self) -> Communicator:
        """A communicator over the same ranks whose collectives never pair with this one's: the
        handshake at the start of fit / evaluate / predict runs there, so a rank entering one
        while another is still inside a collective of the last waits (or times out) instead of
        pairing the two (see :mod:`xpnn.distributed.mpi`)."""
        ...

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (an error on one rank must not leave others waiting)."""
        ...


class SingleProcess:
    """The size-1 communicator: rank 0 of 1; every collective returns its input unchanged."""

    rank = 0
    size = 1
    supported_backends: tuple[str, ...] | None = None

    def allreduce_sum(self, array: Array) -> Array:
        """``array`` (the sum over one rank)."""
        return array

    def allreduce_mean(self, array: Array, weight: float | None = None, *, adopt: bool = False) -> Array:
        """``array`` (the mean over one rank)."""
        # weight is n_local / n_global, which is 1 in one process: nothing to scale
        return array

    def broadcast(self, array: Array, root: int = 0) -> Array:
        """``array`` (rank 0 is this process)."""
        return array

    def allgather(self, array: Array) -> Array:
        """``array`` itself: the only rank's."""
        return array

    def barrier(self) -> None:
        """Nothing to wait for."""

    def control(self) -> SingleProcess:
        """Itself: one process has no collective to keep apart."""
        return self

    def abort(self, code: int = 1) -> None:
        """End the process with exit status ``code``."""
        raise SystemExit(code)

    def __repr__(self) -> str:
        return "SingleProcess(rank=0, size=1)"


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (mpiexec, srun) started this process."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def init(timeout: float | None = DEFAULT_TIMEOUT_S) -> Communicator:
    """The communicator of this process: over mpi4py's ``COMM_WORLD`` when started by
    ``mpiexec -n N`` with N > 1, else :class:`SingleProcess` (also without mpi4py).

    Under MPI it is collective (call it once, on every rank: it finds the ranks that share a
    node), and it also installs an ``excepthook`` that prints the traceback and calls
    ``MPI_Abort``: an uncaught exception on any rank ends the whole job instead of leaving
    the other ranks blocked in a collective. ``timeout``: seconds any collective may wait for
    the other ranks (a rank that caught an exception and skipped ``fit``, or left it); past
    it, the rank prints which rank timed out in what and aborts the job (exit code non-zero).
    ``None`` waits for ever. Waiting ranks sleep rather than spin (:mod:`.waiting`), so ranks
    sharing cores with other programs do not steal each other's time.
    """
    if timeout is not None and (
        isinstance(timeout, bool) or not (isinstance(timeout, int | float) and 0 < timeout < math.inf)
    ):
        raise ArgumentError(
            f"xpnn.distributed.init: timeout must be a number of seconds > 0 or None, got {timeout!r}"
        )
    if not launched_by_mpi():
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        return SingleProcess()
    if MPI.COMM_WORLD.Get_size() == 1:
        return SingleProcess()
    from xpnn.distributed.mpi import MPICommunicator

    communicator = MPICommunicator(MPI, MPI.COMM_WORLD, None if timeout is None else float(timeout))
    install_abort_hook(communicator)
    return communicator


def install_abort_hook(communicator: Communicator) -> None:
    """Make an uncaught exception print its traceback, then ``communicator.abort(1)``."""
    previous = sys.excepthook
    if getattr(previous, "xpnn_aborts", False):
        return

    def hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        previous(kind, value, traceback)
        sys.stderr.flush()
        sys.stdout.flush()
        # the launcher forwards each rank's output asynchronously, and an abort drops what it
        # has not forwarded yet: give it a moment, or the traceback that says why is lost
        time.sleep(ABORT_GRACE_S)
        communicator.abort(1)

    aborting: Callable[..., None] = hook
    aborting.xpnn_aborts = True  # type: ignore[attr-defined]
    sys.excepthook = aborting
