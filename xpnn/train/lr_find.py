"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3; fastai's ``lr_find``): train for a few steps with a rate growing
geometrically from ``start`` to ``end`` and watch the loss.

Step ``i`` of ``n`` uses ``lr_i = start * (end / start) ** (i / (n - 1))``. The loss is
smoothed by a bias-corrected exponential moving average (``beta = 0.98``, as fastai):
``a_i = beta * a_{i-1} + (1 - beta) * loss_i``, ``smooth_i = a_i / (1 - beta ** (i + 1))``,
and the test stops once ``smooth_i > 4 * min_{j<i} smooth_j`` (diverged) or is not finite.
The suggestion is the rate where the smoothed loss falls fastest against ``log(lr)`` (over a
window of 5% of the steps, after the first 10%), before its minimum. Everything the test
touches is put back exactly as it was afterwards.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from xpnn import backend
from xpnn.checks import check_number
from xpnn.data.loader import DataLoader
from xpnn.errors import ArgumentTypeError, OptimizerError
from xpnn.nn.losses import Loss
from xpnn.optim.base import Optimizer
from xpnn.optional import require
from xpnn.train.checks import check_data, check_optimizer_of
from xpnn.train.loop import train_step
from xpnn.train.preflight import model_backend, model_seed, rehearse, validate_labels
from xpnn.train.record import Model

Array = Any


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured: the rate and the loss of every step taken (``losses``:
    the batch's loss incl. regularisation; ``smoothed``: its moving average), and
    ``suggestion``, the rate of the steepest descent (NaN when the loss never fell)."""

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float

    def plot(self, path: str | None = None) -> Any:
        """Loss against learning rate (log scale) with the suggestion marked; saved to ``path``
        when given. Returns the matplotlib Figure. Needs matplotlib (the ``examples`` extra)."""
        require("matplotlib", extra="examples", who="LRFinderResult.plot")
        from matplotlib.figure import Figure  # a Figure without pyplot: no GUI backend needed

        figure = Figure(figsize=(7, 4.5), layout="constrained")
        ax = figure.add_subplot()
        ax.plot(self.rates, self.losses, color="0.7", linewidth=1, label="batch loss")
        ax.plot(self.rates, self.smoothed, color="C0", linewidth=2, label="smoothed loss")
        if math.isfinite(self.suggestion):
            ax.axvline(self.suggestion, color="C3", linestyle="--", label=f"suggestion {self.suggestion:.3g}")
        finite = [v for v in (*self.losses, *self.smoothed) if math.isfinite(v)]
        if finite:  # the diverging tail would squash the interesting part of the curve
            low, high = min(finite), 1.25 * max(self.losses[0], self.smoothed[0])
            ax.set_ylim(low - 0.05 * abs(high - low), high)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(f"learning-rate range test: {len(self.rates)} steps")
        ax.legend()
        if path is not None:
            figure.savefig(path, dpi=100)
        return figure


def geometric_rates(start: float, end: float, steps: int) -> list[float]:
    """``steps`` rates from ``start`` to ``end``, equally spaced on a log scale."""
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


def steepest(rates: list[float], smoothed: list[float], skip: int = 0, window: int = 1) -> float:
    """The rate where the smoothed loss falls fastest against ``log(lr)`` before its minimum
    (fastai's "steep" suggestion): the slope is taken over ``window`` steps (a wider window is
    less fooled by noise on a flat curve) and the first ``skip`` steps are ignored, where the
    average has seen too few batches to be more than noise (fastai skips the first 10%).
    Returns the rate in the middle of the steepest window; NaN when the loss never fell."""
    finite = [(s, i) for i, s in enumerate(smoothed) if math.isfinite(s)]
    lowest = min(finite)[1] if finite else 0
    if lowest == 0:
        return math.nan
    first = min(skip, lowest - 1)
    width = max(1, min(window, lowest - first))
    slopes = [
        ((smoothed[i + width] - smoothed[i]) / math.log(rates[i + width] / rates[i]), i)
        for i in range(first, lowest - width + 1)
    ]
    return rates[min(slopes)[1] + width // 2]


def _read(value: Array) -> float:
    """The step's one host read: the smoothing and the stop test need the loss as a number."""
    return float(backend.to_host(value))


def _copy(a: Array) -> Array:
    return backend.namespace(a).asarray(a, copy=True)


class _Snapshot:
    """Everything a range test changes, kept on the device, and how to put it back: parameter
    values and gradients, layer buffers, counters and modes, the optimizer's state, step count
    and hyperparameters (its schedules as the original callables)."""

    def __init__(self, model: Model, optimizer: Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        params = {id(p): p for p in [*model.parameters(), *optimizer.parameters()]}.values()
        self.params = [(p, p.value, _copy(p.value), p.grad, None if p.grad is None else _copy(p.grad))
                       for p in params]  # fmt: skip
        self.modules = [
            (module, module.training, {k: (v, _copy(v)) for k, v in module.own_buffers().items()},
             module.counters())
            for module in model.modules()
        ]  # fmt: skip
        self.training = model.training
        self.t = optimizer.t
        self.groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        self.state = {
            position: {k: (v if k == "step" else (v, _copy(v))) for k, v in entry.items()}
            for position, entry in optimizer.state.items()
        }

    def restore(self) -> None:
        """Write every saved array back into its original array (rebinding where that is not
        writeable), so views into flat optimizer buffers stay views."""
        for p, value, saved, grad, saved_grad in self.params:
            p.value = backend.assign(value, saved)
            p.grad = None if saved_grad is None else backend.assign(grad, saved_grad)
        self.model.train(self.training)
        for module, training, buffers, counters in self.modules:
            module.training = training
            for name, (array, saved) in buffers.items():
                setattr(module, name, backend.assign(array, saved))
            module.load_counters(counters)
        opt = self.optimizer
        opt.t = self.t
        for group, hyper in zip(opt.param_groups, self.groups, strict=True):
            group.update(hyper)
        opt.state = {
            position: {k: (v if k == "step" else backend.assign(*v)) for k, v in entry.items()}
            for position, entry in self.state.items()
        }


def _batches(loader: DataLoader) -> Iterator[tuple[Array, Array]]:
    """The loader's batches, epoch after epoch (each epoch shuffled its own way)."""
    epoch = 0
    while True:
        yield from loader.batches(epoch)
        epoch += 1


def _check(
    model: Model,
    x: Array,
    y: Array,
    loss: Any,
    optimizer: Any,
    start: Any,
    end: Any,
    steps: Any,
    batch_size: Any,
) -> None:
    """lr_find's arguments, each named where it cannot run (before any step)."""
    if not isinstance(loss, Loss) and not callable(loss):
        raise ArgumentTypeError(
            f"lr_find: expected loss= an xpnn Loss (xpnn.SoftmaxCrossEntropy(), ...) or a function "
            f"(pred, y) -> 0-d Tensor, got {loss!r}"
        )
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(f"lr_find: expected optimizer= an xpnn Optimizer, got {optimizer!r}")
    check_optimizer_of("lr_find", model, optimizer)
    check_data("lr_find", x, y)
    start, end = check_number("lr_find", "start", start), check_number("lr_find", "end", end)
    if not 0.0 < start < end:
        raise OptimizerError(f"lr_find: expected 0 < start < end (finite), got start={start!r}, end={end!r}")
    for name, value, least in (("steps", steps, 2), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # steps=2.5: not 2
            raise ArgumentTypeError(
                f"lr_find: expected {name} an integer, got {type(value).__name__} {value!r}"
            )
        if value < least:
            raise OptimizerError(f"lr_find: expected {name} >= {least}, got {value!r}")


def lr_find(
    model: Model,
    x: Array,
    y: Array,
    *,
    loss: Loss,
    optimizer: Optimizer,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    batch_size: int = 64,
    seed: int | None = None,
) -> LRFinderResult:
    """Run the learning-rate range test on ``(x, y)`` and restore the model and optimizer.

    Trains in train mode on shuffled mini-batches of ``batch_size`` (cycling through the data
    when ``steps`` exceeds an epoch), every parameter group at the step's rate (``decay``
    off), from the optimizer's current state. One host read per step (the loss). Afterwards
    weights, gradients, buffers, dropout counters, train/eval modes, the optimizer's state,
    step count ``t``, learning rates and schedules are bit for bit as before, even when a step
    raised. ``seed`` (default: the model's, else 0) fixes the shuffling.
    """
    _check(model, x, y, loss, optimizer, start, end, steps, batch_size)
    classes = rehearse(model, x, y, loss)
    bk, dtype = model_backend(model)
    own = model_seed(model)
    shuffle_seed = seed if seed is not None else (own if own is not None else 0)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=shuffle_seed, target=bk, dtype=dtype)
    validate_labels(model, loss, loader.y, classes)
    rates = geometric_rates(float(start), float(end), int(steps))
    snapshot = _Snapshot(model, optimizer)
    try:
        losses, smoothed = _search(model, loss, optimizer, _batches(loader), rates)
    finally:
        snapshot.restore()
    taken = rates[: len(losses)]
    return LRFinderResult(
        taken,
        losses,
        smoothed,
        steepest(taken, smoothed, skip=int(steps) // 10, window=max(1, int(steps) // 20)),
    )


def _search(
    model: Model, loss: Loss, optimizer: Optimizer, batches: Iterator[tuple[Array, Array]], rates: list[float]
) -> tuple[list[float], list[float]]:
    """The range test's steps; returns the raw and the smoothed loss of each step taken."""
    beta, diverge = 0.98, 4.0  # fastai's smoothing and stop factor
    model.train(True)
    for group in optimizer.param_groups:
        if "decay" in group:
            group["decay"] = 0.0  # the test's rate is the rate: no inverse-time decay on top
    losses: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    for i, rate in enumerate(rates):
        for group in optimizer.param_groups:
            group["lr"] = rate
        xb, yb = next(batches)
        value, _ = train_step(model, loss, optimizer, xb, yb, count=False)
        losses.append(_read(value))
        average = beta * average + (1.0 - beta) * losses[-1]
        smoothed.append(average / (1.0 - beta ** (i + 1)))
        if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * best:
            break
        best = min(best, smoothed[-1])
    return losses, smoothed
