"""Data-parallel training: gradients averaged over ranks before each step.

``fit(..., communicator=comm)`` uses :class:`DataParallel`; hand-written loops use
:class:`DistributedOptimizer` (Horovod's) and :func:`broadcast_parameters`. Either way the
step sees the global batch's mean gradient

    g = sum over ranks r of (n_r / n) * g_r,    g_r = the mean gradient of rank r's n_r samples,

computed with ONE all-reduce per flat gradient buffer (``Optimizer.gradient_buffers``): each
rank scales its buffer by ``n_r / n`` in place and the all-reduce sums them. It runs as the
optimizer's step pre-hook, so clipping by global norm and the update equation see ``g``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from xpnn import backend
from xpnn.autograd.tensor import Tensor
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.consistency import (
    broadcast_optimizer_state,
    broadcast_parameters,
    check_same_outputs,
    handshake,
)
from xpnn.distributed.host_buffers import host_values
from xpnn.distributed.overlap import GradientOverlap
from xpnn.distributed.sharding import Shards
from xpnn.errors import DistributedError
from xpnn.nn.layers import Dropout
from xpnn.optim.base import Optimizer

Array = Any


def average_gradients(optimizer: Optimizer, communicator: Communicator, weight: float | None = None) -> None:
    """Replace every pending gradient of ``optimizer`` by its (weighted) average over ranks:
    ``sum_r weight_r * grad_r`` (``weight=None``: the plain mean), one all-reduce per buffer."""
    for buffer in optimizer.gradient_buffers():
        movable = optimizer.can_move_gradient_buffer(buffer)
        out = communicator.allreduce_mean(buffer, weight, adopt=movable)
        if out is buffer:
            continue
        if movable and tuple(out.shape) == tuple(buffer.shape) and type(out) is type(buffer):
            optimizer.move_gradient_buffer(buffer, out)  # e.g. into memory the ranks share
        elif backend.assign(buffer, out) is not buffer:
            raise DistributedError(
                f"average_gradients: a gradient of backend {backend.backend_name(buffer)} "
                "is read-only, so its average cannot be written back"
            )


class DistributedOptimizer:
    """Horovod's ``DistributedOptimizer``: ``step()`` averages the gradients over ranks, then
    runs the wrapped optimizer's step; everything else is the wrapped optimizer's.

    ``step(weight=n_local / n_global)`` weights this rank's gradient by its share of an
    uneven batch (the default, ``None``, weights every rank equally). Start every rank from
    the same parameters with :func:`~xpnn.distributed.broadcast_parameters`.
    """

    def __init__(self, optimizer: Optimizer, communicator: Communicator) -> None:
        self.optimizer, self.communicator = optimizer, communicator

    def step(self, weight: float | None = None) -> None:
        """Average the gradients over ranks (weighted by ``weight``, this rank's share of the
        batch; None: ``1 / size``), then run the wrapped optimizer's step."""
        if self.communicator.size > 1:
            average_gradients(self.optimizer, self.communicator, weight)
        self.optimizer.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.communicator!r})"


class DataParallel:
    """What ``fit(..., communicator=comm)`` does around its loop on more than one rank.

    :meth:`meet` checks every rank is about to run the same thing (the handshake, before
    anything changes); :meth:`start` broadcasts rank 0's parameters, buffers, counters,
    optimizer state, seed and epoch, compares the ranks' outputs for a few samples, hands the
    model the communicator and hooks the gradient average into the optimizer; :meth:`stop`
    undoes the last two. ``shards`` gives each rank its part of every batch and sums metrics.
    """

    def __init__(self, communicator: Communicator, model: Any, optimizer: Optimizer | None) -> None:
        params = model.parameters()
        name = backend.backend_name(params[0].value) if params else "numpy"
        supported = communicator.supported_backends
        if supported is not None and name not in supported:
            raise DistributedError(
                f"data-parallel training over {type(communicator).__name__}: the model is on backend "
                f"{name!r}; supported: {', '.join(supported)} (move it with model.to('numpy'))"
            )
        self.communicator, self.model, self.optimizer = communicator, model, optimizer
        self.shards = Shards(communicator)
        self._remove_hook: Any = None
        self.overlap: GradientOverlap | None = None

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.communicator.rank

    def meet(self, operation: str, run: Sequence[str]) -> None:
        """The opening handshake of ``operation`` (see :func:`~.consistency.handshake`)."""
        handshake(self.communicator, operation, run)

    def start(self, seed: int, epoch: int, probe: Array) -> tuple[int, int]:
        """Make every rank rank 0's copy (after :meth:`meet`); returns rank 0's ``(seed, epoch)``.
        ``probe``: a few samples, on the model's backend, whose outputs the ranks compare."""
        comm = self.communicator
        broadcast_parameters(self.model, comm)
        if self.optimizer is not None:
            broadcast_optimizer_state(self.optimizer, comm)
        check_same_outputs(comm, self.model, probe)
        if self.optimizer is not None:
            self._remove_hook = self.optimizer.register_step_pre_hook(self._average)
            self.overlap = GradientOverlap(comm, self.optimizer, self.shards)
        self.model.set_communicator(comm)
        self._set_share(self.shards)
        if hasattr(comm, "where"):  # a timeout's message says which epoch and batch
            comm.where = self.shards.position
        first = comm.broadcast(host_values([seed, epoch], "int64"))
        return int(first[0]), int(first[1])

    def empty_step(self, xb: Array) -> None:
        """A step on this rank's empty share of a last batch smaller than the number of ranks:
        forward and backward zero samples anyway (any Module, on the tape), so that every
        collective (the gradient all-reduce, BatchNorm's sums) still meets every rank; the zero
        gradients weigh 0."""
        pred = self.model(Tensor(xb))
        if pred.requires_grad:
            pred.backward(backend.namespace(pred.value).zeros_like(pred.value))
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad()

    def _set_share(self, shards: Shards | None) -> None:
        """Dropout layers draw their rows of the global batch's mask (see :class:`~xpnn.Dropout`)."""
        for module in self.model.modules():
            if isinstance(module, Dropout):
                module.share = shards

    def _average(self, optimizer: Optimizer) -> None:
        """The step's pre-hook: the buckets' wait, or the single all-reduce (the first step, or
        where the ranks cannot overlap). Its time, what backward did not hide, adds up in
        ``communicator.stats["exposed_allreduce_s"]`` (an MPI communicator's)."""
        start = time.perf_counter()
        overlap = self.overlap
        if overlap is None or not overlap.finish():
            average_gradients(optimizer, self.communicator, self.shards.weight)
        stats = getattr(self.communicator, "stats", None)
        if stats is not None:
            stats["exposed_allreduce_s"] += time.perf_counter() - start
            stats["steps"] += 1
        if overlap is not None and overlap.path == -1:
            overlap.plan()

    def stop(self) -> None:
        """Back to one process: the model forgets the communicator, the optimizer the hook."""
        self.model.set_communicator(None)
        self._set_share(None)
        if hasattr(self.communicator, "where"):
            self.communicator.where = None
        if self._remove_hook is not None:
            self._remove_hook()
            self._remove_hook = None
        if self.overlap is not None:
            self.overlap.close()
            self.overlap = None


def data_parallel(
    communicator: Communicator | None, model: Any, optimizer: Optimizer | None
) -> DataParallel | None:
    """fit's and evaluate's data-parallel helper; None for one process (no communicator, or size 1)."""
    if communicator is None or communicator.size == 1:
        return None
    return DataParallel(communicator, model, optimizer)
