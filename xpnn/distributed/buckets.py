"""Gradient buckets: the flat gradient buffers cut into runs that backward fills one after another.

Backward finalises the gradients of the last layers first. Grouping the parameters in that
order (as the first step's backward reported them) into contiguous slices of their flat buffer,
each about :data:`BUCKET_ELEMENTS` long, lets a bucket's all-reduce start as soon as its last
gradient is final, while backward computes the rest (PyTorch DDP's ``Reducer``). A parameter is
never split; a run stops where the next gradient is not adjacent in the buffer (a Module whose
parameters are declared in another order than used just gets more, smaller buckets).

:class:`MPIBuckets` reduces buckets by ``MPI_Iallreduce`` on each slice, in place. Every
element is still ``sum over ranks of weight_r * grad_r``, each rank's slice scaled by its weight
before the sum as the single all-reduce does: for two ranks the same bits; for more, MPI may
order a sum by message size (the node-shared path, :mod:`.shared_buckets`, always sums in rank
order, so there the bits never change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xpnn.distributed.host_buffers import host_view

Array = Any
BUCKET_ELEMENTS = 65_536  # 256 KB of float32: a few buckets for the benchmark MLP's 235,146


@dataclass
class Bucket:
    """Slice ``[start, stop)`` of flat gradient buffer ``buffer`` (an index into the plan's
    buffers), holding the gradients of ``params``."""

    buffer: int
    start: int
    stop: int
    params: list[Any] = field(default_factory=list)


def plan_buckets(
    order: Sequence[Any],
    layout: Sequence[tuple[Array, Sequence[tuple[Any, int, int]]]],
    limit: int = BUCKET_ELEMENTS,
) -> list[Bucket]:
    """Buckets over ``layout`` (an optimizer's :meth:`~xpnn.Optimizer.gradient_layout`) in the
    order backward finalised the parameters (``order``; the ones it never reached follow)."""
    where = {
        id(p): (index, start, stop) for index, (_, slots) in enumerate(layout) for p, start, stop in slots
    }
    params = {id(p): p for _, slots in layout for p, _, _ in slots}
    ordered = [p for p in order if id(p) in where]
    seen = {id(p) for p in ordered}
    ordered += [p for _, slots in reversed(layout) for p, _, _ in reversed(slots) if id(p) not in seen]
    buckets: list[Bucket] = []
    for p in ordered:
        index, start, stop = where[id(p)]
        last = buckets[-1] if buckets else None
        joins = last is not None and last.buffer == index and (stop == last.start or start == last.stop)
        if last is not None and joins and last.stop - last.start + stop - start <= limit:
            last.start, last.stop = min(last.start, start), max(last.stop, stop)
            last.params.append(params[id(p)])
        else:
            buckets.append(Bucket(index, start, stop, [params[id(p)]]))
    return buckets


class MPIBuckets:
    """Buckets reduced by a non-blocking all-reduce each (see the module docstring)."""

    def __init__(self, communicator: Any, buffers: Sequence[Array], buckets: Sequence[Bucket]) -> None:
        self.communicator = communicator
        hosts = [host_view(b) for b in buffers]  # eligible buffers have one (checked by the plan)
        self.slices = [hosts[b.buffer][b.start : b.stop] for b in buckets]  # type: ignore[index]
        self.requests: list[Any] = [None] * len(buckets)

    def start(self, index: int, weight: float) -> None:
        """Scale this rank's bucket ``index`` by ``weight`` and start its all-reduce."""
        part = self.slices[index]
        if weight != 1.0:
            part *= weight
        self.requests[index] = self.communicator.iallreduce_sum(part)

    def progress(self) -> None:
        """Let MPI move the started all-reduces on (it progresses only inside MPI calls)."""
        for request in self.requests:
            if request is not None:
                request.Test()

    def finish(self) -> None:
        """Wait for every bucket's all-reduce (all were started)."""
        for index, request in enumerate(self.requests):
            self.communicator.complete(
                request, f"the gradient all-reduce (bucket {index + 1} of {len(self.requests)})"
            )
            self.requests[index] = None

    @staticmethod
    def eligible(buffers: Sequence[Array]) -> bool:
        """Whether every buffer can be reduced in place (a host view of its memory)."""
        return all(host_view(b) is not None for b in buffers)
