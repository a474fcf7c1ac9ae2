"""Each rank's share of every global batch, and the sums that make a metric global again.

Every rank draws the same ``(seed, epoch)`` permutation (the loader's), cuts it into the same
global batches of ``batch_size`` samples, and keeps the contiguous slice
``[n * rank // size, n * (rank + 1) // size)`` of each (ChainerMN's scattered data set,
per batch). Shares differ by at most one sample, and a rank may get none of a last batch
smaller than the number of ranks. Gradients are averaged with each rank's weight
``n_local / n_global``, so the step sees the global batch's mean gradient, uneven or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from xpnn import backend
from xpnn.data.loader import DataLoader
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.host_buffers import host_values, inverse_order

Array = Any


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of ``n`` samples that rank ``rank`` of ``size`` takes."""
    return n * rank // size, n * (rank + 1) // size


class Shards:
    """This rank's part of a loader's batches; ``weight`` is the current batch's
    ``n_local / n_global`` (what the gradient all-reduce scales by)."""

    def __init__(self, communicator: Communicator) -> None:
        self.communicator = communicator
        self.weight = 1.0
        self.epoch, self.batch, self.batches_per_epoch = 0, -1, 0
        self.rows = (0, 0, 0)  # this rank's [start, stop) of the current global batch, and its size

    def position(self) -> str:
        """Where the loop is, for messages: ``fit, epoch 2, batch 17 of 118``."""
        if self.batch < 0:
            return "fit, before the first batch"
        return f"epoch {self.epoch + 1}, batch {self.batch + 1} of {self.batches_per_epoch}"

    def batches(self, loader: DataLoader, epoch: int) -> Iterator[tuple[Array, Array | None, int]]:
        """``(x_local, y_local, n_global)`` for each global batch of ``loader`` in epoch ``epoch``."""
        xp, rank, size = loader.bk.xp, self.communicator.rank, self.communicator.size
        index = backend.from_host(loader.order(epoch), loader.bk)  # once per epoch, as the loader
        n = loader.num_samples
        self.epoch, self.batches_per_epoch = epoch, len(loader)
        for k in range(len(loader)):
            self.batch = k
            first = k * loader.batch_size
            n_global = min(first + loader.batch_size, n) - first
            start, stop = shard_bounds(n_global, rank, size)
            idx = index[first + start : first + stop]
            xb = loader.images(idx)  # the loader's own gather, cast and scale: one process's numbers
            self.weight = (stop - start) / n_global
            self.rows = (start, stop, n_global)
            yield xb, (None if loader.y is None else xp.take(loader.y, idx, axis=0)), n_global

    def sum_over_ranks(self, *values: float) -> tuple[float, ...]:
        """The sums over ranks of a few host numbers, in one all-reduce (once per epoch)."""
        summed = self.communicator.allreduce_sum(host_values([float(v) for v in values]))
        return tuple(float(v) for v in summed)

    def gather_in_order(self, local: Array, n: int, batch_size: int, bk: Any) -> Array:
        """Every rank's rows of an unshuffled pass (``local``: this rank's shares of each batch of
        ``batch_size``, concatenated), on every rank, in the samples' order: one allgather."""
        gathered = self.communicator.allgather(local)
        runs = []  # the samples the gathered rows belong to: rank by rank, batch by batch
        for rank in range(self.communicator.size):
            for first in range(0, n, batch_size):
                start, stop = shard_bounds(min(first + batch_size, n) - first, rank, self.communicator.size)
                runs.append((first + start, first + stop))
        where = inverse_order(runs, n)
        return bk.xp.take(gathered, backend.from_host(where, bk), axis=0)
