"""fit / evaluate / predict's up-front argument checks: every mistake found before training.

An error that would surface only after a whole epoch (a checkpoint path that does not format,
an EarlyStopping that monitors ``val_loss`` without validation data) or as a raw exception deep
in the loop (0 samples, a Python list, ``loss=None``) is named here, before anything runs.
Shapes and dtypes only: nothing here reads an array's values, so nothing synchronises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from xpnn.backend import namespace
from xpnn.checks import check_count, check_number
from xpnn.errors import ArgumentError, ArgumentTypeError, NonFiniteLossError, OptimizerError, ShapeError
from xpnn.nn.losses import Loss
from xpnn.optim.base import Optimizer
from xpnn.train.record import Callback

Array = Any
LOGS = {"loss", "accuracy", "seconds", "samples_per_s", "lr"}  # what every epoch's logs hold


def check_data(who: str, x: Any, y: Any = None, names: tuple[str, str] = ("x", "y")) -> int:
    """``x`` (and ``y``) must be arrays with the same, non-zero number of samples; returns it."""
    for name, value in zip(names, (x, y), strict=True):
        if value is None and name == names[1]:
            continue
        try:
            namespace(value)
        except TypeError:
            several = isinstance(value, tuple | list) and value and all(hasattr(v, "shape") for v in value)
            hint = (
                "a model of several inputs takes them as one array, split in its forward (x[:, :k], x[:, k:])"
                if several
                else "wrap it with numpy.asarray"
            )
            got = type(value).__name__
            raise ArgumentTypeError(
                f"{who}: expected {name} to be an array (NumPy or of a backend), got {got}; {hint}"
            ) from None
        if value.ndim < 1:
            raise ShapeError(f"{who}: expected {name} of shape (samples, ...), got a 0-d array")
    samples = int(x.shape[0])
    if samples == 0:
        raise ShapeError(f"{who}: {names[0]} has 0 samples (shape {tuple(x.shape)}); expected at least one")
    if y is not None and int(y.shape[0]) != samples:
        raise ShapeError(f"{who}: {samples} samples in {names[0]} but {int(y.shape[0])} in {names[1]}")
    return samples


def check_callbacks(callbacks: Any) -> list[Any]:
    """fit's ``callbacks`` as a list of Callbacks or callables ``hook(epoch, logs)`` (a 3 in it
    would otherwise fail at the first epoch's end, after a whole epoch of training)."""
    if isinstance(callbacks, str) or not isinstance(callbacks, Iterable):
        raise ArgumentTypeError(f"fit: expected callbacks= a list of callbacks, got {callbacks!r}")
    found = list(callbacks)
    for i, callback in enumerate(found):
        if not (isinstance(callback, Callback) or callable(callback)):
            raise ArgumentTypeError(
                f"fit: callbacks[{i}] is {callback!r}, expected an xpnn Callback or a function (epoch, logs)"
            )
    return found


def check_fit(
    x: Any,
    y: Any,
    *,
    loss: Any,
    optimizer: Any,
    epochs: Any,
    batch_size: Any,
    validation_data: Any,
    validation_split: Any,
    callbacks: Iterable[Any],
) -> None:
    """Raise the named error for any of fit's arguments that cannot train."""
    if not isinstance(loss, Loss) and not callable(loss):
        raise ArgumentTypeError(
            f"fit: expected loss= an xpnn Loss (xpnn.SoftmaxCrossEntropy(), ...) or a function "
            f"(pred, y) -> 0-d Tensor, got {loss!r}"
        )
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(
            f"fit: expected optimizer= an xpnn Optimizer (xpnn.Adam(...), ...), got {optimizer!r}"
        )
    check_count("fit", "epochs", epochs, minimum=0)
    check_count("fit", "batch_size", batch_size)
    samples = check_data("fit", x, y)
    split = check_number("fit", "validation_split", validation_split, low=0.0, high=1.0)
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ArgumentTypeError(
                f"fit: expected validation_data=(x_val, y_val), got {type(validation_data).__name__}"
            )
        check_data("fit", validation_data[0], validation_data[1], names=("x_val", "y_val"))
    elif split:
        held = round(samples * split)
        if not 0 < held < samples:
            raise ArgumentError(
                f"fit: validation_split={validation_split} of {samples} samples leaves {samples - held} "
                f"for training and {held} for validation; both need at least one"
            )
    keys = LOGS | (
        {f"val_{k}" for k in ("loss", "accuracy")} if validation_data is not None or split else set()
    )
    for callback in callbacks:
        before_fit = getattr(callback, "before_fit", None)
        if before_fit is not None:
            before_fit(keys)


def check_optimizer_of(who: str, model: Any, optimizer: Optimizer) -> None:
    """``optimizer`` must update parameters of ``model`` and only those: one built on another
    model's parameters would train nothing, silently. A subset (frozen layers left out) is
    fine. Identity of the Parameter objects: no array is read."""
    own = {id(p) for p in model.parameters()}
    foreign = [p for p in optimizer.parameters() if id(p) not in own]
    if foreign:
        first = foreign[0]
        raise OptimizerError(
            f"{who}: the optimizer updates {len(foreign)} parameter(s) that are not this model's (first: "
            f"{first.name or 'unnamed'!r} of shape {tuple(first.shape)}); build it from model.parameters()"
        )


def check_epoch_loss(epoch: int, logs: dict[str, float]) -> None:
    """Stop a run whose epoch loss is NaN or infinite (Keras' TerminateOnNaN), before any
    callback saves the broken weights. One check per epoch on a number fit already read."""
    if not math.isfinite(logs["loss"]):
        raise NonFiniteLossError(
            f"fit: the mean training loss of epoch {epoch + 1} is {logs['loss']} (not finite); "
            "lower the learning rate, check the data for NaN/inf, or clip gradients"
        )


def raise_not_scalar(loss: Any, value: Any) -> None:
    """A loss function must give a 0-d Tensor (what backward starts from)."""
    shape = getattr(value, "shape", None)
    raise ArgumentTypeError(
        f"fit: the loss {getattr(loss, '__name__', loss)!r} returned a {type(value).__name__}"
        f"{'' if shape is None else f' of shape {tuple(shape)}'}; expected a 0-d xpnn.Tensor "
        "(compute it from the prediction Tensor with Tensor operations or xpnn.functional)"
    )
