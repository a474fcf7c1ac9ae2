"""Every rank runs the same thing from the same state: a handshake, then rank 0's arrays broadcast.

The handshake opens every data-parallel ``fit``, ``evaluate`` and ``predict``: ONE exchange (an
allgather of three integers per rank on the communicator's control channel) of what this rank
is about to do and a 16-byte hash of its description of the run (:mod:`.run_config`). Ranks in
different operations (``evaluate`` on one, ``fit`` on another) get a named
:class:`DistributedError` on every rank, before anything changes, instead of MPI pairing an
all-reduce of metrics with one of gradients; ranks whose runs differ get a
:class:`ModelMismatchError` naming the first differing line (only then are the lines sent).
Then rank 0's parameters, buffers, counters and optimizer state are broadcast (Horovod's
``broadcast_parameters`` / ``broadcast_optimizer_state``), in place where the backend allows,
and the ranks compare their outputs for the same few samples: a user's ``forward`` is code that
no description shows, and the same weights and inputs must give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import no_grad
from xpnn.autograd.tensor import Tensor
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.host_buffers import digest_row, first_mismatch, host_bytes, host_values, probe_row
from xpnn.distributed.run_config import describe_optimizer, describe_tensors, digest
from xpnn.errors import DistributedError, ModelMismatchError
from xpnn.nn.parameter import Parameter
from xpnn.optim.base import Optimizer

Array = Any
OPERATIONS = ("fit", "evaluate", "predict")  # what a rank can be starting; any other: "another"
PROBE_VALUES = 32  # output values each rank shows the others (of the first few samples)


def describe(model: Any, optimizer: Optimizer | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The parameters and buffers (name, shape, dtype, frozen), the optimizer's, then ``extra``."""
    lines = describe_tensors(model) + ([] if optimizer is None else describe_optimizer(optimizer))
    return lines + list(extra)


def first_difference(reference: Sequence[str], mine: Sequence[str], rank: int) -> str:
    """The first line where this rank's description differs from rank 0's, in words."""
    for theirs, ours in zip(reference, mine, strict=False):
        if theirs != ours:
            return f"rank 0 has '{theirs}', rank {rank} has '{ours}'"
    longer, name = (reference, "rank 0") if len(reference) > len(mine) else (mine, f"rank {rank}")
    return f"only {name} has '{longer[min(len(reference), len(mine))]}'"


def _lines_of(control: Communicator, text: bytes, root: int) -> list[str]:
    """Rank ``root``'s description, on every rank (its length first, then its bytes)."""
    size = control.broadcast(host_values([len(text)], "int64"), root)
    mine = text if control.rank == root else None
    return bytes(control.broadcast(host_bytes(mine, int(size[0])), root)).decode().split("\n")


def handshake(communicator: Communicator, operation: str, lines: Sequence[str]) -> None:
    """The opening exchange of a data-parallel ``operation`` (see the module docstring); raises
    the same named error on every rank where the ranks differ, and returns where they agree."""
    control = communicator.control()
    text = "\n".join(lines).encode()
    code = OPERATIONS.index(operation) if operation in OPERATIONS else len(OPERATIONS)
    if hasattr(control, "where"):  # a timeout here: a rank never started the operation
        control.where = lambda: f"the handshake that opens {operation}: every rank must call it"
    table = backend.to_host(control.allgather(digest_row(code, digest(lines))))
    if len(set(table[:, 0].tolist())) > 1:
        names = [OPERATIONS[c] if c < len(OPERATIONS) else "another operation" for c in table[:, 0]]
        other = next(r for r, name in enumerate(names) if name != names[0])
        raise DistributedError(
            f"data-parallel {operation} on rank {control.rank}: rank 0 called {names[0]} but rank {other} "
            f"called {names[other]} (every rank: {', '.join(names)}); all ranks must call fit, evaluate "
            "and predict together, in the same order"
        )
    culprits = [r for r in range(control.size) if (table[r, 1:] != table[0, 1:]).any()]
    if culprits:
        ours, theirs = _lines_of(control, text, 0), _lines_of(control, text, culprits[0])
        raise ModelMismatchError(
            f"data-parallel {operation}: rank {culprits[0]} differs from rank 0 "
            f"(ranks differing: {culprits}): {first_difference(ours, theirs, culprits[0])}"
        )


def check_same_model(communicator: Communicator, lines: Sequence[str], who: str = "fit") -> None:
    """Raise :class:`ModelMismatchError` on every rank unless all ranks' ``lines`` equal rank 0's
    (the :func:`handshake` of operation ``who``)."""
    handshake(communicator, who, lines)


def check_same_outputs(communicator: Communicator, model: Any, probe: Array, operation: str = "fit") -> None:
    """Raise :class:`ModelMismatchError` on every rank unless every rank's ``model`` gives rank
    0's outputs for ``probe`` (a few samples, the same on every rank), in eval mode without
    recording: after the broadcast the weights are equal, so outputs that differ mean the
    ``forward`` code does. Compared to 1e-4 of their scale, not bitwise: ranks may run
    different BLAS kernels (another CPU, another thread count)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            out = backend.to_host(model(Tensor(probe)).value)
    finally:
        for module, training in modes:
            module.training = training
    table = backend.to_host(communicator.control().allgather(probe_row(out, PROBE_VALUES)))
    for rank in range(1, table.shape[0]):
        a, b = table[0], table[rank]
        at = first_mismatch(a, b)
        if at is not None:
            what = "outputs" if at == 0 else f"output value {at - 1}"
            raise ModelMismatchError(
                f"data-parallel {operation}: rank {rank}'s model computes other outputs than rank 0's "
                f"from the same weights and input ({what}: rank 0 {a[at]:.6g}, rank {rank} {b[at]:.6g}): "
                "the ranks' forward code differs"
            )


def _broadcast_into(communicator: Communicator, array: Array, root: int) -> Array:
    """``array`` holding rank ``root``'s values: itself where written in place, else a new array."""
    out = communicator.broadcast(array, root)
    return array if out is array else backend.assign(array, out)


def broadcast_parameters(model_or_params: Any, communicator: Communicator, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameter values (and a model's buffers and counters:
    BatchNorm's running statistics and batch count, Dropout's mask seed), in place.

    ``model_or_params``: a model (any Module: its ``parameters()`` and every sub-module's own
    buffers, wherever it sits in the tree) or an iterable of :class:`~xpnn.Parameter`.
    """
    params: Iterable[Parameter] = (
        model_or_params.parameters() if hasattr(model_or_params, "parameters") else model_or_params
    )
    for p in params:
        p.value = _broadcast_into(communicator, p.value, root)
    modules = model_or_params.modules() if hasattr(model_or_params, "modules") else ()
    for module in modules:  # the order of named_buffers(), the same on every rank (checked)
        for name, value in module.own_buffers().items():
            setattr(module, name, _broadcast_into(communicator, value, root))
        counters = module.counters()
        if counters:
            names = sorted(counters)
            values = communicator.broadcast(host_values([counters[k] for k in names], "int64"), root)
            module.load_counters({k: int(v) for k, v in zip(names, values, strict=True)})


def broadcast_optimizer_state(optimizer: Optimizer, communicator: Communicator, root: int = 0) -> None:
    """Give every rank rank ``root``'s optimizer state: step counts and state arrays (the same
    structure on every rank is checked first by the :func:`handshake`)."""
    positions = sorted(optimizer.state)
    counts = [optimizer.t] + [int(optimizer.state[p].get("step", 0)) for p in positions]
    counts = [int(c) for c in communicator.broadcast(host_values(counts, "int64"), root)]
    optimizer.t = counts[0]
    for position, step in zip(positions, counts[1:], strict=True):
        entry = optimizer.state[position]
        entry["step"] = step
        for name in sorted(k for k in entry if k != "step"):
            entry[name] = _broadcast_into(communicator, entry[name], root)
