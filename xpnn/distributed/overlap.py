"""The gradient all-reduce of data-parallel ``fit``, started bucket by bucket while backward runs.

The first step's backward reports (through the tape's gradient-ready hook,
:func:`~xpnn.autograd.graph.set_gradient_ready_hook`) the order in which it finalises each
parameter's gradient, and that step averages them with the single all-reduce (which also moves
the flat buffers into node-shared memory where it can). Its pre-hook then plans the buckets
(:func:`~.buckets.plan_buckets`) and the ranks agree, in one allgather, on the plan and the path:
node-shared buckets (:mod:`.shared_buckets`, no MPI call per step), ``MPI_Iallreduce`` per bucket
(:class:`~.buckets.MPIBuckets`), or, where some rank cannot (a gradient outside the flat
buffers, a backend without host views, ``comm.overlap = False``), the single all-reduce as before.

From the second step on, each gradient backward finalises is put in its slot of the flat buffer
(layers on NumPy write it there already) and the bucket it completes starts at once; the
optimizer's step pre-hook starts what is left (a parameter backward never reached: its slot
zeroed, its ``grad`` left None as in one process) and waits for all buckets.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.autograd.graph import set_gradient_ready_hook
from xpnn.distributed.buckets import BUCKET_ELEMENTS, Bucket, MPIBuckets, plan_buckets
from xpnn.distributed.host_buffers import digest_row
from xpnn.distributed.run_config import digest
from xpnn.distributed.shared_buckets import SharedBuckets
from xpnn.nn.parameter import Parameter
from xpnn.optim.base import Optimizer

Array = Any
OFF, MPI, SHARED = 0, 1, 2  # the paths, in the order the ranks fall back (the minimum wins)


class GradientOverlap:
    """Buckets whose all-reduce starts during backward (see the module docstring)."""

    def __init__(self, communicator: Any, optimizer: Optimizer, shards: Any) -> None:
        self.communicator, self.optimizer, self.shards = communicator, optimizer, shards
        self.order: list[Parameter] = []  # the first step's backward: parameters as finalised
        self.path = -1  # -1: recording (first step); then OFF, MPI or SHARED
        self.reducer: Any = None
        self.buckets: list[Bucket] = []
        self.bucket_of: dict[int, int] = {}  # id(parameter) -> its bucket
        self.homes: dict[int, Array] = {}  # id(parameter) -> its slot of the planned flat buffer
        self._new_step()
        self.previous = set_gradient_ready_hook(self.ready)

    def close(self) -> None:
        """Give the tape its previous hook back (fit is over)."""
        set_gradient_ready_hook(self.previous)

    def ready(self, leaf: Any) -> None:
        """The tape's hook: ``leaf``'s gradient is final."""
        if self.path == -1:
            if isinstance(leaf, Parameter):
                self.order.append(leaf)
            return
        index = self.bucket_of.get(id(leaf)) if self.path != OFF else None
        if index is None or id(leaf) in self.final:
            return
        self._settle(leaf)
        self.remaining[index] -= 1
        if self.remaining[index] == 0:
            self.reducer.start(index, self.shards.weight)
            self.started[index] = True
        self.reducer.progress()

    def finish(self) -> bool:
        """The step's pre-hook: complete the buckets; False where this fit does not use them."""
        if self.path in (-1, OFF):
            return False
        for index, bucket in enumerate(self.buckets):
            if not self.started[index]:
                for p in bucket.params:
                    if id(p) not in self.final:
                        self._settle(p)
                self.reducer.start(index, self.shards.weight)
        self.reducer.finish()
        for p in self.unused:
            p.grad = None  # no gradient this step: the optimizer skips it, as in one process
        self._new_step()
        return True

    def _settle(self, p: Parameter) -> None:
        """``p``'s final gradient into its slot of the planned buffer (zeros where it has none)."""
        home, grad = self.homes[id(p)], p.grad
        if grad is None:
            self.unused.append(p)
            grad = backend.namespace(home).zeros_like(home)
        if grad is not home:
            backend.assign(home, grad)
        p.grad = home
        self.final.add(id(p))

    def _new_step(self) -> None:
        self.remaining = [len(b.params) for b in self.buckets]
        self.started = [False] * len(self.buckets)
        self.final: set[int] = set()
        self.unused: list[Parameter] = []

    def plan(self) -> None:
        """After the first step's single all-reduce: plan the buckets, agree with every rank on
        them and on the path (one allgather), and build the reducer (collective)."""
        layout = self.optimizer.gradient_layout()
        buffers = [buffer for buffer, _ in layout]
        self.buckets = plan_buckets(
            self.order, layout, getattr(self.communicator, "bucket_elements", BUCKET_ELEMENTS)
        )
        self.homes = {id(p): p.grad_home for _, slots in layout for p, _, _ in slots}
        path = self._path(buffers, {id(p) for _, slots in layout for p, _, _ in slots})
        shape = [f"{len(b)}" for b in buffers] + [f"{b.buffer}:{b.start}:{b.stop}" for b in self.buckets]
        table = backend.to_host(self.communicator.allgather(digest_row(path, digest(shape))))
        agreed = (table[:, 1:] == table[0, 1:]).all()
        self.path = int(table[:, 0].min()) if agreed else OFF
        self.bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b.params}
        stats = getattr(self.communicator, "stats", {})
        stats["bucket_path"], stats["buckets"] = self.path, len(self.buckets) if self.path != OFF else 0
        if self.path == SHARED:
            windows = [self.communicator.node.index_of(b) for b in buffers]
            self.reducer = SharedBuckets(
                self.communicator.node, windows, self.buckets, self.communicator.wait
            )
        elif self.path == MPI:
            self.reducer = MPIBuckets(self.communicator, buffers, self.buckets)
        self._new_step()

    def _path(self, buffers: list[Array], covered: set[int]) -> int:
        """The best path this rank can take (the ranks then take the minimum)."""
        grads = [p for p in self.optimizer.parameters() if p.grad is not None]
        fits = bool(buffers) and all(id(p) in covered for p in grads) and len(grads) == len(covered)
        fits = fits and all(p.grad_home is not None for p in grads)
        if not (fits and getattr(self.communicator, "overlap", False) and MPIBuckets.eligible(buffers)):
            return OFF
        node = getattr(self.communicator, "node", None)
        if node is None or not getattr(self.communicator, "shared_memory", False):
            return MPI
        return SHARED if all(node.index_of(b) >= 0 for b in buffers) else MPI
