"""The run record: what a fit produced (History), what callbacks see (TrainingRun), and the
Callback base class. A leaf of :mod:`xpnn.train`: the loop, the callbacks and the checkpoints
all import it, and it imports none of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from xpnn.optim.base import Optimizer

Array = Any
KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_s", "lr")


Model = Any  # an xpnn Module: Sequential or a user's (parameters(), train(), eval(), ...)


@dataclass
class History:
    """Per-epoch numbers of a fit: ``history["loss"][k]`` is epoch k's mean training loss.

    Keys: loss, accuracy, val_loss, val_accuracy (NaN without validation data), seconds,
    samples_per_s, lr (the learning rate at the epoch's end).
    """

    epochs: list[int] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KEYS})
    interrupted: bool = False  # fit stopped by Ctrl-C (inside an epoch not listed here)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record epoch ``epoch``'s numbers (a key missing from ``logs`` is NaN)."""
        self.epochs.append(int(epoch))
        for key in KEYS:
            self.history[key].append(float(logs.get(key, math.nan)))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists of floats by key, and ``epochs``), as saved in checkpoints."""
        return {"epochs": list(self.epochs), **{k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The History that ``to_dict`` gave."""
        return cls(list(data["epochs"]), {k: [float(v) for v in data.get(k, [])] for k in KEYS})


@dataclass
class TrainingRun:
    """What callbacks see: the model, loss, optimizer, seed, epochs completed and the history.
    A callback sets ``stop = True`` to end training after the current epoch. ``rank`` is this
    process's rank under data-parallel training (0 otherwise): only rank 0 writes files.
    ``classes``: the model's output width, where fit's rehearsal (:mod:`xpnn.train.preflight`)
    found one; labels are checked against it."""

    model: Model
    loss: Any  # a Loss, or a function (pred, y) -> 0-d Tensor
    optimizer: Optimizer
    seed: int
    history: History = field(default_factory=History)
    epoch: int = 0
    batch_size: int = 32
    stop: bool = False
    rank: int = 0
    classes: int | None = None  # the model's output width, where fit's rehearsal found one
    step: int = 0  # steps done in epoch ``epoch`` where Ctrl-C stopped inside it (else 0)
    partial: tuple[float, float, int] | None = None  # that epoch's loss sum, hits and samples so far
    stop_request: Any = None  # an xpnn.train.interrupt.StopRequest while fit runs


class Callback:
    """Base class of fit's callbacks; override the hooks you need."""

    def on_train_begin(self, run: TrainingRun) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch with that epoch's numbers (``run.epoch`` already counts it)."""

    def on_interrupt(self, run: TrainingRun) -> None:
        """Called when Ctrl-C stopped training inside epoch ``run.epoch`` after ``run.step``
        steps (before :meth:`on_train_end`); the model and optimizer are as after that step."""

    def on_train_end(self, run: TrainingRun) -> None:
        """Called once after the last epoch."""


class _Hook(Callback):
    """A plain callable ``hook(epoch, logs)``; returning ``True`` stops training."""

    def __init__(self, hook: Callable[[int, dict[str, float]], Any]) -> None:
        self.hook = hook

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        if self.hook(epoch, logs) is True:
            run.stop = True


def as_callbacks(callbacks: Iterable[Callback | Callable[[int, dict[str, float]], Any]]) -> list[Callback]:
    """fit's ``callbacks`` as Callback objects: plain callables are wrapped, the rest kept."""
    return [c if isinstance(c, Callback) else _Hook(c) for c in callbacks]
