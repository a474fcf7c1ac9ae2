"""fit(loss=fn) with a function of Tensors: a penalty's gradient reaches the weights, a
regression function prints no accuracy, and a function that returns no 0-d Tensor is a named
error before anything changes."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn import functional as F
from xpnn.autograd.tensor import Tensor

RNG = np.random.default_rng(5)
X = RNG.standard_normal((16, 4))
Y = RNG.integers(0, 3, 16)


class Classifier(xpnn.Module):
    def __init__(self) -> None:
        self.norm = xpnn.BatchNorm(4)
        self.fc = xpnn.Dense(4, 3, seed=0)
        self.drop = xpnn.Dropout(0.1, seed=0)

    def forward(self, x: Any) -> Any:
        return self.drop(self.fc(self.norm(x)))


def _one_step(bk: Any, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """The fc weight before and after one full-batch SGD step (lr 0.1) of a fresh float64
    Classifier trained with ``cross_entropy + strength * sum(fc.weight ** 2)``."""
    model = Classifier().to(bk.name, dtype="float64")
    model.drop.rate = 0.0
    w0 = backend.to_host(model.fc.weight.value)

    def penalized(pred: Tensor, y: Any) -> Tensor:
        return F.cross_entropy(pred, y) + strength * (model.fc.weight**2).sum()

    model.fit(X, Y, loss=penalized, optimizer=xpnn.SGD(model.parameters(), lr=0.1), batch_size=16,
              shuffle=False, verbose=0)  # fmt: skip
    return w0, backend.to_host(model.fc.weight.value)


def test_a_penalty_in_a_loss_function_sends_its_gradient_to_the_weights(bk: Any) -> None:
    # both runs see the same data gradient at the same start: the penalty 1e-3 * sum(w**2) adds
    # 2e-3 * w0 to the gradient, so one step of lr 0.1 moves w by exactly -2e-4 * w0 more
    w0, with_penalty = _one_step(bk, 1e-3)
    _, without = _one_step(bk, 0.0)
    np.testing.assert_allclose(with_penalty - without, -0.1 * 2e-3 * w0, rtol=1e-8, atol=1e-15)


def test_a_penalty_in_a_loss_function_matches_torch_for_one_step() -> None:
    torch = require_torch("this test compares a penalized loss's step with torch.autograd")
    model = xpnn.Sequential([xpnn.Dense(4, 3, seed=0)]).to("numpy", dtype="float64")
    w = torch.tensor(model[0].weight.value, requires_grad=True)
    b = torch.tensor(model[0].bias.value, requires_grad=True)
    logits = torch.tensor(X) @ w + b
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(Y)) + 1e-3 * (w**2).sum()
    loss.backward()

    def penalized(pred: Tensor, y: Any) -> Tensor:
        return F.cross_entropy(pred, y) + 1e-3 * (model[0].weight ** 2).sum()

    model.fit(X, Y, loss=penalized, optimizer=xpnn.SGD(model.parameters(), lr=0.1), batch_size=16,
              shuffle=False, verbose=0)  # fmt: skip
    np.testing.assert_allclose(model[0].weight.value, (w - 0.1 * w.grad).detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(model[0].bias.value, (b - 0.1 * b.grad).detach().numpy(), rtol=1e-10)


def test_a_regression_loss_function_prints_no_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    model = xpnn.Sequential([xpnn.Dense(4, 2, seed=0)])
    targets = RNG.standard_normal((16, 2)).astype(np.float32)
    history = model.fit(X.astype(np.float32), targets, loss=lambda p, t: F.mse(p, t),
                        optimizer=xpnn.SGD(model.parameters(), lr=0.1), epochs=2, verbose=1)  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("epoch ") == 2 and "accuracy" not in printed and "nan" not in printed
    assert np.isnan(history["accuracy"]).all()


@pytest.mark.parametrize(
    ("loss", "match"),
    [
        (lambda p, y: F.cross_entropy(p, y, reduction="none"), r"returned a Tensor of shape \(1,\)"),
        (lambda p, y: float(F.cross_entropy(p, y).item()), r"returned a float"),
        (lambda p, y: np.zeros((), np.float32), r"returned a ndarray of shape \(\)"),
    ],
    ids=["per-sample", "float", "array"],
)
def test_a_loss_function_returning_no_0d_tensor_is_refused_before_anything_changes(
    loss: Any, match: str
) -> None:
    model = Classifier()
    optimizer = xpnn.Adam(model.parameters(), lr=0.1)
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    counters = (model.drop.counters(), model.norm.counters())
    with pytest.raises(
        xpnn.ArgumentTypeError, match=r"fit: the loss '<lambda>' " + match + ".*0-d xpnn.Tensor"
    ):
        model.fit(X.astype(np.float32), Y, loss=loss, optimizer=optimizer, verbose=0)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert (model.drop.counters(), model.norm.counters()) == counters and optimizer.t == 0
    assert getattr(model, "loss", None) is None  # evaluate() would otherwise fall back to it


def test_a_loss_that_is_a_module_with_parameters_does_not_join_the_models_tree() -> None:
    class Weighted(xpnn.Module):  # a learned loss, as torch users write losses: a Module
        def __init__(self) -> None:
            self.log_scale = xpnn.Parameter(np.zeros((), np.float32), "log_scale")

        def forward(self, pred: Tensor, y: Any) -> Tensor:
            return F.cross_entropy(pred, y) * F.sigmoid(self.log_scale)

    model = Classifier()
    names = [name for name, _ in model.named_parameters()]
    model.fit(X.astype(np.float32), Y, loss=Weighted(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
              verbose=0)  # fmt: skip
    assert [name for name, _ in model.named_parameters()] == names
    assert "loss" not in dict(model.named_modules())


def test_fit_keeps_a_loss_method_of_the_users_module_and_evaluate_uses_the_fits_loss() -> None:
    class WithLossMethod(Classifier):
        def loss(self, pred: Tensor, y: Any) -> Tensor:
            return F.cross_entropy(pred, y)

    model = WithLossMethod()
    optimizer = xpnn.SGD(model.parameters(), lr=0.1)
    model.fit(X.astype(np.float32), Y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, verbose=0)
    assert model.loss.__func__ is WithLossMethod.loss  # type: ignore[attr-defined]
    assert "loss" in model.evaluate(X.astype(np.float32), Y)


def test_a_regression_loss_on_a_terminal_shows_no_accuracy_on_the_progress_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model = xpnn.Sequential([xpnn.Dense(4, 2, seed=0)])
    targets = RNG.standard_normal((16, 2)).astype(np.float32)
    model.fit(X.astype(np.float32), targets, loss=xpnn.MSE(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
              epochs=1, batch_size=4)  # fmt: skip
    shown = capsys.readouterr().err
    assert "loss=" in shown and "acc" not in shown and "nan" not in shown


def test_a_sequence_output_with_a_function_loss_trains_and_evaluates_without_accuracy() -> None:
    # (batch, time, vocabulary) logits and (batch, time) labels, as a character model has:
    # counting "correct rows" there does not even broadcast, so no accuracy is counted
    class Tagger(xpnn.Module):
        def __init__(self) -> None:
            self.proj = xpnn.Dense(4, 5, seed=0)

        def forward(self, x: Any) -> Any:
            return self.proj(x)

    def per_step(pred: Tensor, y: Any) -> Tensor:
        n, t, v = pred.shape
        return F.cross_entropy(pred.reshape(n * t, v), backend.namespace(y).reshape(y, (n * t,)))

    x, y = RNG.standard_normal((12, 3, 4)).astype(np.float32), RNG.integers(0, 5, (12, 3))
    model = Tagger()
    history = model.fit(x, y, loss=per_step, optimizer=xpnn.SGD(model.parameters(), lr=0.5), epochs=3,
                        batch_size=4, verbose=0)  # fmt: skip
    assert history["loss"][-1] < history["loss"][0] and np.isnan(history["accuracy"]).all()
    logs = model.evaluate(x, y)
    assert np.isnan(logs["accuracy"]) and logs["loss"] > 0.0
