"""Training checkpoints: a saved model plus the optimizer's state and the run's progress.

A checkpoint is the model's own file (:mod:`xpnn.io.serialization`) with two more header
entries: the optimizer's ``state_dict`` and the run's epoch, seed, batch size and history.
Shuffling and dropout are pure functions of the seeds and counters it holds, so resuming
repeats the uninterrupted run.
"""

from __future__ import annotations

import os
from typing import Any

from xpnn.errors import CheckpointError
from xpnn.io import serialization
from xpnn.train.record import History, TrainingRun

Progress = tuple[int, int, History, int, tuple[float, float, int] | None]  # epoch, seed, ..., step, sums


def save_training(path: str | os.PathLike[str], run: TrainingRun) -> None:
    """Save a :class:`~xpnn.train.record.TrainingRun`: model, optimizer, epoch, seed and history."""
    training = {
        "epoch": run.epoch,
        "seed": run.seed,
        "batch_size": run.batch_size,
        "history": run.history.to_dict(),
    }
    if run.step:  # stopped by Ctrl-C inside epoch ``epoch``: resume at the next step, sums so far kept
        training.update(step=run.step, partial=list(run.partial or (0.0, 0.0, 0)))
    serialization.save(path, run.model, optimizer=run.optimizer, training=training)


def load_training(path: str | os.PathLike[str], run: TrainingRun) -> None:
    """Restore a :class:`~xpnn.train.record.TrainingRun` from a checkpoint of ``save_training``."""
    progress: list[Progress] = []

    def check(training: Any) -> None:  # called before anything is loaded
        progress.append(_progress(os.fspath(path), training, run.batch_size))

    serialization.load_into(path, run.model, run.optimizer, check_training=check)
    run.epoch, run.seed, run.history, run.step, run.partial = progress[0]


def _progress(path: str, training: Any, batch_size: int) -> Progress:
    """``(epoch, seed, history)`` of a checkpoint's training entry, or a CheckpointError; the
    run must have the checkpoint's batch size (its steps and updates are what resuming repeats)."""
    if training is None:
        raise CheckpointError(f"{path}: holds no training progress (saved with model.save)")
    saved = training.get("batch_size")
    if saved is not None and saved != batch_size:  # files without one: no check
        raise CheckpointError(
            f"{path}: was trained with batch_size {saved!r}, this fit has {batch_size}: resume with "
            f"batch_size={saved!r} (another one would not continue the same run)"
        )
    epoch, seed = training.get("epoch"), training.get("seed")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, seed)):
        raise CheckpointError(
            f"{path}: training epoch and seed must be integers >= 0, got {epoch!r}, {seed!r}"
        )
    try:
        history = History.from_dict(training["history"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: the saved history is malformed: {error!r}") from None
    step, partial = training.get("step", 0), training.get("partial")
    if step == 0 and partial is None:
        return epoch, seed, history, 0, None
    numbers = (
        isinstance(partial, list) and len(partial) == 3 and all(isinstance(v, int | float) for v in partial)
    )
    if not (isinstance(step, int) and not isinstance(step, bool) and step > 0 and numbers):
        raise CheckpointError(
            f"{path}: an interrupted epoch's step and sums must be an integer > 0 and three numbers, "
            f"got {step!r:.40}, {partial!r:.80}"
        )
    loss_sum, hits, seen = partial
    return epoch, seed, history, step, (float(loss_sum), float(hits), int(seen))
