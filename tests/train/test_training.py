"""Sequential.fit / evaluate / predict, History, callbacks and the per-batch step."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.optim.optimizers import SGD, Adam
from xpnn.train import loop as training
from xpnn.train import record


def blobs(n_per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 2-D: a problem a small MLP must solve exactly."""
    rng = np.random.default_rng(seed)
    centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    x = np.concatenate([c + 0.3 * rng.standard_normal((n_per_class, 2)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    return x[order], y[order]


def small_model(bk: backend.Backend, dropout: float = 0.0) -> xpnn.Sequential:
    layers: list[Any] = [xpnn.Dense(2, 16), xpnn.ReLU()]
    if dropout:
        layers.append(xpnn.Dropout(dropout))
    return xpnn.Sequential([*layers, xpnn.Dense(16, 3)], seed=0).to(bk.name)


def test_fit_on_separable_blobs_reaches_full_accuracy(bk: backend.Backend) -> None:
    x, y = blobs()
    model = small_model(bk)
    opt = Adam(model.parameters(), lr=0.05)
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=opt, epochs=30, batch_size=16,
                        seed=0, verbose=0)  # fmt: skip
    assert history["accuracy"][-1] == 1.0
    assert model.evaluate(x, y)["accuracy"] == 1.0
    assert history["loss"][-1] < history["loss"][0]


def test_fit_accepts_backend_arrays(bk: backend.Backend, to_bk: Any) -> None:
    x, y = blobs()
    model = small_model(bk)
    history = model.fit(to_bk(x), to_bk(y, "int64"), loss=xpnn.SoftmaxCrossEntropy(),
                        optimizer=Adam(model.parameters(), lr=0.05), epochs=2, verbose=0)  # fmt: skip
    assert len(history) == 2


def test_history_has_every_key_per_epoch_and_validation_numbers() -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1),
                        epochs=3, validation_split=0.25, verbose=0)  # fmt: skip
    assert history.epochs == [0, 1, 2]
    for key in record.KEYS:
        assert len(history[key]) == 3 and all(math.isfinite(v) for v in history[key]), key
    assert history["lr"] == [0.1, 0.1, 0.1]


def test_validation_split_takes_the_last_fraction_before_shuffling() -> None:
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    (_, yt), (_, yv) = training._split(x, y, 0.3)
    assert yt.tolist() == list(range(7)) and yv.tolist() == [7, 8, 9]


def test_out_of_range_labels_fail_before_the_first_step() -> None:
    x, y = blobs()
    y[5] = 3
    model = small_model(backend.resolve("numpy"))
    before = backend.to_host(model[0].weight.value)
    with pytest.raises(xpnn.LabelError, match=r"labels must be in \[0, 3\).*got values in \[0, 3\]"):
        model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1), verbose=0)
    np.testing.assert_array_equal(backend.to_host(model[0].weight.value), before)


def test_train_step_never_synchronises_with_the_host(
    bk: backend.Backend, to_bk: Any, no_host_sync: Any
) -> None:
    x, y = blobs()
    model = small_model(bk, dropout=0.5)
    opt = Adam(model.parameters(), lr=0.01)
    xb, yb = to_bk(x[:16]), to_bk(y[:16], "int64")
    with no_host_sync():
        value, correct = training.train_step(model, xpnn.SoftmaxCrossEntropy(), opt, xb, yb)
        value, correct = training.train_step(model, xpnn.SoftmaxCrossEntropy(), opt, xb, yb)
    assert 0 <= int(backend.to_host(correct)) <= 16 and math.isfinite(float(backend.to_host(value)))


def test_predict_returns_outputs_on_the_models_device(bk: backend.Backend) -> None:
    x, _ = blobs()
    model = small_model(bk)
    out = model.predict(x, batch_size=7)
    assert backend.backend_name(out) == bk.name and tuple(out.shape) == (60, 3)
    np.testing.assert_allclose(backend.to_host(out), backend.to_host(model.forward(backend.from_host(x, bk))),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_evaluate_reports_loss_and_accuracy(bk: backend.Backend) -> None:
    x, y = blobs()
    model = small_model(bk)
    result = model.evaluate(x, y, loss=xpnn.SoftmaxCrossEntropy(), batch_size=13)
    logits = backend.to_host(model.predict(x))
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(60), y])
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    stopper = xpnn.EarlyStopping("loss", patience=2, min_delta=1e9)  # nothing counts as an improvement
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1),
                        epochs=10, callbacks=[stopper], verbose=0)  # fmt: skip
    assert len(history) == 3 and stopper.best_epoch == 0


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    seen: list[np.ndarray] = []
    record = lambda epoch, logs: seen.append(backend.to_host(model[0].weight.value))  # noqa: E731
    stopper = xpnn.EarlyStopping("loss", patience=1, min_delta=1e9, restore_best_weights=True)
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1),
              epochs=5, callbacks=[record, stopper], verbose=0)  # fmt: skip
    np.testing.assert_array_equal(backend.to_host(model[0].weight.value), seen[0])
    assert not np.array_equal(seen[0], seen[-1])


def test_a_plain_callable_hook_sees_each_epoch_and_can_stop_training() -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    calls: list[tuple[int, float]] = []

    def hook(epoch: int, logs: dict[str, float]) -> bool:
        calls.append((epoch, logs["loss"]))
        return epoch == 1

    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1),
                        epochs=6, callbacks=[hook], verbose=0)  # fmt: skip
    assert [epoch for epoch, _ in calls] == [0, 1] and len(history) == 2


def test_fit_with_the_same_seed_gives_the_same_numbers(bk: backend.Backend) -> None:
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = small_model(bk, dropout=0.3)
        model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=Adam(model.parameters(), lr=0.01),
                  epochs=2, batch_size=8, seed=5, verbose=0)  # fmt: skip
        runs.append(backend.to_host(model[0].weight.value))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_progress_bar_on_a_terminal_ends_with_the_epochs_numbers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1), epochs=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "accuracy=" in err


def test_without_a_terminal_fit_prints_one_summary_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = blobs()
    model = small_model(backend.resolve("numpy"))
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=SGD(model.parameters(), lr=0.1), epochs=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
