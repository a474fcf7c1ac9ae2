"""Every rank starts from the same model: a fingerprint check, then rank 0's arrays broadcast.

Ranks that build different models (another width, dtype or layer count) would deadlock or
silently average unrelated numbers, so fit compares first: each rank describes its model
(every parameter's and buffer's name, shape and dtype, the optimizer's state) as text, and
a 16-byte hash of it is broadcast from rank 0 and compared everywhere (two tiny collectives).
Only on a mismatch is rank 0's full description sent, so the error names the first difference.
Then rank 0's parameters, buffers and optimizer state are broadcast (Horovod's
``broadcast_parameters`` / ``broadcast_optimizer_state``), in place where the backend allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from xpnn import backend
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.host_buffers import host_bytes, host_values
from xpnn.errors import ModelMismatchError
from xpnn.nn.parameter import Parameter
from xpnn.optim.base import Optimizer

Array = Any


def _spec(array: Array) -> str:
    return f"shape {tuple(int(n) for n in array.shape)}, dtype {backend.dtype_name(array.dtype)}"


def describe(model: Any, optimizer: Optimizer | None = None, extra: Sequence[str] = ()) -> list[str]:
    """One line per parameter, buffer and optimizer state array (name, shape, dtype; a frozen
    parameter says so: ranks that freeze different ones would average unrelated gradients),
    then ``extra``."""
    lines = [f"{len(model.parameters())} parameters"]
    lines += [
        f"parameter {name}: {_spec(p.value)}{'' if p.requires_grad else ', frozen'}"
        for name, p in model.named_parameters()
    ]
    lines += [f"buffer {name}: {_spec(value)}" for name, value in getattr(model, "buffers", dict)().items()]
    if optimizer is not None:
        lines.append(f"optimizer {type(optimizer).__name__}")
        for position, entry in sorted(optimizer.state.items()):
            lines += [
                f"optimizer state {position}.{k}: {_spec(v)}" for k, v in sorted(entry.items()) if k != "step"
            ]
    return lines + list(extra)


def describe_run(x: Array, validation: Any, *, batch_size: int, epochs: int, shuffle: bool) -> list[str]:
    """What else the ranks of one fit must agree on, or they would take different numbers of steps."""

    def samples(data: Any) -> str:
        return f"{int(data.shape[0])} samples of shape {tuple(int(n) for n in data.shape[1:])}"

    return [
        f"training data: {samples(x)}",
        f"validation data: {'none' if validation is None else samples(validation[0])}",
        f"batch_size {batch_size}, epochs {epochs}, shuffle {shuffle}",
    ]


def first_difference(reference: Sequence[str], mine: Sequence[str], rank: int) -> str:
    """The first line where this rank's description differs from rank 0's, in words."""
    for theirs, ours in zip(reference, mine, strict=False):
        if theirs != ours:
            return f"rank 0 has '{theirs}', rank {rank} has '{ours}'"
    longer, name = (reference, "rank 0") if len(reference) > len(mine) else (mine, f"rank {rank}")
    return f"only {name} has '{longer[min(len(reference), len(mine))]}'"


def _lines_of(communicator: Communicator, text: bytes, root: int) -> list[str]:
    """Rank ``root``'s description, on every rank (its length first, then its bytes)."""
    size = communicator.broadcast(host_values([len(text)], "int64"), root)
    mine = text if communicator.rank == root else None
    return bytes(communicator.broadcast(host_bytes(mine, int(size[0])), root)).decode().split("\n")


def check_same_model(communicator: Communicator, lines: Sequence[str], who: str = "fit") -> None:
    """Raise :class:`ModelMismatchError` on every rank unless all ranks' ``lines`` equal rank 0's;
    every rank's message names the first rank that differs and its first difference."""
    text = "\n".join(lines).encode()
    digest = host_bytes(hashlib.sha256(text).digest()[:16], 16)
    reference = communicator.broadcast(digest.copy())
    differs = host_values([0] * communicator.size, "int64")
    differs[communicator.rank] = int(bool((reference != digest).any()))
    differs = communicator.allreduce_sum(differs)
    if not differs.any():
        return
    culprits = [r for r in range(communicator.size) if differs[r]]
    ours, theirs = _lines_of(communicator, text, 0), _lines_of(communicator, text, culprits[0])
    raise ModelMismatchError(
        f"data-parallel {who}: rank {culprits[0]} differs from rank 0 "
        f"(ranks differing: {culprits}): {first_difference(ours, theirs, culprits[0])}"
    )


def _broadcast_into(communicator: Communicator, array: Array, root: int) -> Array:
    """``array`` holding rank ``root``'s values: itself where written in place, else a new array."""
    out = communicator.broadcast(array, root)
    return array if out is array else backend.assign(array, out)


def broadcast_parameters(model_or_params: Any, communicator: Communicator, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameter values (and a model's buffers), in place.

    ``model_or_params``: a model (any Module: its ``parameters()`` and every sub-module's own
    buffers, such as BatchNorm's running statistics, wherever it sits in the tree) or an
    iterable of :class:`~xpnn.Parameter`.
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


def broadcast_optimizer_state(optimizer: Optimizer, communicator: Communicator, root: int = 0) -> None:
    """Give every rank rank ``root``'s optimizer state: step counts and state arrays (the same
    structure on every rank is checked first by :func:`check_same_model`)."""
    positions = sorted(optimizer.state)
    counts = [optimizer.t] + [int(optimizer.state[p].get("step", 0)) for p in positions]
    counts = [int(c) for c in communicator.broadcast(host_values(counts, "int64"), root)]
    optimizer.t = counts[0]
    for position, step in zip(positions, counts[1:], strict=True):
        entry = optimizer.state[position]
        entry["step"] = step
        for name in sorted(k for k in entry if k != "step"):
            entry[name] = _broadcast_into(communicator, entry[name], root)
