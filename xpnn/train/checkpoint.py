"""Training checkpoints: a saved model plus the optimizer's state and the run's progress.

A checkpoint is the model's own file (:mod:`xpnn.nn.serialization`) with two more header
entries: the optimizer's ``state_dict`` and the run's epoch, seed, batch size and history.
Shuffling and dropout are pure functions of the seeds and counters it holds, so resuming
repeats the uninterrupted run.
"""

from __future__ import annotations

import os

from xpnn.errors import CheckpointError
from xpnn.nn import serialization
from xpnn.train.record import History, TrainingRun


def save_training(path: str | os.PathLike[str], run: TrainingRun) -> None:
    """Save a :class:`~xpnn.train.record.TrainingRun`: model, optimizer, epoch, seed and history."""
    training = {
        "epoch": run.epoch,
        "seed": run.seed,
        "batch_size": run.batch_size,
        "history": run.history.to_dict(),
    }
    serialization.save(path, run.model, optimizer=run.optimizer, training=training)


def load_training(path: str | os.PathLike[str], run: TrainingRun) -> None:
    """Restore a :class:`~xpnn.train.record.TrainingRun` from a checkpoint of ``save_training``."""
    training = serialization.load_into(path, run.model, run.optimizer)
    if training is None:
        raise CheckpointError(f"{os.fspath(path)}: holds no training progress (saved with model.save)")
    run.epoch, run.seed = int(training["epoch"]), int(training["seed"])
    run.history = History.from_dict(training["history"])
