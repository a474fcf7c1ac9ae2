"""The Keras-style training loop behind ``Sequential.fit`` (evaluation: :mod:`xpnn.train.evaluation`).

A training step never synchronises with the device: the loss and the count of correct
predictions are added up as device arrays and read once per epoch (and by the progress
bar at most a few times a second). Shuffling follows ``(seed, epoch)`` and dropout masks
``(seed, epoch, step)``, so a run resumed from a checkpoint repeats the uninterrupted one.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xpnn.autograd.graph import gradient_ready_hook, is_grad_enabled
from xpnn.autograd.tensor import Tensor
from xpnn.data.loader import DataLoader
from xpnn.distributed.communicator import Communicator
from xpnn.distributed.parallel import DataParallel, data_parallel
from xpnn.distributed.run_config import describe_fit
from xpnn.kernels.memory import keep_freed_memory
from xpnn.nn.losses import Loss
from xpnn.nn.metrics import correct_count
from xpnn.nn.sequential import Sequential
from xpnn.optim.base import Optimizer
from xpnn.train.checkpoint import load_training
from xpnn.train.checks import (
    check_callbacks,
    check_epoch_loss,
    check_fit,
    check_optimizer_of,
    raise_not_scalar,
)
from xpnn.train.evaluation import LAST_FIT_LOSS, batches, evaluate_loader, has_accuracy, host_float
from xpnn.train.interrupt import StopRequest
from xpnn.train.preflight import (
    check_batch_statistics,
    first_samples,
    model_backend,
    model_seed,
    modes_of,
    rehearse,
    restore_modes,
    validate_labels,
)
from xpnn.train.progress import ProgressLines
from xpnn.train.record import Callback, History, Model, TrainingRun, as_callbacks

Array = Any


def train_step(
    model: Model, loss: Any, optimizer: Optimizer, xb: Array, yb: Array, *, count: bool = True
) -> tuple[Array, Array | int]:
    """One optimisation step on a batch: ``loss(model(x), y)`` plus the layers' L1/L2
    penalties, backward, step. Returns (that loss, the correct count: 0 unless ``count``) as
    device arrays; never synchronises with the host.

    On the tape; a Sequential with one of xpnn's losses runs its plain-array chain instead
    (:meth:`~xpnn.Sequential.loss_and_gradients`: the same numbers, fewer Python objects per
    step), except while data-parallel training follows the tape's gradient-ready hook."""
    if _chain_step(model, loss):
        value, pred = model.loss_and_gradients(xb, yb, loss)
    else:
        recorded = model(Tensor(xb))
        total = loss(recorded, yb, validate=False) if isinstance(loss, Loss) else loss(recorded, yb)
        if not isinstance(total, Tensor) or total.ndim != 0:
            raise_not_scalar(loss, total)
        penalty = model.regularization_loss()
        if isinstance(penalty, Tensor):
            total = total + penalty
        total.backward()
        value, pred = total.value, recorded.value
    optimizer.step()
    optimizer.zero_grad()
    return value, correct_count(pred, yb) if count else 0


def _chain_step(model: Model, loss: Any) -> bool:
    """Whether :func:`train_step` runs ``model``'s plain-array chain: a Sequential whose forward
    and backward are Sequential's, a loss whose calls are :class:`Loss`'s own, grad mode on (under ``no_grad``
    the tape raises) and no gradient-ready hook."""
    loss_type = type(loss)
    return (
        isinstance(model, Sequential)
        and type(model).forward is Sequential.forward
        and type(model).backward is Sequential.backward
        and isinstance(loss, Loss)
        and loss_type.__call__ is Loss.__call__
        and loss_type.forward is Loss.forward
        and loss_type.backward is Loss.backward
        and is_grad_enabled()
        and gradient_ready_hook() is None
    )


def _progress(verbose: int, total: int, description: str) -> Any:
    """A tqdm bar on a terminal; else (a file, a pipe; no tqdm) a line every few seconds."""
    if not verbose:
        return None
    if not sys.stderr.isatty():
        return ProgressLines(total, description)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional (the "examples" extra)
        return ProgressLines(total, description)

    return tqdm(total=total, desc=description, unit="sample", unit_scale=True, mininterval=0.25, leave=True)


def _train_epoch(
    run: TrainingRun, loader: DataLoader, epoch: int, bar: Any, parallel: DataParallel | None = None
) -> dict[str, float] | None:
    """One epoch's steps and numbers; None where Ctrl-C stopped it (``run.step`` steps done)."""
    run.model.train(True)
    first = run.step  # > 0: resumed where Ctrl-C stopped; Dropout's counters are the checkpoint's
    if not first:
        run.model.start_epoch(epoch)
    counting = has_accuracy(run.loss, loader.y, run.classes)
    loss_sum, correct, seen = run.partial if run.partial is not None else (0.0, 0, 0)
    run.step, run.partial = 0, None
    start = time.perf_counter()
    shown = start
    shards = None if parallel is None else parallel.shards
    for step, (xb, yb, n_global) in enumerate(batches(loader, epoch, shards, first), start=first):
        n = int(xb.shape[0])
        if n == 0 and parallel is not None:  # an empty share of a short last batch: no loss to add
            parallel.empty_step(xb)
        else:
            value, hits = train_step(run.model, run.loss, run.optimizer, xb, yb, count=counting)
            loss_sum, correct = loss_sum + value * float(n), correct + hits
        seen += n
        if bar is not None:
            bar.update(n_global)
            now = time.perf_counter()
            if now - shown >= getattr(bar, "interval", 0.3):  # a refresh reads two device scalars: a sync
                shown = now
                shown_acc = {"acc": f"{int(correct) / seen:.4f}"} if counting else {}
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", **shown_acc,
                                samples_s=f"{seen / (now - start):,.0f}")  # fmt: skip
        if run.stop_request is not None and run.stop_request.poll():  # Ctrl-C: after this step
            run.step, run.partial = step + 1, (host_float(loss_sum), host_float(correct), seen)
            return None
    loss_total, hits = host_float(loss_sum), host_float(correct)  # the epoch's one synchronisation
    if parallel is not None:  # and its one all-reduce
        loss_total, hits, total = parallel.shards.sum_over_ranks(loss_total, hits, seen)
        seen = int(total)
    mean_loss = loss_total / max(seen, 1)
    accuracy = hits / max(seen, 1) if counting else math.nan
    seconds = time.perf_counter() - start
    return {"loss": mean_loss, "accuracy": accuracy, "seconds": seconds, "samples_per_s": seen / seconds}


def _split(x: Array, y: Array, fraction: float) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Keras' validation_split: the last ``fraction`` of the samples, before any shuffling."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fit: validation_split must be in (0, 1), got {fraction}")
    cut = int(x.shape[0]) - round(int(x.shape[0]) * fraction)  # `...`: the standard's whole axes
    return (x[:cut, ...], y[:cut, ...]), (x[cut:, ...], y[cut:, ...])


def _lr(optimizer: Optimizer) -> float:
    lr = getattr(optimizer, "lr", math.nan)
    return float(lr) if isinstance(lr, int | float) else math.nan


def _summary(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    text = f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}"
    text += "" if math.isnan(logs["accuracy"]) else f", accuracy {logs['accuracy']:.4f}"
    if "val_loss" in logs:
        text += f", val_loss {logs['val_loss']:.4f}"
        text += "" if math.isnan(logs["val_accuracy"]) else f", val_accuracy {logs['val_accuracy']:.4f}"
    return text + f", {logs['seconds']:.1f} s ({logs['samples_per_s']:,.0f} samples/s), lr {logs['lr']:.3g}"


def fit(
    model: Model,
    x: Array,
    y: Array,
    *,
    loss: Any,
    optimizer: Optimizer,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[Array, Array] | None = None,
    validation_split: float = 0.0,
    callbacks: Iterable[Callback | Callable[[int, dict[str, float]], Any]] = (),
    seed: int | None = None,
    verbose: int = 1,
    shuffle: bool = True,
    resume: str | os.PathLike[str] | None = None,
    communicator: Communicator | None = None,
) -> History:
    """Train ``model``; see :meth:`xpnn.Sequential.fit`.

    Every argument is checked before training (:mod:`xpnn.train.checks`). ``epochs=0``
    returns an empty History. A NaN or infinite epoch loss stops training with
    :class:`~xpnn.NonFiniteLossError` (checked once per epoch, on the number already read).
    """
    callbacks = check_callbacks(callbacks)
    check_fit(x, y, loss=loss, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
              validation_data=validation_data, validation_split=validation_split,
              callbacks=callbacks)  # fmt: skip
    check_optimizer_of("fit", model, optimizer)
    if validation_split and validation_data is None:
        (x, y), validation_data = _split(x, y, validation_split)
    classes = rehearse(model, x, y, loss)  # one sample, nothing changed: errors found before any step
    if validation_data is not None:
        rehearse(model, *validation_data, loss)  # not after a whole epoch of training
    check_batch_statistics(model, int(x.shape[0]), int(batch_size))
    if seed is None:
        seed = model_seed(model)
        seed = seed if seed is not None else secrets.randbits(31)
    run = TrainingRun(model, loss, optimizer, int(seed), batch_size=int(batch_size), classes=classes)
    parallel = data_parallel(communicator, model, optimizer)
    run.rank = 0 if communicator is None else communicator.rank
    if parallel is not None:  # before anything changes: every rank is about to run this same fit
        parallel.meet("fit", describe_fit(model, loss, optimizer, (x, y), validation_data, resume=resume,
                                          batch_size=batch_size, epochs=epochs, shuffle=shuffle))  # fmt: skip
    LAST_FIT_LOSS[model] = loss  # evaluate() uses it when given none, as Keras' compiled loss
    if resume is not None:  # the labels first: a refused fit leaves the model as it was
        _check_labels(run, y, validation_data)
        load_training(resume, run)
    if parallel is not None:  # after a resume too: every rank continues from rank 0's state
        run.seed, run.epoch = parallel.start(run.seed, run.epoch, first_samples(model, x))
    keep_freed_memory()  # with the fast paths on: a step's freed arrays stay mapped (no page faults)
    try:
        train, val = _loaders(run, x, y, validation_data, batch_size, shuffle)
        with StopRequest(enabled=parallel is None) as run.stop_request:
            _loop(run, train, val, as_callbacks(callbacks), epochs, verbose if run.rank == 0 else 0, parallel)
    finally:
        if parallel is not None:
            parallel.stop()
    return run.history


def _loaders(
    run: TrainingRun,
    x: Array,
    y: Array,
    validation_data: tuple[Array, Array] | None,
    batch_size: int,
    shuffle: bool,
) -> tuple[DataLoader, DataLoader | None]:
    """fit's training and validation loaders on the model's backend, labels checked up front."""
    bk, dtype = model_backend(run.model)
    train = DataLoader(
        x, y, batch_size=batch_size, shuffle=shuffle, seed=run.seed, target=bk, dtype=dtype, copy=False
    )
    validate_labels(run.model, run.loss, train.y, run.classes)
    if validation_data is None:
        return train, None
    val = DataLoader(*validation_data, batch_size=max(batch_size, 256), shuffle=False, target=bk, dtype=dtype)
    validate_labels(run.model, run.loss, val.y, run.classes)
    return train, val


def _check_labels(run: TrainingRun, y: Array, validation_data: tuple[Array, Array] | None) -> None:
    """The training (and validation) labels as :func:`_loaders` checks them, before a resume
    replaces the model's and optimizer's state (one host sync each, once per fit)."""
    validate_labels(run.model, run.loss, y, run.classes)
    if validation_data is not None:
        validate_labels(run.model, run.loss, validation_data[1], run.classes)


def _epoch(
    run: TrainingRun,
    train: DataLoader,
    val: DataLoader | None,
    epoch: int,
    epochs: int,
    verbose: int,
    parallel: DataParallel | None,
) -> dict[str, float] | None:
    """Train one epoch, then validate; the epoch's numbers, shown on the progress bar or printed
    (None: Ctrl-C stopped the epoch)."""
    bar = _progress(verbose, train.num_samples, f"epoch {epoch + 1}/{epochs}")
    logs = _train_epoch(run, train, epoch, bar, parallel)
    if logs is None:
        if bar is not None:
            bar.close()
        return None
    if val is not None:
        shards = None if parallel is None else parallel.shards
        validated = evaluate_loader(run.model, val, run.loss, shards, run.classes)
        logs.update({f"val_{k}": v for k, v in validated.items()})
    logs["lr"] = _lr(run.optimizer)
    if bar is not None and not isinstance(bar, ProgressLines):
        shown = {k: v for k, v in logs.items() if ("loss" in k or "acc" in k) and not math.isnan(v)}
        bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()})  # no "accuracy=nan" of a regression
        bar.close()
    elif verbose:
        print(_summary(epoch, epochs, logs), flush=True)
    return logs


def _interrupted(run: TrainingRun, hooks: Sequence[Callback], train: DataLoader) -> None:
    """Ctrl-C stopped epoch ``run.epoch`` after ``run.step`` steps: the callbacks hear of it
    (a ModelCheckpoint saves a checkpoint that resumes at the next step), one line says so."""
    run.history.interrupted = True
    for hook in hooks:
        hook.on_interrupt(run)
    print(
        f"fit: stopped by Ctrl-C after step {run.step}/{len(train)} of epoch {run.epoch + 1}; returning the "
        f"history of {len(run.history)} complete epoch(s) (Ctrl-C again exits at once)",
        file=sys.stderr,
        flush=True,
    )


def _loop(
    run: TrainingRun,
    train: DataLoader,
    val: DataLoader | None,
    hooks: Sequence[Callback],
    epochs: int,
    verbose: int,
    parallel: DataParallel | None = None,
) -> None:
    modes = modes_of(run.model)
    for hook in hooks:
        hook.on_train_begin(run)
    try:
        for epoch in range(run.epoch, epochs):
            logs = _epoch(run, train, val, epoch, epochs, verbose, parallel)
            if logs is None:
                _interrupted(run, hooks, train)
                break
            check_epoch_loss(epoch, logs)
            run.history.append(epoch, logs)
            run.epoch = epoch + 1
            for hook in hooks:
                hook.on_epoch_end(run, epoch, logs)
            if run.stop:
                break
        for hook in hooks:
            hook.on_train_end(run)
    finally:
        restore_modes(modes)
