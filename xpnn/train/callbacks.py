"""fit's callbacks: the ``Callback`` hooks, EarlyStopping, ModelCheckpoint and the wrapper that
lets a plain callable ``hook(epoch, logs)`` act as one.

Callbacks see the :class:`~xpnn.train.loop.TrainingRun` (model, loss, optimizer, seed, epochs
completed, history) after each epoch and stop training by setting ``run.stop = True``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from xpnn import backend
from xpnn.checks import check_choice, check_count, check_flag, check_number
from xpnn.errors import ArgumentError, ArgumentTypeError
from xpnn.io.paths import writable_path
from xpnn.nn.state import targets
from xpnn.train.checkpoint import save_training
from xpnn.train.record import Callback, TrainingRun

Array = Any


MODES = ("auto", "min", "max")


def _monitor(who: str, monitor: Any) -> str:
    if not isinstance(monitor, str):
        raise ArgumentTypeError(f"{who}: expected monitor the name of a logged number, got {monitor!r}")
    return monitor


def _check_monitor(who: str, monitor: str, keys: set[str]) -> None:
    if monitor not in keys:
        hint = " (val_* needs validation_data= or validation_split=)" if monitor.startswith("val_") else ""
        raise ArgumentError(f"{who}: monitor {monitor!r} is not in fit's logs {sorted(keys)}{hint}")


def _improved(mode: str, monitor: str, value: float, best: float, min_delta: float) -> bool:
    maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
    return value > best + min_delta if maximize else value < best - min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode="auto"`` maximises names containing "acc" and minimises the rest.
    ``restore_best_weights`` copies the weights of the best epoch back at the end, buffers
    (BatchNorm's running statistics) included, as Keras restores non-trainable weights too
    (the copies stay on the device: no host transfer).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        who = "EarlyStopping"
        self.monitor, self.mode = _monitor(who, monitor), check_choice(who, "mode", mode, MODES)
        self.patience = check_count(who, "patience", patience, minimum=0)
        self.min_delta = check_number(who, "min_delta", min_delta, low=0.0)
        self.restore_best_weights = check_flag(who, "restore_best_weights", restore_best_weights)
        self.best: float = math.nan
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: list[Array] | None = None

    def before_fit(self, keys: set[str]) -> None:
        """fit calls it with the names its logs will hold: a wrong ``monitor`` fails now."""
        _check_monitor("EarlyStopping", self.monitor, keys)

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        value = logs[self.monitor]
        if math.isnan(self.best) or _improved(self.mode, self.monitor, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                arrays = [array for _, _, array in targets(run.model).values()]
                self.best_weights = [backend.namespace(a).asarray(a, copy=True) for a in arrays]
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.stop = True

    def on_train_end(self, run: TrainingRun) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            places = targets(run.model).values()
            for (owner, attribute, array), best in zip(places, self.best_weights, strict=True):
                setattr(owner, attribute, backend.assign(array, best))


class ModelCheckpoint(Callback):
    """Save a training checkpoint (model, optimizer state, epoch, seed, history) after epochs.

    ``path`` may contain ``{epoch}`` (1-based). With ``save_best_only`` a checkpoint is
    written only when ``monitor`` improves. Each save is atomic (temp file, fsync, rename).
    Under data-parallel training only rank 0 writes (every rank holds the same model).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        who = "ModelCheckpoint"
        self.path = writable_path(who, "path", path, make_dirs=True)
        self.monitor, self.mode = _monitor(who, monitor), check_choice(who, "mode", mode, MODES)
        self.save_best_only = check_flag(who, "save_best_only", save_best_only)
        self.best = math.nan
        try:
            first = self.path.format(epoch=1)
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ArgumentError(
                f"ModelCheckpoint: path {self.path!r} does not format with {{epoch}} alone ({error!r})"
            ) from None
        writable_path(who, "path", first, make_dirs=True)  # not a directory once formatted either

    def before_fit(self, keys: set[str]) -> None:
        """fit calls it with the names its logs will hold: a wrong ``monitor`` fails now."""
        if self.save_best_only:
            _check_monitor("ModelCheckpoint", self.monitor, keys)

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = logs[self.monitor]
            if not (math.isnan(self.best) or _improved(self.mode, self.monitor, value, self.best, 0.0)):
                return
            self.best = value
        if run.rank == 0:
            save_training(self.path.format(epoch=epoch + 1), run)

    def on_interrupt(self, run: TrainingRun) -> None:
        """Ctrl-C stopped epoch ``run.epoch`` inside it: save where it stopped (under that
        epoch's number), so ``resume=`` continues at the next step as if never stopped."""
        if run.rank == 0:
            save_training(self.path.format(epoch=run.epoch + 1), run)
