"""Issue 13: fit / evaluate / predict name every bad argument before training starts."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn


def _data(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3)).astype(np.float32), np.arange(n) % 2


def _model() -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(3, 4), xpnn.ReLU(), xpnn.Dense(4, 2)], seed=0)


def _fit(model: xpnn.Sequential | None = None, **overrides: Any) -> Any:
    model = model or _model()
    x, y = _data()
    kwargs: dict[str, Any] = {
        "loss": xpnn.SoftmaxCrossEntropy(),
        "optimizer": xpnn.SGD(model.parameters(), lr=0.1),
        "epochs": 1,
        "batch_size": 8,
        "verbose": 0,
    }
    kwargs.update(overrides)
    return model.fit(kwargs.pop("x", x), kwargs.pop("y", y), **kwargs)


def _weights(model: xpnn.Sequential) -> list[np.ndarray]:
    return [xpnn.backend.to_host(p.value) for p in model.parameters()]


BAD_FIT = {
    "0 rows": (
        {"x": np.zeros((0, 3), np.float32), "y": np.zeros(0, np.int64)},
        xpnn.ShapeError,
        r"fit: x has 0 samples",
    ),
    "list x": (
        {"x": [[1.0, 2.0, 3.0]] * 20},
        xpnn.ArgumentTypeError,
        r"fit: expected x to be an array .*got list",
    ),
    "list y": ({"y": [0, 1] * 10}, xpnn.ArgumentTypeError, r"fit: expected y to be an array .*got list"),
    "y length": ({"y": np.zeros(19, np.int64)}, xpnn.ShapeError, r"20 samples in x but 19 in y"),
    "loss None": ({"loss": None}, xpnn.ArgumentTypeError, r"fit: expected loss= an xpnn Loss"),
    "optimizer None": (
        {"optimizer": None},
        xpnn.ArgumentTypeError,
        r"fit: expected optimizer= an xpnn Optimizer",
    ),
    "batch 0": ({"batch_size": 0}, xpnn.ArgumentError, r"fit: expected batch_size >= 1, got 0"),
    "batch float": (
        {"batch_size": 8.0},
        xpnn.ArgumentTypeError,
        r"fit: expected batch_size to be an integer",
    ),
    "epochs -1": ({"epochs": -1}, xpnn.ArgumentError, r"fit: expected epochs >= 0, got -1"),
    "split 1.0": ({"validation_split": 1.0}, xpnn.ArgumentError, r"leaves 0 for training"),
    "split tiny": ({"validation_split": 0.01}, xpnn.ArgumentError, r"and 0 for validation"),
    "split nan": ({"validation_split": math.nan}, xpnn.ArgumentError, r"validation_split"),
    "val 0 rows": (
        {"validation_data": (np.zeros((0, 3), np.float32), np.zeros(0, np.int64))},
        xpnn.ShapeError,
        r"fit: x_val has 0 samples",
    ),
    "val not a pair": (
        {"validation_data": np.zeros((3, 3))},
        xpnn.ArgumentTypeError,
        r"validation_data=\(x_val, y_val\)",
    ),
    "int16 images": ({"x": np.ones((20, 3), np.int16)}, xpnn.DTypeError, r"must be uint8 images .*got int16"),
    "early stopping val_loss": (
        {"callbacks": [xpnn.EarlyStopping()]},
        xpnn.ArgumentError,
        r"EarlyStopping: monitor 'val_loss' is not in fit's logs .*needs validation_data",
    ),
    "checkpoint best val_loss": (
        {"callbacks": [xpnn.ModelCheckpoint("m.npz", save_best_only=True)]},
        xpnn.ArgumentError,
        r"ModelCheckpoint: monitor 'val_loss'",
    ),
}


@pytest.mark.parametrize("case", BAD_FIT)
def test_bad_fit_arguments_are_named_before_any_step(case: str) -> None:
    overrides, error, match = BAD_FIT[case]
    model = _model()
    before = _weights(model)
    with pytest.raises(error, match=match):
        _fit(model, **overrides)
    for a, b in zip(_weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_path_that_does_not_format_fails_at_construction() -> None:
    with pytest.raises(xpnn.ArgumentError, match=r"ModelCheckpoint: path '\{bogus\}\.npz' does not format"):
        xpnn.ModelCheckpoint("{bogus}.npz")


def test_epochs_0_returns_an_empty_history_and_changes_nothing() -> None:
    model = _model()
    before = _weights(model)
    history = _fit(model, epochs=0)
    assert len(history) == 0 and history["loss"] == []
    for a, b in zip(_weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_nan_epoch_loss_stops_with_non_finite_loss_error_before_callbacks_see_it(tmp_path: Path) -> None:
    x, _ = _data()
    x[3, 1] = np.nan
    saved = tmp_path / "m{epoch}.npz"
    with pytest.raises(xpnn.NonFiniteLossError, match=r"fit: the mean training loss of epoch 1 is nan"):
        _fit(x=x, epochs=3, callbacks=[xpnn.ModelCheckpoint(saved)])
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning"
)
def test_an_infinite_loss_from_huge_inputs_stops_too() -> None:
    with pytest.raises(xpnn.NonFiniteLossError, match=r"not finite"):
        _fit(x=_data()[0] * 1e30, epochs=2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m: m.evaluate(np.zeros((0, 3), np.float32), np.zeros(0, np.int64)),
            r"evaluate: x has 0 samples",
        ),
        (lambda m: m.predict(np.zeros((0, 3), np.float32)), r"predict: x has 0 samples"),
        (lambda m: m.predict([[1.0, 2.0, 3.0]]), r"predict: expected x to be an array"),
        (lambda m: m.evaluate(np.zeros((2, 3), np.float32), [0, 1]), r"evaluate: expected y to be an array"),
        (
            lambda m: m.predict(np.zeros((2, 3), np.float32), batch_size=0),
            r"predict: expected batch_size >= 1",
        ),
    ],
)
def test_evaluate_and_predict_name_empty_or_non_array_data(call: Any, match: str) -> None:
    with pytest.raises(xpnn.XpnnError, match=match):
        call(_model())


def _example() -> Any:
    path = Path(__file__).resolve().parents[2] / "examples" / "fashion_mnist.py"
    spec = importlib.util.spec_from_file_location("fashion_mnist_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--epochs", "-1"], "--epochs must be >= 0"),
    ],
)
def test_the_example_refuses_bad_sizes_at_parse_time(argv: list[str], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit):
        _example().parse_args(argv)
    assert message in capsys.readouterr().err


def test_the_example_refuses_a_checkpoint_that_is_a_file(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit):
        _example().parse_args(["--checkpoint", str(tmp_path / "f")])
    assert "exists and is not a directory" in capsys.readouterr().err
