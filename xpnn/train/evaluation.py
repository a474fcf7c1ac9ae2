"""Evaluation and prediction: ``evaluate`` / ``predict`` and the helpers ``fit`` shares with them.

In eval mode, batch by batch on the model's device, one host synchronisation per pass; under
data-parallel training each rank takes its share of every batch and the sums are all-reduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any
from weakref import WeakKeyDictionary

from xpnn import backend
from xpnn.autograd.graph import no_grad
from xpnn.autograd.tensor import Tensor
from xpnn.checks import check_count, is_integral
from xpnn.data.loader import DataLoader
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.parallel import data_parallel
from xpnn.distributed.run_config import describe_inference
from xpnn.distributed.sharding import Shards
from xpnn.errors import CheckpointError
from xpnn.nn.losses import Loss
from xpnn.nn.metrics import correct_count
from xpnn.train.checks import check_data
from xpnn.train.preflight import model_backend, modes_of, rehearse, restore_modes, validate_labels
from xpnn.train.record import Model

Array = Any
# the loss of each model's last fit, which evaluate() falls back to (Keras' compiled loss); kept
# beside the model, not on it: an attribute would shadow a ``loss`` of the user's Module, and a
# loss that is itself a Module would join the model's tree (its parameters, its state dict)
LAST_FIT_LOSS: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()


def has_accuracy(loss: Any, y: Array = None, classes: int | None = None) -> bool:
    """Whether accuracy means something: a classifying Loss; else (a loss function, or none)
    a (batch, classes) output (``classes``: its width, as the rehearsal found it) and, for a
    loss function, integer class labels (batch,). A (batch, time, vocabulary) output with
    (batch, time) labels has none: counting "correct rows" there would not even broadcast."""
    if isinstance(loss, Loss):
        return loss.classifies
    labels = y is not None and y.ndim == 1 and is_integral(y)
    return classes is not None and (loss is None or labels)


def loss_value(loss: Any, pred: Tensor, y: Array) -> Array:
    """The loss of ``pred`` as an array (a Loss without its label check, or a loss function)."""
    out = loss(pred, y, validate=False) if isinstance(loss, Loss) else loss(pred, y)
    return out.value if isinstance(out, Tensor) else out


def batches(
    loader: DataLoader, epoch: int, shards: Shards | None, start: int = 0
) -> Iterator[tuple[Array, Any, int]]:
    """``(xb, yb, n_global)``: the whole batches from batch ``start`` on (a run resumed where
    Ctrl-C stopped it), or under data-parallel this rank's share of each."""
    if shards is not None:
        if start:
            raise CheckpointError(
                f"a checkpoint taken inside an epoch (after step {start}) resumes in one process"
            )
        yield from shards.batches(loader, epoch)
        return
    for xb, yb in loader.batches(epoch, start):
        yield xb, yb, int(xb.shape[0])


def host_float(value: Any) -> float:
    """A device sum as a host float (still a Python number where no batch was added to it)."""
    return float(value if isinstance(value, int | float) else backend.to_host(value))


def evaluate_loader(
    model: Model,
    loader: DataLoader,
    loss: Loss | None,
    shards: Shards | None = None,
    classes: int | None = None,
) -> dict[str, float]:
    """Mean loss (without regularisation) and accuracy over a loader, in eval mode; one sync.
    With ``shards`` each rank evaluates its share of every batch and the sums are all-reduced.
    ``classes``: the model's output width (see :func:`has_accuracy`)."""
    counting = has_accuracy(loss, loader.y, classes)
    modes = modes_of(model)
    model.eval()
    loss_sum: Any = 0.0
    correct: Any = 0
    seen = 0
    try:
        for xb, yb, _ in batches(loader, 0, shards):
            n = int(xb.shape[0])
            if n == 0:
                continue
            with no_grad():
                pred = model(Tensor(xb))
                if loss is not None:
                    loss_sum = loss_sum + loss_value(loss, pred, yb) * float(n)
            correct, seen = (correct + correct_count(pred.value, yb)) if counting else 0, seen + n
    finally:
        restore_modes(modes)
    loss_total, hits = host_float(loss_sum), host_float(correct)
    if shards is not None:
        loss_total, hits, total = shards.sum_over_ranks(loss_total, hits, seen)
        seen = int(total)
    logs = {"accuracy": hits / max(seen, 1) if counting else math.nan}
    if loss is not None:
        logs["loss"] = loss_total / max(seen, 1)
    return logs


def evaluate(
    model: Model,
    x: Array,
    y: Array,
    *,
    loss: Loss | None = None,
    batch_size: int = 256,
    communicator: Communicator | None = None,
) -> dict[str, float]:
    """``{"loss": ..., "accuracy": ...}`` over ``(x, y)`` in eval mode; the loss is ``loss=`` or
    else the one the model was last fitted with (none: accuracy only). With a communicator
    of several ranks, each evaluates its share of every batch and the sums are all-reduced."""
    check_data("evaluate", x, y)
    check_count("evaluate", "batch_size", batch_size)
    loss = loss if loss is not None else LAST_FIT_LOSS.get(model)  # Keras: the loss of fit()
    classes = rehearse(model, x, y, loss)
    bk, dtype = model_backend(model)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=False, target=bk, dtype=dtype)
    if loss is not None:
        validate_labels(model, loss, loader.y, classes)
    parallel = data_parallel(communicator, model, None)
    if parallel is not None:  # before any work: every rank evaluates the same thing, now
        parallel.meet("evaluate", describe_inference(model, loss, (x, y), batch_size=batch_size))
    return evaluate_loader(model, loader, loss, None if parallel is None else parallel.shards, classes)


def predict(
    model: Model, x: Array, *, batch_size: int = 256, communicator: Communicator | None = None
) -> Array:
    """The model's outputs for ``x`` in eval mode, batch by batch, as one array on its device.
    With a communicator of several ranks, each predicts its share of every batch (as
    ``evaluate``) and every rank returns the whole array, in order (one allgather)."""
    check_data("predict", x)
    check_count("predict", "batch_size", batch_size)
    rehearse(model, x)
    bk, dtype = model_backend(model)
    loader = DataLoader(x, batch_size=batch_size, shuffle=False, target=bk, dtype=dtype)
    parallel = data_parallel(communicator, model, None)
    shards = None if parallel is None else parallel.shards
    if parallel is not None:
        parallel.meet("predict", describe_inference(model, None, (x, None), batch_size=batch_size))
    modes = modes_of(model)
    model.eval()
    try:
        with no_grad():  # a rank's empty share of a short last batch: zero rows, of the right width
            outputs = [model(Tensor(xb)).value for xb, _, _ in batches(loader, 0, shards)]
    finally:
        restore_modes(modes)
    local = bk.xp.concat(outputs, axis=0)
    return local if shards is None else shards.gather_in_order(local, loader.num_samples, batch_size, bk)
